"""Sealing a connection's TokenSet into its row, and opening it again (JSON inside AES-GCM)."""

from __future__ import annotations

import json
from datetime import datetime

from connector.errors import VaultError
from connector.ports import TokenSet
from connector.storage.tables import Connection
from connector.vault.keyring import Binding, Vault

TOKENS_FIELD = "tokens"


def token_binding(connection: Connection) -> Binding:
    """The binding of a connection's sealed token set."""
    return Binding(connection.provider, connection.id, connection.tenant_id, TOKENS_FIELD)


def seal_tokens(vault: Vault, connection: Connection, tokens: TokenSet) -> None:
    """Store `tokens` sealed in `connection` (which must have its id) and its expiry columns."""
    if connection.id is None:
        raise VaultError("a connection must be saved (have an id) before its tokens are sealed")
    payload = {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_at": tokens.expires_at.isoformat(),
        "refresh_expires_at": tokens.refresh_expires_at.isoformat() if tokens.refresh_expires_at else None,
        "scope": list(tokens.scope),
        "id_token": tokens.id_token,
        "token_type": tokens.token_type,
    }
    connection.tokens_sealed = vault.seal(json.dumps(payload), token_binding(connection))
    connection.access_expires_at = tokens.expires_at
    connection.refresh_expires_at = tokens.refresh_expires_at


def open_tokens(vault: Vault, connection: Connection) -> TokenSet:
    """The connection's tokens; VaultError if none are stored or the ciphertext is not this row's."""
    if not connection.tokens_sealed:
        raise VaultError(f"connection {connection.id} has no stored tokens: reconnect it")
    data = json.loads(vault.open(connection.tokens_sealed, token_binding(connection)))
    return TokenSet(
        access_token=data["access_token"],
        refresh_token=data["refresh_token"],
        expires_at=datetime.fromisoformat(data["expires_at"]),
        refresh_expires_at=datetime.fromisoformat(data["refresh_expires_at"]) if data["refresh_expires_at"] else None,
        scope=tuple(data.get("scope") or ()),
        id_token=data.get("id_token") or "",
        token_type=data.get("token_type") or "Bearer",
    )

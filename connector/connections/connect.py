"""Connecting accounting files: OAuth start and callback, reconnect, disconnect (provider-neutral).

The web layer keeps `state` and the PKCE verifier in the signed session; these services do the rest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from connector.domain.model import ConnectionInfo, ConnectionStatus
from connector.errors import AuthError, NudgeError, ProviderError
from connector.ports import ProviderSettings, ProviderSpec, TokenSet
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Connection
from connector.vault.keyring import Vault
from connector.vault.tokens import open_tokens, seal_tokens


class ConnectError(NudgeError):
    """The OAuth callback cannot be completed (denied, state mismatch, missing company id...)."""


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the user, and what to remember in their session until the callback."""

    url: str
    state: str
    code_verifier: str


def begin_connect(spec: ProviderSpec, settings: ProviderSettings) -> AuthorizationRequest:
    """A fresh `state` (and PKCE verifier where the provider supports it) and the authorize URL."""
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64) if spec.supports_pkce else ""
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=") if verifier else ""
    )
    return AuthorizationRequest(spec.authorization_url(settings, state, challenge), state, verifier)


@dataclass(frozen=True)
class ConnectedFile:
    """One accounting file a connect flow stored, and whether it was new."""

    connection_id: int
    name: str
    created: bool


def complete_connect(
    store: Store,
    vault: Vault,
    spec: ProviderSpec,
    settings: ProviderSettings,
    org_id: int,
    params: Mapping[str, str],
    expected_state: str,
    code_verifier: str,
    now: datetime,
    *,
    actor: str = "",
) -> list[ConnectedFile]:
    """Finish the OAuth callback: check state, exchange the code, store one connection per file.

    Reconnecting a file already connected to this organization updates that connection (new tokens,
    status active) instead of creating a duplicate.
    """
    if params.get("error"):
        reason = params.get("error_description") or params["error"]
        raise ConnectError(f"{spec.display_name} did not grant access ({reason}); nothing was connected")
    state = params.get("state", "")
    if not expected_state or not hmac.compare_digest(state.encode(), expected_state.encode()):
        raise ConnectError(
            f"the {spec.display_name} sign-in did not match this browser session (state mismatch); start again"
        )
    if not params.get("code"):
        raise ConnectError(f"{spec.display_name} returned no authorization code; start again")
    try:
        tokens = spec.exchange_code(settings, params, code_verifier, now)
        files = spec.connect(settings, params, tokens)
    except ProviderError as exc:
        raise ConnectError(f"connecting to {spec.display_name} failed: {exc.user_message}") from exc
    if not files:
        raise ConnectError(f"{spec.display_name} named no company or organisation to connect")
    with store.unit_of_work() as uow:
        results = store_connections(uow, vault, spec.key, org_id, files, tokens, now, actor=actor)
        uow.commit()
    return results


def store_connections(
    uow: UnitOfWork,
    vault: Vault,
    provider: str,
    org_id: int,
    files: list[ConnectionInfo],
    tokens: TokenSet,
    now: datetime,
    *,
    actor: str = "",
) -> list[ConnectedFile]:
    """One active connection per consented file, tokens sealed, due for a first sync now (in `uow`).

    A file already connected to this organization is updated (new tokens, active again), never duplicated.
    """
    results: list[ConnectedFile] = []
    for info in files:
        connection = uow.connections.by_tenant(org_id, provider, info.tenant_id)
        created = connection is None
        if connection is None:
            connection = uow.connections.add(org_id, provider, info.tenant_id, info.name, next_run_at=now)
        connection.name = info.name or connection.name
        if info.extra.get("home_currency"):
            connection.home_currency = info.extra["home_currency"]
        connection.status = ConnectionStatus.ACTIVE.value
        connection.last_error = ""
        connection.failures = 0
        connection.next_run_at = now
        seal_tokens(vault, connection, tokens)
        uow.activities.record(
            org_id,
            "connection.connected" if created else "connection.reconnected",
            connection.name,
            connection_id=connection.id,
            actor=actor,
            at=now,
        )
        results.append(ConnectedFile(connection.id, connection.name, created))
    return results


def disconnect(
    store: Store,
    vault: Vault,
    spec: ProviderSpec,
    settings: ProviderSettings,
    org_id: int,
    connection_id: int,
    now: datetime,
    *,
    actor: str = "",
) -> bool:
    """Revoke the grant (best effort when it is already dead), forget the tokens, mark disconnected.

    The grant is revoked only when no other connection of this organization still uses it (one Xero
    consent connects several organisations, all into the organization that gave it).
    """
    with store.unit_of_work() as uow:
        connection = uow.connections.get(org_id, connection_id)
        if connection is None:
            return False
        tokens = _try_open(vault, connection)
        connection.status = ConnectionStatus.DISCONNECTED.value
        connection.tokens_sealed = ""
        connection.next_run_at = None
        others = [
            _try_open(vault, other)
            for other in uow.connections.for_organization(org_id)
            if other.id != connection.id and other.provider == connection.provider
        ]
        still_used = tokens is not None and any(
            other is not None and hmac.compare_digest(other.refresh_token, tokens.refresh_token) for other in others
        )
        note = ""
        if tokens is not None and not still_used:
            try:
                spec.revoke(settings, tokens)
            except (AuthError, ProviderError) as exc:
                note = f"revocation failed ({exc.user_message}); the grant may already be gone"
        uow.activities.record(
            org_id,
            "connection.disconnected",
            connection.name,
            connection_id=connection.id,
            actor=actor,
            detail={"note": note} if note else {},
            at=now,
        )
        uow.commit()
        return True


def _try_open(vault: Vault, connection: Connection) -> TokenSet | None:
    """The connection's tokens, or None when it holds none (or they no longer open)."""
    if not connection.tokens_sealed:
        return None
    try:
        return open_tokens(vault, connection)
    except NudgeError:
        return None

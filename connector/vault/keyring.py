"""Secrets at rest: AES-256-GCM with a key ring, each ciphertext bound to where it belongs.

Sealed text is `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`. The associated data names the
provider, connection id, tenant and field, so a ciphertext copied to another row (or another
tenant's) fails to open. Keys are 32 random bytes, given base64url-encoded in config/env.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from connector.errors import VaultError
from connector.vault.redaction import register_secret

_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_FORMAT = "v1"


def generate_key() -> str:
    """A fresh 256-bit key, base64url-encoded (what `nudge keys generate` prints)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def _decode_key(key_id: str, text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError) as exc:
        raise VaultError(f"vault key {key_id!r} is not valid base64url") from exc
    if len(raw) != 32:
        raise VaultError(f"vault key {key_id!r} must be 32 bytes (base64url of 32 random bytes), got {len(raw)}")
    return raw


@dataclass(frozen=True)
class Binding:
    """Where a secret belongs; part of the AEAD associated data."""

    provider: str
    connection_id: int
    tenant_id: str
    field: str

    def associated_data(self) -> bytes:
        """The AEAD associated data binding a sealed secret to its provider, connection, tenant and field."""
        return f"nudge|{self.provider}|{self.connection_id}|{self.tenant_id}|{self.field}".encode()


@dataclass(frozen=True)
class Vault:
    """Seals with the active key; opens with any key of the ring (so old keys can be retired after rotation)."""

    active_key_id: str
    _keys: Mapping[str, bytes] = field(repr=False)

    @classmethod
    def from_keys(cls, keys: Mapping[str, str], active_key_id: str, *, variable: str = "vault.keys") -> Vault:
        """Key ring from {id: base64url key}; fails closed (naming `variable`) when no usable key is set."""
        usable = {key_id: text for key_id, text in keys.items() if text and text.strip()}
        if not usable:
            raise VaultError(
                f"no encryption key is set: set {variable} (generate one with `nudge keys generate`), or run Nudge "
                "from the folder whose `.env` holds it (`nudge init` writes one); Nudge refuses to start without one"
            )
        for key_id in usable:
            if not _KEY_ID.match(key_id):
                raise VaultError(f"vault key id {key_id!r} must be 1-32 letters, digits, '-' or '_'")
        if active_key_id not in usable:
            raise VaultError(f"vault.active_key {active_key_id!r} is not one of the configured keys {sorted(usable)}")
        decoded = {key_id: _decode_key(key_id, text) for key_id, text in usable.items()}
        for text in usable.values():
            register_secret(text)
        return cls(active_key_id, decoded)

    def __repr__(self) -> str:
        return f"Vault(active_key_id={self.active_key_id!r}, keys={sorted(self._keys)})"

    @property
    def key_ids(self) -> list[str]:
        """The ids of every key that can open a secret, sorted."""
        return sorted(self._keys)

    def seal(self, plaintext: str, binding: Binding) -> str:
        """Encrypt `plaintext` for `binding` with the active key."""
        nonce = os.urandom(12)
        sealed = AESGCM(self._keys[self.active_key_id]).encrypt(nonce, plaintext.encode(), binding.associated_data())
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{_FORMAT}.{self.active_key_id}.{body}"

    def key_id_of(self, sealed: str) -> str:
        """Which key sealed this text."""
        parts = sealed.split(".")
        if len(parts) != 3 or parts[0] != _FORMAT:
            raise VaultError("sealed secret is malformed (expected v1.<key id>.<data>)")
        return parts[1]

    def open(self, sealed: str, binding: Binding) -> str:
        """Decrypt; raises VaultError for an unknown key, tampering, or a ciphertext from another row."""
        key_id = self.key_id_of(sealed)
        key = self._keys.get(key_id)
        if key is None:
            raise VaultError(f"secret was sealed with key {key_id!r}, which is not in the key ring")
        body = sealed.split(".")[2]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plaintext = AESGCM(key).decrypt(raw[:12], raw[12:], binding.associated_data()).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise VaultError(
                f"secret for connection {binding.connection_id} ({binding.field}) failed to decrypt: "
                "it was tampered with or belongs to another connection"
            ) from exc
        register_secret(plaintext)
        return plaintext

    def reseal(self, sealed: str, binding: Binding) -> str | None:
        """The same secret sealed with the active key, or None if it already is."""
        if self.key_id_of(sealed) == self.active_key_id:
            return None
        return self.seal(self.open(sealed, binding), binding)

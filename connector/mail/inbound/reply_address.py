"""Per-thread reply addresses: `replies+<token>@example.com` from `mail.reply_address` = `replies@example.com`.

The token names the organization, the client (connection), the customer (Nudge's row id) and the thread (the
first 8 hex digits of SHA-256 of the thread key), followed by an HMAC-SHA256 over those four, truncated to 80
bits: `o<org>-c<conn>-k<customer>-t<thread>-<mac>` with ids in base 36 and everything lower case (some mail
servers lower-case local parts). Changing any part breaks the MAC, so a reply can only be filed under the
thread the address was made for; the key is `mail.reply_signing_key`, else derived from `web.secret_key`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

MAC_HEX = 20  # 80 bits: not guessable, short enough for the 64-character local part
MAX_LOCAL_PART = 64  # RFC 5321
_TOKEN = re.compile(r"o([0-9a-z]{1,12})-c([0-9a-z]{1,12})-k([0-9a-z]{1,12})-t([0-9a-f]{8})-([0-9a-f]{20})")
_DERIVATION_LABEL = b"nudge reply addresses v1"


@dataclass(frozen=True, slots=True)
class ReplyThread:
    """What a verified reply token names: organization, connection, customer row id, thread hash."""

    organization_id: int
    connection_id: int
    customer_id: int
    thread_hash: str


def thread_hash(thread_key: str) -> str:
    """The short, stable name of a thread in reply tokens (not reversible; compared with sent threads)."""
    return hashlib.sha256(thread_key.encode("utf-8")).hexdigest()[:8]


def derive_key(secret: str) -> bytes:
    """The signing key for reply tokens derived from another secret (the session secret), never the secret."""
    return hmac.new(secret.encode("utf-8"), _DERIVATION_LABEL, hashlib.sha256).digest()


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if number < 0:
        raise ValueError("ids are not negative")
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            return text


def _mac(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode("ascii"), hashlib.sha256).hexdigest()[:MAC_HEX]


class ReplyAddresses:
    """Makes and reads per-thread reply addresses under one base address (`replies@example.com`)."""

    def __init__(self, base_address: str, key: bytes) -> None:
        local, _, domain = base_address.strip().rpartition("@")
        if not local or not domain or "+" in local:
            raise ValueError(f"mail.reply_address {base_address!r} must be a plain address like replies@example.com")
        if not key:
            raise ValueError("reply addresses need a signing key")
        self.local = local
        self.domain = domain
        self._key = key

    def token(self, thread: ReplyThread) -> str:
        """The signed token of `thread`."""
        body = (
            f"o{_base36(thread.organization_id)}-c{_base36(thread.connection_id)}"
            f"-k{_base36(thread.customer_id)}-t{thread.thread_hash}"
        )
        return f"{body}-{_mac(self._key, body)}"

    def address(self, thread: ReplyThread) -> str:
        """`local+token@domain`, or the base address when the token would not fit in a local part."""
        local = f"{self.local}+{self.token(thread)}"
        if len(local) > MAX_LOCAL_PART:
            return f"{self.local}@{self.domain}"
        return f"{local}@{self.domain}"

    def read(self, address: str) -> ReplyThread | None:
        """The thread a reply address names, or None: not ours, no token, or a token that does not verify."""
        local, _, domain = address.strip().strip("<>").rpartition("@")
        if domain.lower() != self.domain.lower():
            return None
        base, plus, token = local.partition("+")
        if not plus or base.lower() != self.local.lower():
            return None
        return self.verify(token.lower())

    def verify(self, token: str) -> ReplyThread | None:
        """The thread `token` names when its MAC is right (compared in constant time), else None."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        body = token[: -(MAC_HEX + 1)]
        if not hmac.compare_digest(_mac(self._key, body), match.group(5)):
            return None
        return ReplyThread(int(match.group(1), 36), int(match.group(2), 36), int(match.group(3), 36), match.group(4))

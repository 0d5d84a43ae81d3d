"""Nudge's error tree. Every error carries `user_message`, a sentence a user can act on.

    NudgeError
    ├── ConfigError          bad or missing configuration (lists every ConfigIssue found)
    ├── ProviderError        a provider call failed
    │   ├── AuthError        the grant is dead or revoked: reconnect needed (connection → needs_reauth)
    │   ├── RateLimited      over a provider limit; retry after `retry_after` seconds
    │   ├── Transient        network fault or 5xx; safe to retry with backoff
    │   └── Rejected         the provider refused the request (validation); retrying will not help
    ├── VaultError           a secret could not be encrypted or decrypted (wrong key, tampered row)
    └── StorageError         the database is unreachable or refused a write

Messages never contain secrets: callers pass redacted text only.
"""

from __future__ import annotations

from dataclasses import dataclass


class NudgeError(Exception):
    """Base of every error Nudge raises on purpose."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file: where it is and what was expected."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '(top level)'}: {self.message}"


class ConfigError(NudgeError):
    """The configuration is invalid; `issues` lists every problem found, not just the first."""

    def __init__(self, issues: list[ConfigIssue] | str) -> None:
        if isinstance(issues, str):
            issues = [ConfigIssue(file="", line=None, path="", message=issues)]
        self.issues = list(issues)
        text = "\n".join(str(issue) for issue in self.issues)
        super().__init__(f"invalid configuration:\n{text}" if len(self.issues) > 1 else str(self.issues[0]))


class ProviderError(NudgeError):
    """A call to an accounting provider failed."""

    def __init__(self, user_message: str, *, provider: str = "", status: int | None = None) -> None:
        super().__init__(user_message)
        self.provider = provider
        self.status = status


class AuthError(ProviderError):
    """The provider no longer accepts this connection's grant; the user must reconnect."""


class RateLimited(ProviderError):
    """A provider limit was hit; `retry_after` says how long to wait, `limit` which limit (if known)."""

    def __init__(self, user_message: str, *, provider: str = "", retry_after: float = 60.0, limit: str = "") -> None:
        super().__init__(user_message, provider=provider, status=429)
        self.retry_after = retry_after
        self.limit = limit


class Transient(ProviderError):
    """A passing fault (timeout, connection reset, 5xx); the same call may succeed later."""


class Rejected(ProviderError):
    """The provider refused the request as invalid; retrying unchanged will fail again."""


class VaultError(NudgeError):
    """A secret could not be sealed or opened (no key configured, unknown key id, tampered ciphertext)."""


class StorageError(NudgeError):
    """The database could not be reached or refused an operation."""

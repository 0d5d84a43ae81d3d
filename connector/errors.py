"""Nudge's error tree. Every error carries `user_message`, a sentence a user can act on.

    NudgeError
    ├── ConfigError          bad or missing configuration (lists every ConfigIssue found)
    ├── ProviderError        a provider call failed
    │   ├── AuthError        the grant is dead or revoked: reconnect needed (connection → needs_reauth)
    │   │   └── ProviderDisconnected  the provider confirms the file was disconnected there (→ disconnected)
    │   ├── RateLimited      over a provider limit; retry after `retry_after` seconds
    │   ├── Transient        network fault or 5xx; safe to retry with backoff
    │   ├── Rejected         the provider refused the request (validation); retrying will not help
    │   │   ├── NotFound     the record asked for does not exist (deleted, voided away, never there)
    │   │   └── ReplayedObjectGone  a replayed (idempotent) create names a record that no longer exists
    │   └── PayloadError     the provider sent data Nudge cannot read (a webhook body, a record)
    │       └── MappingError one record cannot be mapped: `external_id`, `field`, `reason` (quarantined)
    ├── VaultError           a secret could not be encrypted or decrypted (wrong key, tampered row)
    ├── TemplateError        an email template could not be rendered (syntax, unsafe access, missing value)
    ├── MailError            an email was not sent
    │   ├── MailTransient    connection failure, timeout or SMTP 4xx; retry later (unless `maybe_sent`)
    │   ├── MailRejected     SMTP 5xx, failed login, no TLS offered; retrying unchanged will fail again
    │   └── InvalidMessage   refused before any connection; nothing was sent
    │       ├── HeaderInjection   CR/LF (or another line break) in a header field
    │       └── NoValidRecipient  no valid To address is left once invalid ones are dropped
    ├── StorageError         the database is unreachable or refused a write
    └── ChangeRefused        a person's change (API, form, library file, CLI) was refused; nothing was saved
        ├── InvalidInput     a value is wrong: `field` names it (a dotted path), the message says why
        ├── UnknownRecord    the id names nothing this organization (or member) can see
        ├── InUse            the record is in use (e.g. a cadence clients follow): the message names the users
        └── NotPermitted     the member's role (or token) does not allow this change

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
    column: int | None = None  # 1-based, when known

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.line and self.column:
            where = f"{where}:{self.column}"
        parts = [part for part in (where, self.path or ("(top level)" if where else "")) if part]
        return ": ".join([*parts, self.message])


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


class ProviderDisconnected(AuthError):
    """The file was disconnected at the provider (checked with the provider, not assumed): connection → disconnected."""


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


class NotFound(Rejected):
    """The provider has no such record (deleted or never there); adapters decide what that means."""


class ReplayedObjectGone(Rejected):
    """A retried create was answered from the provider's idempotency store with a record since deleted."""

    def __init__(self, user_message: str, *, provider: str = "", external_id: str = "") -> None:
        super().__init__(user_message, provider=provider)
        self.external_id = external_id


class PayloadError(ProviderError):
    """The provider sent something Nudge cannot read: a signed webhook body or a record of the wrong shape."""


class MappingError(PayloadError):
    """One provider record could not be mapped; `field` names the offending field, the record is quarantined."""

    def __init__(self, external_id: str, field: str, reason: str, *, provider: str = "") -> None:
        record = f"record {external_id}" if external_id else "a record without an id"
        super().__init__(
            f"The ledger's {record} was set aside ({field}: {reason}); correct it in the ledger and the next "
            "sync picks it up.",
            provider=provider,
        )
        self.external_id = external_id
        self.field = field
        self.reason = reason


class VaultError(NudgeError):
    """A secret could not be sealed or opened (no key configured, unknown key id, tampered ciphertext)."""


class StorageError(NudgeError):
    """The database could not be reached or refused an operation."""


class TemplateError(NudgeError):
    """A (possibly user-edited) email template failed to load or render; `template` names it."""

    def __init__(self, user_message: str, *, template: str = "", line: int | None = None) -> None:
        super().__init__(user_message)
        self.template = template
        self.line = line


class MailError(NudgeError):
    """An email was not sent (or, for `MailTransient.maybe_sent`, may not have been)."""


class MailTransient(MailError):
    """A passing fault: connection refused or reset, timeout, SMTP 4xx. The same message may go later.

    `maybe_sent` is True when the connection failed after the message body was handed over, so the
    server may have accepted it: the executor should mark the action uncertain, not retry.
    """

    def __init__(self, user_message: str, *, smtp_code: int | None = None, maybe_sent: bool = False) -> None:
        super().__init__(user_message)
        self.smtp_code = smtp_code
        self.maybe_sent = maybe_sent


class MailRejected(MailError):
    """The mail server refused for good (5xx, bad credentials, no TLS); fix settings or addresses first."""

    def __init__(self, user_message: str, *, smtp_code: int | None = None) -> None:
        super().__init__(user_message)
        self.smtp_code = smtp_code


class InvalidMessage(MailError):
    """The message was refused before connecting to any server; nothing was sent."""


class HeaderInjection(InvalidMessage):
    """A header field (subject, name, address, custom header) holds a line break; `field` names it."""

    def __init__(self, user_message: str, *, field: str) -> None:
        super().__init__(user_message)
        self.field = field


class NoValidRecipient(InvalidMessage):
    """No valid To address remains; `dropped` lists each (address, reason) that was set aside."""

    def __init__(self, user_message: str, *, dropped: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(user_message)
        self.dropped = dropped


class ChangeRefused(NudgeError):
    """A person's change was refused and nothing was saved; `field` names the input at fault ("" for none)."""

    def __init__(self, user_message: str, field: str = "") -> None:
        super().__init__(user_message)
        self.field = field


class InvalidInput(ChangeRefused):
    """A value is wrong: `field` is its dotted path (e.g. "steps[2].offset"), the message says what is expected."""


class UnknownRecord(ChangeRefused):
    """The id names nothing the organization or member can see (the same answer as for one that never existed)."""


class InUse(ChangeRefused):
    """The record is in use and the change would break its users (e.g. deleting a cadence clients follow)."""


class NotPermitted(ChangeRefused):
    """The member's role, client scope or API token does not allow this change."""

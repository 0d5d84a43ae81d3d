"""SMTP delivery of prepared reminder messages (STARTTLS or implicit TLS, optional login)."""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Callable
from datetime import UTC, datetime

from connector.config import MailSettings
from connector.errors import (
    ConfigError,
    MailRejected,
    MailTransient,
)
from connector.mail.message import (
    DroppedRecipient,
    OutgoingMessage,
    PreparedMessage,
    SentReceipt,
    log_dropped,
    prepare,
    redact_address,
    scrub_addresses,
)
from connector.vault.redaction import register_secret

log = logging.getLogger(__name__)


def _reply_text(reply: bytes | str, secret: str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    text = " ".join(text.split())[:300]
    return text.replace(secret, "<redacted>") if secret else text


class SmtpMailer:
    """Sends over SMTP with the organization's settings: STARTTLS or implicit TLS, optional login.

    One connection per message. A password is only ever sent over TLS. `ssl_context` defaults to
    the system's trusted CAs with host name checking.
    """

    name = "smtp"

    def __init__(
        self,
        settings: MailSettings,
        *,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if settings.smtp_security not in ("starttls", "ssl", "none"):
            raise ConfigError(f"unknown smtp_security {settings.smtp_security!r} (expected starttls, ssl or none)")
        self.settings = settings
        self._context = ssl_context
        self._local_hostname = local_hostname
        self._clock = clock or (lambda: datetime.now(UTC))
        register_secret(settings.smtp_password)

    def __repr__(self) -> str:
        s = self.settings
        return f"SmtpMailer(host={s.smtp_host!r}, port={s.smtp_port}, security={s.smtp_security!r})"

    def send(self, message: OutgoingMessage) -> SentReceipt:
        """Deliver `message` to the SMTP server; MailTransient (retryable) or MailRejected on failure."""
        return self.deliver(self.prepare(message))

    def prepare(self, message: OutgoingMessage) -> PreparedMessage:
        """Check `message` and render it, dated by the mailer's clock (InvalidMessage: nothing is sent)."""
        prepared = prepare(message, self.settings, now=self._clock())
        log_dropped(prepared)
        return prepared

    def deliver(self, prepared: PreparedMessage) -> SentReceipt:
        """Hand the prepared bytes to the SMTP server; MailTransient (retryable) or MailRejected on failure."""
        secret = self.settings.smtp_password
        where = f"{self.settings.smtp_host}:{self.settings.smtp_port}"
        stage = "connect"
        smtp: smtplib.SMTP | None = None
        try:
            smtp = self._connect()
            stage = "login"
            self._secure_and_login(smtp)
            stage = "send"
            accepted, refused = self._transfer(smtp, prepared)
        except smtplib.SMTPResponseException as exc:
            raise _classify(exc.smtp_code, _reply_text(exc.smtp_error, secret), stage, where) from None
        except ssl.SSLCertVerificationError as exc:
            raise MailRejected(f"the TLS certificate of {where} could not be verified: {exc.verify_message}") from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            if isinstance(exc, _DataLost):
                raise MailTransient(
                    f"the mail server {where} took the whole message but its reply never came "
                    f"({_reply_text(str(exc), secret)}); it may have been delivered",
                    maybe_sent=True,
                ) from None
            if isinstance(exc, _NotDelivered):
                raise MailTransient(
                    f"the mail server {where} failed at DATA ({_reply_text(str(exc), secret)}); "
                    "nothing was delivered, so it can be sent again"
                ) from None
            detail = _reply_text(str(exc), secret)
            raise MailTransient(
                f"could not reach the mail server {where} ({stage}): {type(exc).__name__}: {detail}"
            ) from None
        except smtplib.SMTPException as exc:  # e.g. no usable AUTH mechanism
            raise MailRejected(f"the mail server {where} cannot be used: {_reply_text(str(exc), secret)}") from None
        finally:
            if smtp is not None:
                _close(smtp)
        return self._receipt(prepared, accepted, refused)

    def _receipt(
        self, prepared: PreparedMessage, accepted: tuple[str, ...], refused: list[DroppedRecipient]
    ) -> SentReceipt:
        for item in refused:
            log.warning(
                "mail %s: server refused a %s recipient (%s): %s",
                prepared.message_id,
                item.field,
                redact_address(item.address),
                scrub_addresses(item.reason),
            )
        log.info("mail %s sent via smtp to %d recipient(s)", prepared.message_id, len(accepted))
        return SentReceipt(prepared.message_id, accepted, prepared.dropped + tuple(refused))

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        timeout = float(s.timeout_seconds)
        if s.smtp_security == "ssl":
            return smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, local_hostname=self._local_hostname, timeout=timeout, context=self._tls()
            )
        return smtplib.SMTP(s.smtp_host, s.smtp_port, local_hostname=self._local_hostname, timeout=timeout)

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = ssl.create_default_context()
        return self._context

    def _secure_and_login(self, smtp: smtplib.SMTP) -> None:
        s = self.settings
        smtp.ehlo()
        if s.smtp_security == "starttls":
            if not smtp.has_extn("starttls"):
                raise MailRejected(
                    f"the mail server {s.smtp_host}:{s.smtp_port} does not offer STARTTLS; "
                    "refusing to send mail unencrypted (set smtp_security to none to allow it)"
                )
            smtp.starttls(context=self._tls())
            smtp.ehlo()
        if not s.smtp_username:
            return
        if s.smtp_security == "none":
            raise MailRejected("refusing to send the SMTP password without TLS; set smtp_security to starttls or ssl")
        if not smtp.has_extn("auth"):
            raise MailRejected(f"the mail server {s.smtp_host}:{s.smtp_port} does not offer AUTH (login)")
        smtp.login(s.smtp_username, s.smtp_password)

    def _transfer(
        self, smtp: smtplib.SMTP, prepared: PreparedMessage
    ) -> tuple[tuple[str, ...], list[DroppedRecipient]]:
        secret = self.settings.smtp_password
        code, reply = smtp.mail(prepared.envelope_from)
        if code != 250:
            smtp.rset()
            raise smtplib.SMTPResponseException(code, reply)
        accepted: list[str] = []
        refused: list[DroppedRecipient] = []
        codes: list[int] = []
        for kind, addresses in (("to", prepared.to), ("cc", prepared.cc), ("bcc", prepared.bcc)):
            for address in addresses:
                code, reply = smtp.rcpt(address)
                if code in (250, 251):
                    accepted.append(address)
                else:
                    refused.append(
                        DroppedRecipient(address, f"refused by the server: {code} {_reply_text(reply, secret)}", kind)
                    )
                    if kind == "to":
                        codes.append(code)
        if not any(address in accepted for address in prepared.to):
            smtp.rset()
            worst = min(codes) if codes else 550  # a 4xx among the refusals means it may work later
            reasons = "; ".join(f"{item.address}: {item.reason}" for item in refused if item.field == "to")
            raise smtplib.SMTPResponseException(worst, f"no To recipient was accepted ({reasons})".encode())
        _send_body(smtp, prepared.as_bytes())
        return tuple(accepted), refused


def _send_body(smtp: smtplib.SMTP, body: bytes) -> None:
    """DATA, then the body; only a failure after the whole body was sent leaves the outcome unknown.

    A failure or timeout before the server's 354 (or while the body is still being written, so the
    final "." never went out) means the server cannot have accepted the message: `_NotDelivered`.
    Once the body and its final "." are sent, a broken connection or a timeout waiting for the reply
    is `_DataLost` (it may have been delivered). A definite 4xx/5xx reply is raised as such.
    """
    try:
        code, reply = smtp.docmd("DATA")
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise _NotDelivered(f"no answer to the DATA command: {exc}") from exc
    if code != 354:
        raise smtplib.SMTPResponseException(code, reply)
    data = _DOT_AT_LINE_START.sub(b"..", body)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    try:
        smtp.send(data + b".\r\n")
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise _NotDelivered(f"the connection broke while the message was being written: {exc}") from exc
    try:
        code, reply = smtp.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise _DataLost(str(exc)) from exc
    if code != 250:
        raise smtplib.SMTPResponseException(code, reply)


_DOT_AT_LINE_START = re.compile(rb"(?m)^\.")


class _DataLost(OSError):
    """The whole message was sent and the reply never came: the server may or may not have it."""


class _NotDelivered(OSError):
    """The transfer failed before the server could accept the message (no 354, or the body cut short)."""


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _classify(code: int, reply: str, stage: str, where: str) -> MailTransient | MailRejected:
    action = {"connect": "connecting to", "login": "logging in to", "send": "sending to"}.get(stage, "talking to")
    text = f"the mail server {where} answered {code} while {action} it: {reply}"
    if 400 <= code < 500 or code == -1:
        return MailTransient(text, smtp_code=code)
    return MailRejected(text, smtp_code=code)

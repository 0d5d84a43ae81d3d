"""Account emails (invitations, password resets, address checks): one plain message to one person.

They go through the install's mailer (SMTP, or the maildir outbox in development) like reminders, but they
are not reminders: no thread with a customer, no archive in `sent_messages`, no cadence. A failure to send
is the caller's to report ("we could not send the email; try again"), never a crash.
"""

from __future__ import annotations

from connector.errors import NudgeError
from connector.mail.message import Mailer, OutgoingMessage


class AccountEmailError(NudgeError):
    """An account email could not be handed to the mail server; nothing about the account changed."""


def send_account_email(mailer: Mailer, *, to: str, subject: str, text: str, kind: str, key: str) -> None:
    """Send `text` to `to`; `kind` ("invitation", "password-reset", ...) and `key` (unique per email) name it in
    the Message-ID. AccountEmailError, with a message a person can act on, when the mailer refuses it."""
    message = OutgoingMessage(to=[to], subject=subject, text=text, thread_key=f"account-{kind}-{key}", message_key=key)
    try:
        mailer.send(message)
    except NudgeError as exc:
        raise AccountEmailError(
            f"the email to {to} could not be sent ({exc.user_message}); try again in a few minutes"
        ) from exc
    except OSError as exc:
        raise AccountEmailError(f"the email to {to} could not be sent ({type(exc).__name__}); try again") from exc

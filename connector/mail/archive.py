"""Every email Nudge sends, kept exactly as sent: the `sent_messages` row of one action key.

The record follows the executor's exactly-once protocol (docs/design.md "Exactly-once effects"): the executor
commits the action as `sending`, the reminder sender renders and prepares the message, `keep` commits its bytes
in state `sending`, and only then is it handed to the mail server. The executor settles the row in the same
transaction as the action's outcome (`settle`): `sent` with done, `uncertain` with uncertain (the worker stopped
during the hand-over, or the server's answer never came), removed when the mail was certainly not handed over
(back to planned, failed, cancelled). So a row exists exactly when the message was, or may have been, handed
over, and there is never more than one per action key (a retry after a refusal replaces the earlier attempt's).

Size: a message of at most `MAX_STORED_BYTES` (10 MiB) is stored byte for byte: every reminder, and an invoice
PDF attachment up to about 7 MiB (base64 grows it by a third). A larger message is stored with each attachment's
content replaced by a short text part naming its file, type and size (`attachments_omitted`); `size` and `sha256`
stay those of the message as sent. A message still too large after that (it cannot happen with Nudge's own
reminders) keeps its first `MAX_STORED_BYTES`. Nothing secret is stored: the bytes carry no Bcc header and the
SMTP password is never part of a message.
"""

from __future__ import annotations

import email
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from connector.mail.message import PreparedMessage
from connector.storage import Store
from connector.storage.tables import SentMessage

MAX_STORED_BYTES = 10 * 2**20
SENDING = "sending"
SENT = "sent"
UNCERTAIN = "uncertain"


@dataclass(frozen=True, slots=True)
class Concerning:
    """What a message is about: its action (key), client, customer and invoices (the ledger's ids)."""

    action_key: str
    connection_id: int
    customer_external_id: str
    invoice_external_ids: Sequence[str]


def keep(store: Store, prepared: PreparedMessage, about: Concerning, *, mailer: str, at: datetime) -> int:
    """Store `prepared` (state `sending`) before it is handed over, replacing an earlier attempt of the same
    action; returns the row's id. Committed on its own: the bytes are safe before the mail server sees them."""
    wire = prepared.as_bytes()
    raw, omitted = bounded(wire)
    values = {
        "connection_id": about.connection_id,
        "customer_external_id": about.customer_external_id,
        "invoice_external_ids": list(dict.fromkeys(about.invoice_external_ids)),
        "state": SENDING,
        "mailer": mailer,
        "message_id": prepared.message_id,
        "subject": str(prepared.mime.get("Subject", "")),
        "from_address": str(prepared.mime.get("From", ""))[:320],
        "to_addresses": list(prepared.to),
        "cc_addresses": list(prepared.cc),
        "sent_at": at,
        "size": len(wire),
        "sha256": hashlib.sha256(wire).hexdigest(),
        "attachments_omitted": omitted,
        "raw": raw,
    }
    with store.unit_of_work() as uow:
        row = uow.session.scalars(select(SentMessage).where(SentMessage.action_key == about.action_key)).first()
        if row is None:
            row = SentMessage(action_key=about.action_key, **values)
            uow.session.add(row)
        else:
            for name, value in values.items():
                setattr(row, name, value)
        uow.flush()
        row_id = row.id
        uow.commit()
    return row_id


def settle(session: Session, action_key: str, state: str | None) -> None:
    """In the caller's transaction: the message of `action_key` is `sent` or `uncertain`, or (None) was certainly
    not handed over, so its `sending` row goes (a row already sent or uncertain is never removed)."""
    if state is None:
        session.execute(
            delete(SentMessage)
            .where(SentMessage.action_key == action_key, SentMessage.state == SENDING)
            .execution_options(synchronize_session=False)
        )
        return
    session.execute(
        update(SentMessage)
        .where(SentMessage.action_key == action_key)
        .values(state=state)
        .execution_options(synchronize_session=False)
    )


def bounded(wire: bytes, cap: int = MAX_STORED_BYTES) -> tuple[bytes, bool]:
    """(what to store, whether attachments were left out): `wire` itself when at most `cap` bytes."""
    if len(wire) <= cap:
        return wire, False
    parsed = email.message_from_bytes(wire, policy=policy.SMTP)
    assert isinstance(parsed, EmailMessage)
    for part in parsed.walk():
        if part.is_multipart() or part.get_content_disposition() != "attachment":
            continue
        content = part.get_payload(decode=True)
        size = len(content) if isinstance(content, bytes) else 0
        name = part.get_filename() or "attachment"
        mime = part.get_content_type()
        note = (
            f"[Nudge did not store this attachment: {name} ({mime}, {size} bytes). The message as sent was "
            f"{len(wire)} bytes, more than the {cap} bytes Nudge keeps.]\r\n"
        )
        for header in ("Content-Type", "Content-Transfer-Encoding", "Content-Disposition"):
            del part[header]
        part.set_content(note, subtype="plain", charset="utf-8", disposition="attachment", filename=f"{name}.txt")
    smaller = parsed.as_bytes(policy=policy.SMTP)
    return smaller[:cap], True


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """One attachment of a kept message: its file name, MIME type and size in bytes (as stored)."""

    filename: str
    mime: str
    size: int


@dataclass(frozen=True, slots=True)
class ReadMessage:
    """A kept message read back: its header fields as a reader sees them, its text and HTML parts, attachments."""

    headers: tuple[tuple[str, str], ...]  # (name, decoded value) of From, To, Cc, Reply-To, Subject, Date, Message-ID
    text: str | None
    html: str | None
    attachments: tuple[AttachmentInfo, ...]

    def header(self, name: str) -> str:
        """The decoded value of header `name` ("" when the message has none)."""
        return next((value for key, value in self.headers if key.lower() == name.lower()), "")


SHOWN_HEADERS = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To")


def read(raw: bytes) -> ReadMessage:
    """Parse kept bytes for people to read; never raises on a malformed message (what cannot be read is left out)."""
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    headers = []
    for name in SHOWN_HEADERS:
        try:
            value = parsed.get(name)
        except (ValueError, IndexError, TypeError):  # a header the parser cannot make sense of
            value = None
        if value is not None:
            headers.append((name, " ".join(str(value).split())))
    attachments = []
    for part in parsed.iter_attachments():
        content = _content(part)
        size = len(content.encode()) if isinstance(content, str) else len(content or b"")
        attachments.append(AttachmentInfo(part.get_filename() or "attachment", part.get_content_type(), size))
    return ReadMessage(tuple(headers), _body(parsed, "plain"), _body(parsed, "html"), tuple(attachments))


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body((subtype,))
    if part is None:
        return None
    content = _content(part)
    if isinstance(content, bytes):
        return content.decode("utf-8", "replace")
    return content


def _content(part: Any) -> str | bytes | None:
    """A part's decoded content (text as str); raw bytes when its charset or encoding is broken."""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError, KeyError):
        payload = part.get_payload(decode=True)
        return payload if isinstance(payload, bytes) else None
    if isinstance(content, str | bytes):
        return content
    return None

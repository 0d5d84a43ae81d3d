"""Sending reminders: the message, its MIME form, and the mailers (SMTP and a local outbox).

`OutgoingMessage` is what the executor builds (usually from `connector.mail.rendering.render_reminder`);
a `Mailer` sends it and returns a `SentReceipt`. Before anything is sent, `prepare` checks every header
field for line breaks (`HeaderInjection`), drops recipient addresses that cannot be delivered (each
with a reason; `NoValidRecipient` when no To address is left), and builds the MIME bytes: text and
HTML alternatives, attachments, and the thread headers.

Threading needs no storage: every message of one thread (one invoice, or one customer for grouped
reminders) refers to a thread root whose Message-ID derives from `thread_key` alone, and each
message's own Message-ID derives from `thread_key` and `message_key` (the action's key), so a retry
sends the same id. When the executor passes the keys of the reminders already sent in the thread
(`earlier_keys`, oldest first), In-Reply-To names the latest of them and References chains them all.

Bcc addresses go only into the SMTP envelope, never into a header. Message bodies are never logged,
and neither is the SMTP password.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import NamedTuple, Protocol, runtime_checkable

from connector.config import MailSettings
from connector.errors import (
    HeaderInjection,
    InvalidMessage,
    NoValidRecipient,
)

log = logging.getLogger(__name__)

# Every character str.splitlines() breaks on, plus NUL: none may appear in a header field.
_LINE_BREAKS = frozenset("\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL_PART = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII except ':'
# Headers the mailer writes itself; `OutgoingMessage.headers` may not set them.
_MANAGED_HEADERS = frozenset(
    name.lower()
    for name in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Sender",
        "Return-Path",
    )
)
MAX_ATTACHMENT_BYTES = 15 * 1024 * 1024


class Attachment(NamedTuple):
    """A file attached to a message: name shown to the reader, raw bytes, MIME type."""

    filename: str
    content: bytes
    mime: str = "application/pdf"


@dataclass(frozen=True)
class OutgoingMessage:
    """One email to send. Addresses are plain `user@example.com` strings (display names allowed).

    `thread_key` names the conversation (e.g. the invoice or customer), `message_key` this message
    (the action's idempotency key); `earlier_keys` are the message keys already sent in the thread,
    oldest first. `from_name`/`from_address`/`reply_to` left empty are filled from `MailSettings`.
    """

    to: Sequence[str]
    subject: str
    text: str
    thread_key: str
    message_key: str
    html: str | None = None
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    reply_to: str = ""
    from_name: str = ""
    from_address: str = ""
    earlier_keys: Sequence[str] = ()
    attachments: Sequence[Attachment | tuple[str, bytes, str]] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # bodies stay out of reprs (and so out of logs and tracebacks)
        return (
            f"OutgoingMessage(thread_key={self.thread_key!r}, message_key={self.message_key!r}, "
            f"to={list(self.to)!r}, cc={list(self.cc)!r}, bcc=<{len(self.bcc)}>, attachments={len(self.attachments)})"
        )


@dataclass(frozen=True, slots=True)
class DroppedRecipient:
    """An address set aside before sending (invalid) or refused by the server, and why."""

    address: str
    reason: str
    field: str  # "to", "cc" or "bcc"


@dataclass(frozen=True)
class SentReceipt:
    """What a mailer did: the Message-ID sent, who accepted it, who was dropped and why."""

    message_id: str
    recipients: tuple[str, ...]
    dropped: tuple[DroppedRecipient, ...] = ()
    location: str = ""  # the outbox file for MaildirMailer; "" for SMTP


@dataclass(frozen=True)
class PreparedMessage:
    """A message checked and rendered to MIME: what goes on the wire and to whom."""

    message_id: str
    envelope_from: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    dropped: tuple[DroppedRecipient, ...]
    mime: EmailMessage = field(repr=False)

    @property
    def envelope_to(self) -> tuple[str, ...]:
        """Every recipient of the SMTP envelope: To, then Cc, then Bcc."""
        return self.to + self.cc + self.bcc

    def as_bytes(self) -> bytes:
        """The message as sent (CRLF line endings); carries no Bcc header."""
        return self.mime.as_bytes(policy=policy.SMTP)


@runtime_checkable
class Mailer(Protocol):
    """Sends one message; raises only connector.errors.MailError subclasses."""

    def send(self, message: OutgoingMessage) -> SentReceipt:
        """Send `message` now; the receipt names the Message-ID used."""
        ...


# -- ids and threading ----------------------------------------------------------------------------
def _domain_of(address: str) -> str:
    _, _, domain = address.rpartition("@")
    if not domain:
        raise InvalidMessage(f"the sender address {address!r} has no domain")
    return domain.lower()


def message_id(thread_key: str, message_key: str, from_address: str) -> str:
    """`<nudge.{sha256(thread_key|message_key)[:32]}@domain>`: the same for every retry of one message."""
    digest = hashlib.sha256(f"{thread_key}|{message_key}".encode()).hexdigest()[:32]
    return f"<nudge.{digest}@{_domain_of(from_address)}>"


def thread_root_id(thread_key: str, from_address: str) -> str:
    """The id every message of the thread refers to (`<nudge.{sha256(thread_key)[:32]}@domain>`)."""
    digest = hashlib.sha256(thread_key.encode()).hexdigest()[:32]
    return f"<nudge.{digest}@{_domain_of(from_address)}>"


def thread_headers(thread_key: str, message_key: str, earlier_keys: Sequence[str], from_address: str) -> dict[str, str]:
    """Message-ID, In-Reply-To and References for one message of a thread (no storage needed)."""
    own = message_id(thread_key, message_key, from_address)
    chain = [thread_root_id(thread_key, from_address)]
    chain += [message_id(thread_key, key, from_address) for key in earlier_keys if key != message_key]
    return {"Message-ID": own, "In-Reply-To": chain[-1], "References": " ".join(chain)}


# -- checks ---------------------------------------------------------------------------------------
def check_header(name: str, value: str) -> str:
    """`value` unchanged, or HeaderInjection when it holds a line break (CR, LF, NUL, U+2028...)."""
    bad = next((char for char in value if char in _LINE_BREAKS), None)
    if bad is not None:
        raise HeaderInjection(
            f"the {name} contains a line break ({bad!r}), which could inject email headers; the message was not sent",
            field=name,
        )
    return value


def normalize_address(raw: str) -> tuple[str, str]:
    """(display name, ASCII addr-spec) of one address, or ValueError with the reason it is undeliverable.

    Accepts `user@example.com` and `Name <user@example.com>`; the domain may be internationalized
    (it is sent in IDNA form). A non-ASCII local part is refused (it would need SMTPUTF8).
    """
    text = raw.strip()
    name = ""
    match = re.fullmatch(r"(.*?)\s*<([^<>]*)>", text)
    if match:
        name, text = match.group(1).strip().strip('"').strip(), match.group(2).strip()
    if not text:
        raise ValueError("empty address")
    if text.count("@") != 1:
        raise ValueError("an address needs exactly one '@'")
    local, domain = text.split("@")
    if not local or len(local) > 64 or not _LOCAL_PART.fullmatch(local):
        raise ValueError("the part before '@' is not a valid mailbox name")
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError("the domain is not a valid host name") from None
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError("the domain is not a valid host name")
    if labels[-1].isdigit():
        raise ValueError("the domain is not a valid host name")
    return name, f"{local}@{ascii_domain}"


def _sort_recipients(
    message: OutgoingMessage,
) -> tuple[dict[str, list[tuple[str, str]]], list[DroppedRecipient]]:
    kept: dict[str, list[tuple[str, str]]] = {"to": [], "cc": [], "bcc": []}
    seen: set[str] = set()
    dropped: list[DroppedRecipient] = []
    for kind, addresses in (("to", message.to), ("cc", message.cc), ("bcc", message.bcc)):
        if isinstance(addresses, str):
            addresses = [addresses]
        for raw in addresses:
            check_header(f"{kind.capitalize()} address", raw)
            try:
                name, address = normalize_address(raw)
            except ValueError as exc:
                dropped.append(DroppedRecipient(raw, str(exc), kind))
                continue
            if address.lower() in seen:
                continue  # already a recipient (To wins over Cc, Cc over Bcc)
            seen.add(address.lower())
            kept[kind].append((name, address))
    return kept, dropped


def _address(name: str, address: str) -> Address:
    local, _, domain = address.partition("@")
    return Address(display_name=name, username=local, domain=domain)


def prepare(message: OutgoingMessage, settings: MailSettings, *, now: datetime | None = None) -> PreparedMessage:
    """Check `message` and render it to MIME; raises InvalidMessage (nothing is sent) on any problem."""
    from_name = check_header("sender name", message.from_name or settings.from_name)
    from_raw = check_header("sender address", message.from_address or settings.from_address)
    reply_raw = check_header("Reply-To address", message.reply_to or settings.reply_to)
    subject = check_header("subject", message.subject)
    _check_custom_headers(message)
    sender, reply_to = _sender_and_reply_to(from_raw, reply_raw)
    kept, dropped = _deliverable_recipients(message)

    mime = EmailMessage(policy=policy.SMTP)
    mime["From"] = _address(from_name, sender)
    mime["To"] = [_address(*pair) for pair in kept["to"]]
    if kept["cc"]:
        mime["Cc"] = [_address(*pair) for pair in kept["cc"]]
    if reply_to is not None:
        mime["Reply-To"] = reply_to
    mime["Subject"] = subject
    mime["Date"] = format_datetime(now or datetime.now(UTC))
    ids = thread_headers(message.thread_key, message.message_key, message.earlier_keys, sender)
    for name, value in ids.items():
        mime[name] = value
    mime["Auto-Submitted"] = "auto-generated"  # RFC 3834: out-of-office robots should not answer
    mime["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    for name, value in message.headers.items():
        mime[name] = value

    mime.set_content(message.text, subtype="plain", charset="utf-8")
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html", charset="utf-8")
    _attach(mime, message)

    return PreparedMessage(
        message_id=ids["Message-ID"],
        envelope_from=sender,
        to=tuple(address for _, address in kept["to"]),
        cc=tuple(address for _, address in kept["cc"]),
        bcc=tuple(address for _, address in kept["bcc"]),
        dropped=tuple(dropped),
        mime=mime,
    )


def _check_custom_headers(message: OutgoingMessage) -> None:
    """Custom headers must be well formed and not ones the mailer sets; thread and message keys must be set."""
    for name, value in message.headers.items():
        check_header("header name", name)
        check_header(f"{name} header", value)
        if not _HEADER_NAME.fullmatch(name) or name.lower() in _MANAGED_HEADERS:
            raise InvalidMessage(f"the custom header {name!r} is not allowed (invalid name, or set by the mailer)")
    for key in (message.thread_key, message.message_key, *message.earlier_keys):
        if not key:
            raise InvalidMessage("a message needs a thread key and a message key")


def _sender_and_reply_to(from_raw: str, reply_raw: str) -> tuple[str, Address | None]:
    """The normalized sender address and the optional Reply-To address; InvalidMessage when not valid."""
    try:
        _, sender = normalize_address(from_raw)
    except ValueError as exc:
        raise InvalidMessage(f"the sender address {from_raw!r} is not valid: {exc}") from None
    if not reply_raw:
        return sender, None
    try:
        return sender, _address(*normalize_address(reply_raw))
    except ValueError as exc:
        raise InvalidMessage(f"the Reply-To address {reply_raw!r} is not valid: {exc}") from None


def _deliverable_recipients(
    message: OutgoingMessage,
) -> tuple[dict[str, list[tuple[str, str]]], list[DroppedRecipient]]:
    """The recipients kept by field and those dropped; NoValidRecipient when no To address is left."""
    kept, dropped = _sort_recipients(message)
    if not kept["to"]:
        reasons = "; ".join(f"{item.address!r}: {item.reason}" for item in dropped) or "no To address was given"
        raise NoValidRecipient(
            f"no valid To address, so the message was not sent ({reasons})",
            dropped=tuple((item.address, item.reason) for item in dropped),
        )
    return kept, dropped


def _attach(mime: EmailMessage, message: OutgoingMessage) -> None:
    """Add the message's attachments, each with a safe file name, a size limit and a valid MIME type."""
    for item in message.attachments:
        filename, content, mime_type = Attachment(*item)
        check_header("attachment file name", filename)
        if len(content) > MAX_ATTACHMENT_BYTES:
            raise InvalidMessage(f"the attachment {filename!r} is larger than {MAX_ATTACHMENT_BYTES // 2**20} MiB")
        maintype, _, subtype = mime_type.partition("/")
        if not maintype or not subtype:
            raise InvalidMessage(f"the attachment {filename!r} has no valid MIME type ({mime_type!r})")
        mime.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)


def log_dropped(prepared: PreparedMessage) -> None:
    """Log (without bodies) every recipient `prepare` dropped, with its reason."""
    for item in prepared.dropped:
        log.warning("mail %s: dropped %s recipient %r: %s", prepared.message_id, item.field, item.address, item.reason)

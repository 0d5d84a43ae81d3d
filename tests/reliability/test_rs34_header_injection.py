"""RS-34 — email header injection, from ledger values through the reminder templates to a real SMTP sink.

Ledger values (invoice number, organisation name, customer name, customer email) carry a CRLF
`Bcc:` line, a trailing line feed, or an RFC 2047 encoded word that decodes to a line break. Each
reminder is rendered with `render_reminder` (the shipped templates: the subject names the invoice
number and the business, the PDF is attached as `Invoice {number}.pdf`, the customer's name is the To
display name) and sent with the real `SmtpMailer` to aiosmtpd on loopback. Either the message is
refused before any connection (TemplateError / InvalidMessage), or it arrives sanitized: the sink
sees exactly the intended recipients and header fields.
"""

from __future__ import annotations

import email
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest

from connector.domain.money import Money
from connector.errors import InvalidMessage, TemplateError
from connector.mail.message import Attachment, OutgoingMessage
from connector.mail.rendering import InvoiceLine, ReminderContext, render_reminder
from connector.mail.smtp import SmtpMailer
from tests.support.smtp import smtp_server, smtp_settings

PDF = b"%PDF-1.4\n%%EOF\n"
GOOD_EMAIL = "jane@customer.example"
PAYLOADS = {
    "crlf_bcc": "\r\nBcc: x@evil.example",
    "trailing_lf": "\n",
    "encoded_word": "=?UTF-8?Q?=0A?=Bcc: x@evil.example",
    "encoded_word_full": "=?UTF-8?Q?=0D=0ABcc:_x@evil.example?=",
}
FIELDS = ("invoice_number", "business_name", "customer_name", "customer_email")
# What every reminder carries, in order (the PDF makes it multipart/mixed).
EXPECTED_HEADERS = [
    "from",
    "to",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-auto-response-suppress",
    "mime-version",
    "content-type",
]


@dataclass
class Sink:
    """An aiosmtpd handler that keeps every envelope and message it accepts."""

    received: list[tuple[list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    with smtp_server(handler) as port:
        yield handler, port


def mailer(port: int) -> SmtpMailer:
    settings = smtp_settings(
        port,
        from_name="Nudge for Acme",
        from_address="billing@acme.example",
        reply_to="office@acme.example",
        timeout_seconds=5,
    )
    return SmtpMailer(settings)


def reminder_from_ledger(values: dict[str, str]) -> OutgoingMessage:
    """What MailReminderSender builds from ledger values: the template, the To line and the PDF name."""
    number = values.get("invoice_number", "INV-1001")
    context = ReminderContext(
        customer_name=values.get("customer_name", "Jane Doe"),
        business_name=values.get("business_name", "Acme Plumbing"),
        invoices=[InvoiceLine(number, date(2024, 3, 5), Money.of("1234.50", "USD"), 12)],
        today=date(2024, 3, 17),
        has_attachment=True,
    )
    subject, text, html = render_reminder("gentle_nudge", context, locale="en_US")
    to = [f"{context.customer_name} <{GOOD_EMAIL}>"]
    if "customer_email" in values:  # the ledger's customer has the hostile address and a good one
        to = [values["customer_email"], GOOD_EMAIL]
    return OutgoingMessage(
        to=to,
        subject=subject,
        text=text,
        html=html,
        thread_key="conn-1:invoice:1001",
        message_key="rs34",
        attachments=[Attachment(f"Invoice {number}.pdf", PDF, "application/pdf")],
    )


def header_names(raw: bytes) -> list[str]:
    parsed = email.message_from_bytes(raw, policy=policy.default)
    return [name.lower() for name in parsed]


def every_header_line(raw: bytes) -> list[bytes]:
    lines: list[bytes] = []
    for block in raw.split(b"\r\n--"):
        lines += block.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    return lines


def hostile_values(where: str, payload: str) -> dict[str, str]:
    """The ledger value of field `where` carrying `payload` (an encoded word as a word of its own)."""
    text = PAYLOADS[payload]
    if where == "customer_email":
        emails = {
            "encoded_word": f"=?UTF-8?Q?=0A?=Bcc:x@evil.example <{GOOD_EMAIL}>",
            "encoded_word_full": "=?UTF-8?Q?a=0ABcc=3A_x=40evil.example?=@customer.example",
        }
        return {where: emails.get(payload, f"{GOOD_EMAIL}{text}")}
    base = {"invoice_number": "1001", "business_name": "Acme Plumbing", "customer_name": "Jane Doe"}[where]
    return {where: f"{base} {text}" if text.startswith("=?") else base + text}


def send_or_refuse(port: int, values: dict[str, str]) -> str | None:
    """Render and send; the refusal's message when the reminder was rejected before any connection."""
    try:
        mailer(port).send(reminder_from_ledger(values))
    except (TemplateError, InvalidMessage) as refused:
        return refused.user_message
    return None


@pytest.mark.parametrize("payload", list(PAYLOADS))
@pytest.mark.parametrize("where", FIELDS)
def test_rs34_ledger_values_never_add_recipients_or_headers(sink: tuple[Sink, int], where: str, payload: str) -> None:
    """RS-34: the message is rejected or sanitized; the SMTP sink shows no extra recipients or headers."""
    handler, port = sink
    refused = send_or_refuse(port, hostile_values(where, payload))
    if refused is not None:  # rejected: nothing reached the server, and the reason names the problem
        assert "line break" in refused or "address" in refused
        assert handler.received == []
        return

    [(recipients, raw)] = handler.received  # sanitized: it arrived, with nothing added
    assert recipients == [GOOD_EMAIL]
    assert header_names(raw) == EXPECTED_HEADERS
    lines = every_header_line(raw)
    assert not [line for line in lines if line.lower().startswith((b"bcc", b"cc:"))]
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert [item.addr_spec for item in parsed["To"].addresses] == [GOOD_EMAIL]
    assert [item.addr_spec for item in parsed["Reply-To"].addresses] == ["office@acme.example"]


def test_rs34_an_encoded_word_in_the_invoice_number_arrives_as_text(sink: tuple[Sink, int]) -> None:
    """RS-34: sanitized: `=?UTF-8?Q?=0A?=Bcc:` in an invoice number reaches the reader as text, not a header."""
    handler, port = sink
    mailer(port).send(reminder_from_ledger({"invoice_number": "1001 =?UTF-8?Q?=0A?=Bcc: x@evil.example"}))

    [(recipients, raw)] = handler.received
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert recipients == [GOOD_EMAIL]
    assert "Bcc" not in parsed
    assert "1001 = ?UTF-8?Q?=0A?=Bcc: x@evil.example" in str(parsed["Subject"])
    attachment = next(part for part in parsed.iter_attachments())
    assert attachment.get_filename() == "Invoice 1001 = ?UTF-8?Q?=0A?=Bcc: x@evil.example.pdf"

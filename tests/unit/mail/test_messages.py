"""Building messages: header checks, recipient checks, thread ids, and the maildir outbox."""

from __future__ import annotations

import email
import hashlib
import json
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

import pytest

from connector.bootstrap import mailer_for
from connector.config import MailSettings
from connector.errors import ConfigError, HeaderInjection, InvalidMessage, NoValidRecipient
from connector.mail.maildir import MaildirMailer
from connector.mail.message import (
    Attachment,
    Mailer,
    OutgoingMessage,
    message_id,
    normalize_address,
    prepare,
    thread_root_id,
    verify_wire_headers,
)
from connector.mail.smtp import SmtpMailer

SETTINGS = MailSettings(
    backend="maildir",
    outbox_path="",
    from_name="Acme Plumbing",
    from_address="billing@acme.example",
    reply_to="office@acme.example",
)
NOW = datetime(2024, 3, 17, 9, 30, tzinfo=UTC)


def outgoing(**kwargs: object) -> OutgoingMessage:
    base: dict[str, object] = {
        "to": ["jane@customer.example"],
        "subject": "Invoice INV-1001",
        "text": "Hello Jane",
        "html": "<p>Hello Jane</p>",
        "thread_key": "conn-1/invoice/1001",
        "message_key": "action-aaa",
    }
    base.update(kwargs)
    return OutgoingMessage(**base)  # type: ignore[arg-type]


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def body(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert isinstance(part, EmailMessage)
    return str(part.get_content()).replace("\r\n", "\n")


def test_message_ids_are_derived_from_the_thread_and_message_keys() -> None:
    digest = hashlib.sha256(b"conn-1/invoice/1001|action-aaa").hexdigest()[:32]
    assert message_id("conn-1/invoice/1001", "action-aaa", "billing@acme.example") == f"<nudge.{digest}@acme.example>"
    root = hashlib.sha256(b"conn-1/invoice/1001").hexdigest()[:32]
    assert thread_root_id("conn-1/invoice/1001", "billing@Acme.Example") == f"<nudge.{root}@acme.example>"


def test_a_prepared_message_has_sender_reply_to_thread_headers_and_both_bodies() -> None:
    first = prepare(outgoing(), SETTINGS, now=NOW)
    second = prepare(outgoing(message_key="action-bbb", earlier_keys=["action-aaa"]), SETTINGS, now=NOW)
    head = parsed(second.as_bytes())

    assert str(head["From"]) == "Acme Plumbing <billing@acme.example>"
    assert str(head["Reply-To"]) == "office@acme.example"
    assert str(head["Date"]) == "Sun, 17 Mar 2024 09:30:00 +0000"
    assert (
        head["Message-ID"]
        == second.message_id
        == message_id("conn-1/invoice/1001", "action-bbb", "billing@acme.example")
    )
    assert head["In-Reply-To"] == first.message_id
    assert head["References"] == f"{thread_root_id('conn-1/invoice/1001', 'billing@acme.example')} {first.message_id}"
    assert head["Auto-Submitted"] == "auto-generated"
    assert head.get_content_type() == "multipart/alternative"
    assert body(head, "plain") == "Hello Jane\n"
    assert body(head, "html") == "<p>Hello Jane</p>\n"
    assert b"\r\n" in second.as_bytes()
    assert b"\n" not in second.as_bytes().replace(b"\r\n", b"")


def test_the_first_message_of_a_thread_refers_to_the_thread_root_only() -> None:
    head = parsed(prepare(outgoing(), SETTINGS, now=NOW).as_bytes())
    root = thread_root_id("conn-1/invoice/1001", "billing@acme.example")

    assert head["In-Reply-To"] == root
    assert head["References"] == root


def test_non_ascii_names_and_domains_are_encoded_for_the_wire() -> None:
    message = outgoing(to=["Jürgen Groß <jurgen@bücher.example>"], subject="Erinnerung: Rechnung für März")
    settings = MailSettings(from_name="Bäckerei Müller", from_address="rechnung@baeckerei.example")
    prepared = prepare(message, settings, now=NOW)
    raw = prepared.as_bytes()

    assert raw.isascii()
    head = parsed(raw)
    assert prepared.to == ("jurgen@xn--bcher-kva.example",)
    assert str(head["To"]) == "Jürgen Groß <jurgen@xn--bcher-kva.example>"
    assert str(head["From"]) == "Bäckerei Müller <rechnung@baeckerei.example>"
    assert str(head["Subject"]) == "Erinnerung: Rechnung für März"


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("subject", {"subject": "Invoice\r\nBcc: everyone@example.org"}),
        ("subject", {"subject": "Invoice\nX-Evil: 1"}),
        ("subject", {"subject": "Invoice\u2028X-Evil: 1"}),
        ("sender name", {"from_name": "Acme\r\nBcc: everyone@example.org"}),
        ("To address", {"to": ["jane@customer.example\r\nBcc: everyone@example.org"]}),
        ("Cc address", {"cc": ["ok@customer.example\nX: y"]}),
        ("Reply-To address", {"reply_to": "office@acme.example\r\nX: y"}),
        ("X-Nudge-Ref header", {"headers": {"X-Nudge-Ref": "a\r\nBcc: x@example.org"}}),
        ("attachment file name", {"attachments": [("a\r\n.pdf", b"%PDF", "application/pdf")]}),
    ],
)
def test_line_breaks_in_any_header_field_are_rejected(field: str, change: dict[str, object]) -> None:
    with pytest.raises(HeaderInjection) as caught:
        prepare(outgoing(**change), SETTINGS, now=NOW)
    assert caught.value.field == field
    assert f"the {field} contains a line break" in caught.value.user_message
    assert "not sent" in caught.value.user_message


def test_custom_headers_cannot_override_the_ones_the_mailer_writes() -> None:
    with pytest.raises(InvalidMessage, match="'Bcc' is not allowed"):
        prepare(outgoing(headers={"Bcc": "x@example.org"}), SETTINGS, now=NOW)
    with pytest.raises(InvalidMessage, match="'Message-ID' is not allowed"):
        prepare(outgoing(headers={"Message-ID": "<x@y>"}), SETTINGS, now=NOW)
    head = parsed(prepare(outgoing(headers={"X-Nudge-Action": "action-aaa"}), SETTINGS, now=NOW).as_bytes())
    assert head["X-Nudge-Action"] == "action-aaa"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("", "empty address"),
        ("jane.customer.example", "exactly one '@'"),
        ("jane@@customer.example", "exactly one '@'"),
        ("jane doe@customer.example", "not a valid mailbox name"),
        (".jane@customer.example", "not a valid mailbox name"),
        ("jané@customer.example", "not a valid mailbox name"),
        ("jane@localhost", "not a valid host name"),
        ("jane@-bad-.example", "not a valid host name"),
        ("jane@127.0.0.1", "not a valid host name"),
    ],
)
def test_undeliverable_addresses_have_a_reason(address: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_address(address)


def test_invalid_recipients_are_dropped_with_a_reason_and_duplicates_collapse() -> None:
    message = outgoing(
        to=["Jane Doe <jane@customer.example>", "not-an-address", "JANE@customer.example"],
        cc=["jane@customer.example", "ap@customer.example", "bad@@x"],
        bcc=["ap@customer.example", "audit@acme.example"],
    )
    prepared = prepare(message, SETTINGS, now=NOW)

    assert prepared.to == ("jane@customer.example",)
    assert prepared.cc == ("ap@customer.example",)
    assert prepared.bcc == ("audit@acme.example",)
    assert [(d.address, d.field) for d in prepared.dropped] == [("not-an-address", "to"), ("bad@@x", "cc")]
    assert all(d.reason for d in prepared.dropped)
    head = parsed(prepared.as_bytes())
    assert str(head["To"]) == "Jane Doe <jane@customer.example>"
    assert str(head["Cc"]) == "ap@customer.example"
    assert "Bcc" not in head
    assert b"audit@acme.example" not in prepared.as_bytes()


def test_a_message_without_a_valid_to_address_is_refused_not_sent_nowhere() -> None:
    with pytest.raises(NoValidRecipient) as caught:
        prepare(outgoing(to=["nope", "also@bad@x"], cc=["ap@customer.example"]), SETTINGS, now=NOW)
    assert "no valid To address" in caught.value.user_message
    assert [address for address, _ in caught.value.dropped] == ["nope", "also@bad@x"]
    with pytest.raises(NoValidRecipient, match="no To address was given"):
        prepare(outgoing(to=[]), SETTINGS, now=NOW)


def test_a_single_string_recipient_is_one_address_not_characters() -> None:
    prepared = prepare(outgoing(to="jane@customer.example"), SETTINGS, now=NOW)
    assert prepared.to == ("jane@customer.example",)


def test_bad_sender_or_attachment_is_refused() -> None:
    with pytest.raises(InvalidMessage, match="sender address"):
        prepare(outgoing(from_address="billing"), SETTINGS, now=NOW)
    with pytest.raises(InvalidMessage, match="no valid MIME type"):
        prepare(outgoing(attachments=[("a.pdf", b"x", "pdf")]), SETTINGS, now=NOW)


def test_the_maildir_mailer_writes_one_eml_per_message_that_parses_back(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    mailer = MaildirMailer(outbox, SETTINGS, clock=lambda: NOW)
    pdf = b"%PDF-1.4\n% fake invoice\n%%EOF\n"
    message = outgoing(
        cc=["ap@customer.example"],
        bcc=["audit@acme.example", "broken"],
        attachments=[Attachment("INV-1001.pdf", pdf, "application/pdf")],
    )

    receipt = mailer.send(message)
    again = mailer.send(message)  # a retry rewrites the same file
    other = mailer.send(outgoing(message_key="action-bbb", earlier_keys=["action-aaa"]))

    assert isinstance(mailer, Mailer)
    assert (
        receipt.message_id
        == again.message_id
        == message_id("conn-1/invoice/1001", "action-aaa", "billing@acme.example")
    )
    assert sorted(path.name for path in outbox.glob("*.eml")) == sorted(
        {Path(receipt.location).name, Path(other.location).name}
    )
    assert len(list(outbox.glob("*.eml"))) == 2
    assert not list(outbox.glob(".tmp-*"))
    assert receipt.recipients == ("jane@customer.example", "ap@customer.example", "audit@acme.example")
    assert [(d.address, d.field) for d in receipt.dropped] == [("broken", "bcc")]

    head = parsed(Path(receipt.location).read_bytes())
    assert head["Message-ID"] == receipt.message_id
    assert str(head["To"]) == "jane@customer.example"
    assert str(head["Cc"]) == "ap@customer.example"
    assert "Bcc" not in head
    assert body(head, "plain") == "Hello Jane\n"
    [attachment] = list(head.iter_attachments())
    assert attachment.get_filename() == "INV-1001.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == pdf

    envelope = json.loads(Path(receipt.location).with_suffix(".envelope.json").read_text())
    assert envelope["bcc"] == ["audit@acme.example"]
    assert envelope["dropped"][0]["address"] == "broken"


def test_mailer_for_picks_the_configured_backend(tmp_path: Path) -> None:
    maildir = mailer_for(MailSettings(backend="maildir", outbox_path=str(tmp_path)))
    smtp = mailer_for(MailSettings(backend="smtp", smtp_password="hunter2-secret"))

    assert isinstance(maildir, MaildirMailer)
    assert maildir.path == tmp_path
    assert isinstance(smtp, SmtpMailer)
    assert "hunter2" not in repr(smtp)
    with pytest.raises(ConfigError, match="unknown mail backend"):
        mailer_for(MailSettings(backend="pigeon"))
    with pytest.raises(ConfigError, match="outbox_path is empty"):
        mailer_for(MailSettings(backend="maildir", outbox_path=""))
    with pytest.raises(ConfigError, match="unknown smtp_security"):
        mailer_for(MailSettings(backend="smtp", smtp_security="tls"))


def test_message_reprs_leave_out_the_bodies() -> None:
    text = repr(outgoing(text="secret body text", html="<p>secret body html</p>"))
    assert "secret body" not in text
    assert "action-aaa" in text


# -- RFC 2047 encoded words and control characters (issue 10 item 1, RS-34) ---------------------------
EVIL_WORD = "=?UTF-8?Q?=0ABcc:_x@evil.example?="
EXPECTED_TOP = [
    "From",
    "To",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
]


def header_lines(raw: bytes) -> list[bytes]:
    """Every header line of every part (continuation lines included)."""
    lines: list[bytes] = []
    for block in raw.split(b"\r\n--"):
        head = block.split(b"\r\n\r\n", 1)[0]
        lines += head.split(b"\r\n")
    return lines


def addresses_of(head: EmailMessage, name: str) -> tuple[Address, ...]:
    header = head.get(name)
    return tuple(header.addresses) if header is not None else ()


@pytest.mark.parametrize(
    "change",
    [
        {"subject": "Invoice =?UTF-8?Q?=0A?=Bcc: x@evil.example"},
        {"subject": f"Reminder about invoice {EVIL_WORD} from Acme"},
        {"subject": "Invoice =?UTF-8?Q?=0D=0ABcc:_x@evil.example?="},
        {"subject": "Invoice =?UTF-8?B?CkJjYzogeEBldmlsLmV4YW1wbGU=?="},
        {"from_name": f"Acme {EVIL_WORD}"},
        {"to": [f"{EVIL_WORD} <jane@customer.example>"]},
        {"to": [f'"Jane {EVIL_WORD}" <jane@customer.example>']},
        {"cc": [f"Ap {EVIL_WORD} <ap@customer.example>"]},
        {"reply_to": f"Office {EVIL_WORD} <office@acme.example>"},
        {"headers": {"X-Nudge-Ref": f"ref {EVIL_WORD}"}},
        {"attachments": [(f"Invoice {EVIL_WORD}.pdf", b"%PDF", "application/pdf")]},
        {"attachments": [("x\"; filename*=UTF-8''a%0D%0ABcc:%20x@evil.example; a=\".pdf", b"%PDF", "application/pdf")]},
        {"subject": "Invoice \x1b[31m1001\x7f\x01\x08 due\t"},
    ],
)
def test_encoded_words_and_control_characters_never_become_headers(change: dict[str, object]) -> None:
    """RS-34: a hostile value is sanitized: the wire form has exactly the intended headers and recipients."""
    prepared = prepare(outgoing(**change), SETTINGS, now=NOW)
    raw = prepared.as_bytes()

    head = parsed(raw)
    assert [name for name, _ in head.items() if name != "Cc"][: len(EXPECTED_TOP)] == EXPECTED_TOP
    assert "Bcc" not in head
    assert not any(line.lower().startswith(b"bcc") for line in header_lines(raw))
    assert all(0x20 <= byte < 0x7F or byte == 0x09 for line in header_lines(raw) for byte in line)
    addresses = [item.addr_spec for name in ("From", "To", "Cc", "Reply-To") for item in addresses_of(head, name)]
    assert not [address for address in addresses if "evil" in address]
    assert set(prepared.envelope_to) <= {"jane@customer.example", "ap@customer.example"}


def test_a_sanitized_encoded_word_stays_readable_but_is_not_decoded() -> None:
    """The text of an encoded word reaches the reader as typed, broken so no mail reader decodes it."""
    head = parsed(prepare(outgoing(subject=f"Invoice {EVIL_WORD}"), SETTINGS, now=NOW).as_bytes())

    assert str(head["Subject"]) == "Invoice = ?UTF-8?Q?=0ABcc:_x@evil.example?="


def test_control_characters_in_a_header_become_spaces() -> None:
    head = parsed(prepare(outgoing(subject="Invoice\x1b1001\x7fdue\tnow"), SETTINGS, now=NOW).as_bytes())

    assert str(head["Subject"]) == "Invoice 1001 due now"


def test_an_address_whose_mailbox_is_an_encoded_word_is_dropped() -> None:
    """A local part may legally hold '=?': one that looks like an encoded word is set aside with a reason."""
    hostile = "=?UTF-8?Q?a=0ABcc=3A_x=40evil.example?=@customer.example"
    prepared = prepare(outgoing(to=[hostile, "jane@customer.example"]), SETTINGS, now=NOW)

    assert prepared.to == ("jane@customer.example",)
    assert [item.address for item in prepared.dropped] == [hostile]
    assert "encoded word" in prepared.dropped[0].reason
    assert b"evil" not in prepared.as_bytes()


def test_the_wire_form_is_reparsed_and_an_extra_header_stops_the_message() -> None:
    """The last check compares the generated bytes' headers with the intended ones, whatever produced them."""
    prepared = prepare(outgoing(), SETTINGS, now=NOW)
    raw = prepared.as_bytes()
    tampered = raw.replace(b"\r\nDate:", b"\r\nBcc: x@evil.example\r\nDate:", 1)

    with pytest.raises(HeaderInjection, match="Bcc") as caught:
        verify_wire_headers(prepared.mime, tampered)
    assert "not sent" in caught.value.user_message
    verify_wire_headers(prepared.mime, raw)


def test_a_changed_recipient_in_the_wire_form_stops_the_message() -> None:
    prepared = prepare(outgoing(), SETTINGS, now=NOW)
    tampered = prepared.as_bytes().replace(b"To: jane@customer.example", b"To: jane@customer.example, x@evil.example")

    with pytest.raises(HeaderInjection, match="To"):
        verify_wire_headers(prepared.mime, tampered)


def test_mailers_date_messages_with_the_clock_they_are_given(tmp_path: Path) -> None:
    """Nudge's own clock dates what it sends: the demo's simulated days, never the machine's real day."""
    moment = datetime(2026, 12, 24, 14, 0, tzinfo=UTC)
    maildir = mailer_for(MailSettings(backend="maildir", outbox_path=str(tmp_path)), lambda: moment)
    message = OutgoingMessage(to=["a@example.com"], subject="Hello", text="Hi", thread_key="t", message_key="k" * 40)
    maildir.send(message)
    [written] = list(tmp_path.rglob("*.eml"))
    assert "Date: Thu, 24 Dec 2026 14:00:00 +0000" in written.read_text()

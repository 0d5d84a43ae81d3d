"""Building messages: header checks, recipient checks, thread ids, and the maildir outbox."""

from __future__ import annotations

import email
import hashlib
import json
from datetime import UTC, datetime
from email import policy
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

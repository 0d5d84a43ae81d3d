"""Reminders sent through a real SMTP server (aiosmtpd on loopback), parsed as they arrived.

Covers plain SMTP, STARTTLS and implicit TLS with a certificate made in the test, AUTH, threading
across the reminders of one invoice, recipients (Bcc only in the envelope), the payment link, the
PDF attachment, locale formatting, and how server failures map onto MailTransient / MailRejected.
"""

from __future__ import annotations

import asyncio
import email
import ipaddress
import logging
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connector.config import MailSettings
from connector.domain.money import Money
from connector.errors import MailRejected, MailTransient, NoValidRecipient
from connector.mail.message import Attachment, OutgoingMessage, SentReceipt, message_id, thread_root_id
from connector.mail.rendering import InvoiceLine, ReminderContext, render_reminder
from connector.mail.smtp import SmtpMailer
from tests.support.net import free_port

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
LINK = "https://pay.example.com/invoice/1001?token=abc"
PASSWORD = "s3cret-smtp-password"
THREAD = "conn-7/invoice/1001"


# -- the server -------------------------------------------------------------------------------------
@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps what arrives and can refuse on cue."""

    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address -> reply (e.g. "550 ...")
    data_reply: str = "250 2.0.0 OK"
    drop_during_data: bool = False
    stall_before_354: bool = False  # the DATA command is never answered (no 354)
    stall_after_body: bool = False  # the message arrives but its final reply never comes
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.stall_after_body:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
            await asyncio.sleep(30)
        if self.drop_during_data:
            server.transport.close()
            await asyncio.sleep(0.05)
            return "250 OK"
        if self.data_reply.startswith("250"):
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return self.data_reply

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            self.logins.append(auth_data.login.decode())
            ok = auth_data.login == b"acme" and auth_data.password == PASSWORD.encode()
            return AuthResult(success=ok, handled=False)
        return AuthResult(success=False, handled=False)


def ours(caplog: pytest.LogCaptureFixture) -> str:
    """What Nudge logged (the test server, aiosmtpd, logs whole sessions at DEBUG: not ours to judge)."""
    return "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}"
        for record in caplog.records
        if record.name.startswith("connector")
    )


class StallingSMTP(SMTP):
    """aiosmtpd's SMTP session, which can leave the DATA command unanswered (its handler says when)."""

    async def smtp_DATA(self, arg: str) -> None:
        if getattr(self.event_handler, "stall_before_354", False):
            await asyncio.sleep(30)
        await super().smtp_DATA(arg)


class StallingController(Controller):
    def factory(self) -> SMTP:
        return StallingSMTP(self.handler, **self.SMTP_kwargs)


@dataclass
class Server:
    handler: Recorder
    port: int
    client_context: ssl.SSLContext | None

    def settings(self, **overrides: Any) -> MailSettings:
        base = MailSettings(
            backend="smtp",
            smtp_host="127.0.0.1",
            smtp_port=self.port,
            smtp_security="none",
            from_name="Acme Plumbing",
            from_address="billing@acme.example",
            reply_to="office@acme.example",
            timeout_seconds=5,
        )
        return replace(base, **overrides)

    def mailer(self, **overrides: Any) -> SmtpMailer:
        return SmtpMailer(self.settings(**overrides), ssl_context=self.client_context, local_hostname="nudge.test")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost, made here with `cryptography`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    """Start aiosmtpd on 127.0.0.1 and a free port; every server started is stopped after the test."""
    started: list[Controller] = []

    def start(client: ssl.SSLContext | None = None, **options: Any) -> Server:
        handler = Recorder()
        if options.pop("auth", False):
            options["authenticator"] = handler.authenticate
        port = free_port()
        controller = StallingController(handler, hostname="127.0.0.1", port=port, ready_timeout=5, **options)
        controller.start()
        started.append(controller)
        return Server(handler, port, client)

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def plain(start_server: Callable[..., Server]) -> Server:
    return start_server()


# -- the messages -------------------------------------------------------------------------------------
def reminder(
    template: str,
    key: str,
    *,
    earlier: tuple[str, ...] = (),
    locale: str = "en_US",
    balance: Money | None = None,
    **kwargs: Any,
) -> OutgoingMessage:
    ctx = ReminderContext(
        customer_name="Jane Doe",
        business_name="Acme Plumbing",
        invoices=[
            InvoiceLine("INV-1001", date(2024, 3, 5), balance or Money.of("1234.50", "USD"), 12, payment_link=LINK)
        ],
        today=date(2024, 3, 17),
        has_attachment=True,
    )
    subject, text, html = render_reminder(template, ctx, locale=locale)
    base: dict[str, Any] = {
        "to": ["Jane Doe <jane@customer.example>"],
        "cc": ["ap@customer.example"],
        "bcc": ["audit@acme.example"],
        "subject": subject,
        "text": text,
        "html": html,
        "thread_key": THREAD,
        "message_key": key,
        "earlier_keys": earlier,
        "attachments": [Attachment("INV-1001.pdf", PDF, "application/pdf")],
    }
    base.update(kwargs)
    return OutgoingMessage(**base)


def text_of(message: EmailMessage, kind: str = "plain") -> str:
    part = message.get_body((kind,))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


# -- delivery -----------------------------------------------------------------------------------------
def test_a_reminder_arrives_with_recipients_link_attachment_and_formatted_amounts(plain: Server) -> None:
    receipt = plain.mailer().send(reminder("firm", "action-1"))

    [arrived] = plain.handler.received
    message = arrived.message
    assert arrived.mail_from == "billing@acme.example"
    assert arrived.rcpt_tos == ["jane@customer.example", "ap@customer.example", "audit@acme.example"]
    assert receipt.recipients == tuple(arrived.rcpt_tos)
    assert str(message["From"]) == "Acme Plumbing <billing@acme.example>"
    assert str(message["Reply-To"]) == "office@acme.example"
    assert str(message["To"]) == "Jane Doe <jane@customer.example>"
    assert str(message["Cc"]) == "ap@customer.example"
    assert "Bcc" not in message
    assert b"audit@acme.example" not in arrived.raw  # Bcc lives only in the envelope
    assert str(message["Subject"]) == "Invoice INV-1001 is now 12 days overdue"
    assert message["Message-ID"] == receipt.message_id == message_id(THREAD, "action-1", "billing@acme.example")

    text, html = text_of(message), text_of(message, "html")
    assert LINK in text
    assert 'href="https://pay.example.com/invoice/1001?token=abc"' in html
    assert "$1,234.50" in text
    assert "$1,234.50" in html
    assert "March 5, 2024" in text
    [attachment] = list(message.iter_attachments())
    assert (attachment.get_filename(), attachment.get_content_type()) == ("INV-1001.pdf", "application/pdf")
    assert attachment.get_content() == PDF


@pytest.mark.parametrize(
    ("locale", "balance", "amount", "day"),
    [
        ("en_US", Money.of("1234.50", "USD"), "$1,234.50", "March 5, 2024"),
        ("de_DE", Money.of("1234.50", "EUR"), "1.234,50\xa0€", "5. März 2024"),
        ("ja_JP", Money.of("1234.5", "JPY"), "￥1,235", "2024年3月5日"),
    ],
)
def test_amounts_and_dates_arrive_formatted_for_the_customer(
    plain: Server, locale: str, balance: Money, amount: str, day: str
) -> None:
    plain.mailer().send(reminder("gentle_nudge", f"action-{locale}", locale=locale, balance=balance))

    message = plain.handler.received[-1].message
    assert amount in text_of(message)
    assert day in text_of(message)
    assert amount in text_of(message, "html")
    assert day in text_of(message, "html")


def test_reminders_of_one_invoice_thread_under_the_first_and_retries_keep_their_id(plain: Server) -> None:
    mailer = plain.mailer()
    first = mailer.send(reminder("gentle_nudge", "action-1"))
    second = mailer.send(reminder("firm", "action-2", earlier=("action-1",)))
    third = mailer.send(reminder("final_notice", "action-3", earlier=("action-1", "action-2")))
    retry = mailer.send(reminder("final_notice", "action-3", earlier=("action-1", "action-2")))

    one, two, three, again = (received.message for received in plain.handler.received)
    root = thread_root_id(THREAD, "billing@acme.example")
    assert len({first.message_id, second.message_id, third.message_id}) == 3
    assert one["Message-ID"] == first.message_id
    assert one["References"] == root
    assert two["Message-ID"] == second.message_id
    assert two["In-Reply-To"] == first.message_id
    assert two["References"] == f"{root} {first.message_id}"
    assert three["In-Reply-To"] == second.message_id
    assert three["References"] == f"{root} {first.message_id} {second.message_id}"
    assert retry.message_id == third.message_id == again["Message-ID"] == three["Message-ID"]


def test_another_invoice_starts_its_own_thread(plain: Server) -> None:
    mailer = plain.mailer()
    mailer.send(reminder("firm", "action-1"))
    mailer.send(reminder("firm", "action-1", thread_key="conn-7/invoice/2002"))

    one, two = (received.message for received in plain.handler.received)
    assert one["Message-ID"] != two["Message-ID"]
    assert one["References"] != two["References"]


def test_invalid_addresses_are_dropped_and_the_rest_still_get_the_reminder(plain: Server) -> None:
    message = reminder(
        "firm", "action-1", to=["jane@customer.example", "jane at customer"], cc=["ap@customer.example", "x@"]
    )

    receipt = plain.mailer().send(message)

    [arrived] = plain.handler.received
    assert arrived.rcpt_tos == ["jane@customer.example", "ap@customer.example", "audit@acme.example"]
    assert [(d.address, d.field) for d in receipt.dropped] == [("jane at customer", "to"), ("x@", "cc")]


def test_no_valid_recipient_means_nothing_is_sent(plain: Server) -> None:
    with pytest.raises(NoValidRecipient):
        plain.mailer().send(reminder("firm", "action-1", to=["nobody"], cc=["ap@customer.example"]))
    assert plain.handler.received == []


def test_recipients_the_server_refuses_are_reported(plain: Server) -> None:
    plain.handler.rcpt_replies["ap@customer.example"] = "550 5.1.1 No such user"

    receipt = plain.mailer().send(reminder("firm", "action-1"))

    assert plain.handler.received[0].rcpt_tos == ["jane@customer.example", "audit@acme.example"]
    assert receipt.recipients == ("jane@customer.example", "audit@acme.example")
    [refused] = receipt.dropped
    assert refused.address == "ap@customer.example"
    assert refused.field == "cc"
    assert "550" in refused.reason
    assert "No such user" in refused.reason


# -- TLS and login --------------------------------------------------------------------------------------
def test_starttls_with_login(start_server: Callable[..., Server], certificate: tuple[Path, Path]) -> None:
    server = start_server(
        client_context(certificate),
        tls_context=server_context(certificate),
        require_starttls=True,
        auth=True,
        auth_required=True,
        auth_require_tls=True,
    )

    receipt = server.mailer(smtp_security="starttls", smtp_username="acme", smtp_password=PASSWORD).send(
        reminder("firm", "action-1")
    )

    assert server.handler.logins == ["acme"]
    [arrived] = server.handler.received
    assert arrived.message["Message-ID"] == receipt.message_id
    assert LINK in text_of(arrived.message)


def test_starttls_without_login(start_server: Callable[..., Server], certificate: tuple[Path, Path]) -> None:
    server = start_server(client_context(certificate), tls_context=server_context(certificate), require_starttls=True)

    server.mailer(smtp_security="starttls").send(reminder("due_today", "action-1"))

    # INV-1001 is 12 days overdue: "due today" wording must not claim it is due today
    assert str(server.handler.received[0].message["Subject"]) == "Invoice INV-1001 was due on March 5, 2024"


def test_implicit_tls(start_server: Callable[..., Server], certificate: tuple[Path, Path]) -> None:
    server = start_server(client_context(certificate), ssl_context=server_context(certificate))

    server.mailer(smtp_security="ssl").send(reminder("firm", "action-1"))

    assert len(server.handler.received) == 1


def test_a_wrong_password_is_rejected_and_never_logged(
    start_server: Callable[..., Server], certificate: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(
        client_context(certificate),
        tls_context=server_context(certificate),
        require_starttls=True,
        auth=True,
        auth_required=True,
    )
    wrong = "wrong-password-123"

    with caplog.at_level(logging.DEBUG), pytest.raises(MailRejected) as caught:
        server.mailer(smtp_security="starttls", smtp_username="acme", smtp_password=wrong).send(
            reminder("firm", "action-1")
        )

    assert caught.value.smtp_code == 535
    assert "logging in" in caught.value.user_message
    assert wrong not in caught.value.user_message
    assert wrong not in ours(caplog)
    assert server.handler.received == []


def test_an_untrusted_certificate_is_refused(
    start_server: Callable[..., Server], certificate: tuple[Path, Path]
) -> None:
    server = start_server(ssl.create_default_context(), tls_context=server_context(certificate), require_starttls=True)

    with pytest.raises(MailRejected, match="certificate"):
        server.mailer(smtp_security="starttls").send(reminder("firm", "action-1"))
    assert server.handler.received == []


def test_starttls_required_but_not_offered_is_refused(plain: Server) -> None:
    with pytest.raises(MailRejected, match="does not offer STARTTLS"):
        plain.mailer(smtp_security="starttls").send(reminder("firm", "action-1"))
    assert plain.handler.received == []


def test_a_password_is_never_sent_without_tls(plain: Server) -> None:
    with pytest.raises(MailRejected, match="without TLS"):
        plain.mailer(smtp_username="acme", smtp_password=PASSWORD).send(reminder("firm", "action-1"))
    assert plain.handler.received == []


# -- failures -------------------------------------------------------------------------------------------
def test_no_server_listening_is_transient() -> None:
    settings = MailSettings(backend="smtp", smtp_host="127.0.0.1", smtp_port=free_port(), smtp_security="none")

    with pytest.raises(MailTransient) as caught:
        SmtpMailer(settings).send(reminder("firm", "action-1"))

    assert caught.value.maybe_sent is False
    assert "could not reach the mail server 127.0.0.1" in caught.value.user_message


def test_a_4xx_reply_is_transient_and_a_5xx_reply_is_rejected(plain: Server) -> None:
    plain.handler.data_reply = "451 4.3.0 Try again later"
    with pytest.raises(MailTransient) as transient:
        plain.mailer().send(reminder("firm", "action-1"))
    assert transient.value.smtp_code == 451
    assert "Try again later" in transient.value.user_message

    plain.handler.data_reply = "554 5.7.1 Message refused"
    with pytest.raises(MailRejected) as rejected:
        plain.mailer().send(reminder("firm", "action-1"))
    assert rejected.value.smtp_code == 554
    assert "Message refused" in rejected.value.user_message
    assert plain.handler.received == []


def test_every_to_address_refused_is_transient_for_4xx_and_rejected_for_5xx(plain: Server) -> None:
    plain.handler.rcpt_replies["jane@customer.example"] = "452 4.2.2 Mailbox full"
    with pytest.raises(MailTransient, match="no To recipient was accepted"):
        plain.mailer().send(reminder("firm", "action-1"))

    plain.handler.rcpt_replies["jane@customer.example"] = "550 5.1.1 No such user"
    with pytest.raises(MailRejected, match="No such user"):
        plain.mailer().send(reminder("firm", "action-1"))
    assert plain.handler.received == []  # never delivered to the Cc/Bcc alone


def test_a_connection_lost_during_data_may_have_been_sent(plain: Server) -> None:
    plain.handler.drop_during_data = True

    with pytest.raises(MailTransient) as caught:
        plain.mailer().send(reminder("firm", "action-1"))

    assert caught.value.maybe_sent is True
    assert "may have been delivered" in caught.value.user_message


def test_a_timeout_waiting_for_the_354_means_nothing_was_sent(plain: Server) -> None:
    """RS-05 / item 13: no 354, no body sent: retryable, and certainly not delivered."""
    plain.handler.stall_before_354 = True

    with pytest.raises(MailTransient) as caught:
        plain.mailer(timeout_seconds=1).send(reminder("firm", "action-1"))

    assert caught.value.maybe_sent is False
    assert "DATA" in caught.value.user_message
    assert "nothing was delivered" in caught.value.user_message
    assert plain.handler.received == []


def test_a_timeout_after_the_body_was_sent_may_have_been_delivered(plain: Server) -> None:
    """RS-04 / item 13: the body went out and the final reply never came: uncertain, never retried."""
    plain.handler.stall_after_body = True

    with pytest.raises(MailTransient) as caught:
        plain.mailer(timeout_seconds=1).send(reminder("firm", "action-1"))

    assert caught.value.maybe_sent is True
    assert "may have been delivered" in caught.value.user_message
    assert len(plain.handler.received) == 1


def test_a_connection_closed_at_mail_from_is_transient_and_not_sent(plain: Server) -> None:
    plain.handler.rcpt_replies["jane@customer.example"] = "421 4.3.2 Closing"

    with pytest.raises(MailTransient) as caught:
        plain.mailer().send(reminder("firm", "action-1"))

    assert caught.value.maybe_sent is False
    assert plain.handler.received == []


def test_refused_recipients_are_logged_without_their_address(plain: Server, caplog: pytest.LogCaptureFixture) -> None:
    """Item 18: a log line names the message and a hash, never the customer's address."""
    plain.handler.rcpt_replies["ap@customer.example"] = "550 5.1.1 No such user"
    caplog.set_level(logging.INFO)

    plain.mailer().send(reminder("firm", "action-1", to=["Jane Doe <jane@customer.example>", "not-an-address"]))

    logged = ours(caplog)
    assert "refused" in logged
    assert "dropped" in logged
    assert "customer.example" not in logged
    assert "not-an-address" not in logged


def test_bodies_and_password_stay_out_of_the_logs(
    start_server: Callable[..., Server], certificate: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(
        client_context(certificate),
        tls_context=server_context(certificate),
        require_starttls=True,
        auth=True,
        auth_required=True,
    )
    message = reminder("firm", "action-1", text="BODY-MARKER plain", html="<p>BODY-MARKER html</p>")

    with caplog.at_level(logging.DEBUG):
        receipt: SentReceipt = server.mailer(
            smtp_security="starttls", smtp_username="acme", smtp_password=PASSWORD
        ).send(message)

    logged = ours(caplog)
    assert receipt.message_id in logged  # the send is logged ...
    assert "BODY-MARKER" not in logged  # ... without its body
    assert PASSWORD not in logged

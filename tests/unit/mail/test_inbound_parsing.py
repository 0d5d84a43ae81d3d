"""Parsing customers' replies (issue 17): hostile bytes never raise, quotes and signatures are trimmed, automatic
replies are recognised by the documented rules, and reply tokens are tamper-evident."""

from __future__ import annotations

import pytest

from connector.mail.inbound.compose import compose
from connector.mail.inbound.parsing import auto_reply_reason, html_to_text, parse, trim_quoted
from connector.mail.inbound.reply_address import ReplyAddresses, ReplyThread, derive_key, thread_hash

KEY = derive_key("a session secret for the tests")


def message(headers: str, body: bytes = b"Thanks, we pay on Friday.\r\n") -> bytes:
    return headers.strip().replace("\n", "\r\n").encode("utf-8") + b"\r\n\r\n" + body


def test_a_plain_reply_is_read_with_its_thread_references() -> None:
    raw = message(
        """
From: "Jane Buyer" <Jane@Customer.example>
To: replies+abc@nudge.example
Subject: Re: Invoice 1001 is overdue
Message-ID: <reply-1@customer.example>
In-Reply-To: <r2@nudge.example>
References: <root@nudge.example> <r1@nudge.example> <r2@nudge.example>
Date: Mon, 16 Nov 2026 10:00:00 +0000
""",
        b"Thanks, we pay on Friday.\r\n\r\nOn Mon, 16 Nov 2026 at 09:30, Books Ltd <billing@books.example> wrote:\r\n"
        b"> Invoice 1001 is overdue\r\n",
    )
    email = parse(raw)
    assert email.from_address == "jane@customer.example"
    assert email.from_name == "Jane Buyer"
    assert email.recipients == ("replies+abc@nudge.example",)
    assert email.message_id == "<reply-1@customer.example>"
    assert email.references[:2] == ("<r2@nudge.example>", "<r1@nudge.example>")
    assert email.trimmed == "Thanks, we pay on Friday."
    assert email.auto_reply == ""
    assert email.sent_at is not None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage without headers",
        b"Subject: " + b"A" * 200_000 + b"\r\n\r\nbody",
        b"From: <<<@@@>>>\r\nTo: ,,,;;;\r\nDate: not a date\r\nMessage-ID: no brackets\r\n\r\nhi",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain; charset=klingon\r\n\r\n"
        b"\xc3\x28 broken utf8\r\n--x",  # unterminated multipart, unknown charset, invalid UTF-8
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!",
        b"Subject: =?utf-8?q?=0AInjected=0D=0A?=\r\n\r\nhi",
        b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
        + b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 500,
    ],
)
def test_hostile_input_never_raises_and_keeps_fields_bounded(raw: bytes) -> None:
    email = parse(raw)
    assert len(email.subject) <= 300
    assert "\n" not in email.subject
    assert "\r" not in email.subject
    assert len(email.text) <= 20_000
    assert email.size == len(raw)


def test_an_html_only_reply_becomes_text_without_scripts_styles_or_the_quoted_mail() -> None:
    html = (
        "<html><head><style>p{color:red}</style><script>alert(1)</script></head><body>"
        "<p>We paid yesterday &amp; sent the remittance.</p><div>Reference 4471<br>Jane</div>"
        '<div class="gmail_quote"><div>On Monday, Books wrote:</div><blockquote>old reminder</blockquote></div>'
        "</body></html>"
    )
    raw = message("From: j@c.example\nContent-Type: text/html; charset=utf-8", html.encode())
    email = parse(raw)
    assert "We paid yesterday & sent the remittance." in email.text
    assert "Reference 4471" in email.text
    for absent in ("alert", "color:red", "old reminder", "<p>"):
        assert absent not in email.text


def test_html_to_text_survives_unclosed_and_nested_tags() -> None:
    text = html_to_text("<p>one<p>two<blockquote>q<blockquote>qq</blockquote>q</blockquote>three<div><span>four")
    assert [line for line in text.split("\n") if line] == ["one", "two", "three", "four"]


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Paid today.\n\nOn Mon, 16 Nov 2026 at 09:30, Books <b@x> wrote:\n> old", "Paid today."),
        ("Paid today.\n\nOn Mon, 16 Nov 2026 at 09:30, Books\n<b@x> wrote:\n> old", "Paid today."),
        ("Bezahlt.\n\nAm 16.11.2026 um 09:30 schrieb Books <b@x>:\n> alt", "Bezahlt."),
        ("Payé.\n\nLe lun. 16 nov. 2026, Books <b@x> a écrit :\n> vieux", "Payé."),
        ("See below\n\n-----Original Message-----\nFrom: Books\nSent: Monday", "See below"),
        ("Will pay\n\n________________________________\nFrom: Books <b@x>\nSent: Monday\nTo: me", "Will pay"),
        ("Will pay\n\nFrom: Books <b@x>\nSent: Monday, 16 November\nSubject: Invoice", "Will pay"),
        ("Ok thanks\n-- \nJane Buyer\nAccounts", "Ok thanks"),
        ("Ok thanks\n\nSent from my iPhone", "Ok thanks"),
        ("> quoted only\n> nothing else", "> quoted only\n> nothing else"),
        ("Top\n> quoted\nBottom reply", "Top\nBottom reply"),
    ],
)
def test_quoted_text_and_signatures_are_trimmed(text: str, kept: str) -> None:
    assert trim_quoted(text) == kept


@pytest.mark.parametrize(
    ("headers", "automatic"),
    [
        ({"Auto-Submitted": "auto-replied"}, True),
        ({"Auto-Submitted": "auto-generated"}, True),
        ({"Auto-Submitted": "no"}, False),
        ({"X-Autoreply": "yes"}, True),
        ({"X-Autorespond": "Out of office"}, True),
        ({"Precedence": "auto_reply"}, True),
        ({"Precedence": "bulk"}, True),
        ({"Precedence": "list"}, True),
        ({"Return-Path": "<>"}, True),
        ({"X-MS-Exchange-Generated-Message-Source": "Mailbox Rules Agent"}, True),
        ({"Subject": "Out of Office: Re: Invoice 1001"}, True),
        ({"Subject": "Automatic reply: Invoice 1001"}, True),
        ({"Subject": "Abwesenheitsnotiz: Rechnung"}, True),
        ({"Subject": "Re: Invoice 1001 - I was out of office, paying now"}, False),
        ({"Subject": "Re: Invoice 1001"}, False),
    ],
)
def test_auto_reply_rules(headers: dict[str, str], automatic: bool) -> None:
    assert bool(auto_reply_reason(lambda name: headers.get(name, ""))) is automatic


def test_an_out_of_office_message_is_recognised_end_to_end() -> None:
    raw = message(
        "From: j@c.example\nSubject: Automatic reply: Invoice 1001\nAuto-Submitted: auto-replied\nX-Autoreply: yes",
        b"I am out of the office until Monday.",
    )
    assert parse(raw).auto_reply == "Auto-Submitted: auto-replied"


def test_a_reply_token_round_trips_and_any_change_is_refused() -> None:
    addresses = ReplyAddresses("replies@nudge.example", KEY)
    thread = ReplyThread(3, 12, 4567, thread_hash("12:invoice:1001"))
    address = addresses.address(thread)
    local = address.split("@")[0]
    assert local.startswith("replies+")
    assert len(local) <= 64
    assert addresses.read(address) == thread
    assert addresses.read(address.upper()) == thread  # servers may change the case of a local part
    assert addresses.read(f"Jane <{address}>".split("<")[1]) == thread
    token = addresses.token(thread)
    for tampered in (
        token.replace("c", "d", 1),  # another connection
        token.replace("-k", "-k1", 1),  # another customer
        token[:-1] + ("0" if token[-1] != "0" else "1"),  # the MAC
        token[:-2],
        "",
    ):
        assert addresses.verify(tampered) is None
    assert addresses.read(f"replies+{token}@other.example") is None
    assert addresses.read(f"billing+{token}@nudge.example") is None
    assert ReplyAddresses("replies@nudge.example", derive_key("another secret")).read(address) is None


def test_a_base_address_with_its_own_plus_or_no_domain_is_refused() -> None:
    for wrong in ("replies+x@nudge.example", "replies", "@nudge.example"):
        with pytest.raises(ValueError, match="plain address"):
            ReplyAddresses(wrong, KEY)


def test_composed_webhook_fields_cannot_inject_headers_and_keep_unicode_names() -> None:
    raw = compose(
        [
            ("From", "Zoë Buyer <zoe@customer.example>"),
            ("To", "replies+t@nudge.example"),
            ("Subject", "Re: Rechnung\r\nBcc: attacker@evil.example"),
            ("Bad Name:", "dropped"),
            ("Content-Type", "text/html"),
        ],
        "Wir zahlen Freitag.",
        "",
    )
    email = parse(raw)
    assert email.from_address == "zoe@customer.example"
    assert email.from_name == "Zoë Buyer"
    assert email.subject == "Re: Rechnung Bcc: attacker@evil.example"
    assert b"\nBcc:" not in raw
    assert b"Bad Name" not in raw
    assert email.trimmed == "Wir zahlen Freitag."

"""The invoices screen over the Flask test client (issue 15): the list's search and filters (hostile input answered
in words, never a 500), a fixed number of statements per page, pages both ways, the htmx partial, the invoice's
story, a kept email (headers, text, the HTML part under a sandbox CSP, the .eml as sent), and scoping: another
organization's or client's invoice or email is a 404."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from connector.config import MailSettings
from connector.domain.model import Role
from connector.mail.archive import Concerning, keep, settle
from connector.mail.message import OutgoingMessage, prepare
from connector.storage import Store
from connector.storage.tables import Customer, InvoiceOverride, Membership, MembershipClient, PaymentPlan
from tests.support import receivables as seed
from tests.support.clock import FakeClock
from tests.support.statements import counting_statements
from tests.web.conftest import Account
from web.extensions import SERVICES_KEY
from web.pages.invoices import email_frame_lines

pytestmark = pytest.mark.web

NOW = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
TODAY = NOW.date()
HOSTILE = '<script>alert("x")</script> O\'Brien & "Sons" 100%_off'
STATEMENT_CEILING = 12  # the access check, the navigation, the client, its zone and the page itself


@dataclass
class Books:
    account: Account
    org: int
    a: int
    b: int
    other_org: int
    other: int
    inv: dict[str, int]
    email_id: int
    email_raw: bytes


@pytest.fixture
def books(
    app: Flask, store: Store, client: FlaskClient, make_user: Callable[..., Account], login: Callable[..., TestResponse]
) -> Books:
    app.extensions[SERVICES_KEY].clock = FakeClock(NOW)
    account = make_user("Acme Books", Role.OWNER)
    assert login(client, account.email, account.password).status_code == 302
    org = account.org_id
    a = seed.client(store, org, "Alpha Ltd", time_zone="Europe/London")
    b = seed.client(store, org, "Beta Ltd")
    other_org = seed.organization(store, "Elsewhere")
    other = seed.client(store, other_org, "Other Ltd")
    seed.customer(store, a, "c1", "Cust One", ("ap@one.example",))
    seed.customer(store, a, "c2", HOSTILE)
    inv = {
        "one": seed.invoice(store, a, "1", due=TODAY - timedelta(days=40), balance="120.50"),
        "hostile": seed.invoice(store, a, "2", due=TODAY - timedelta(days=5), customer_id="c2", customer_name=HOSTILE),
        "euro": seed.invoice(store, a, "3", due=TODAY + timedelta(days=3), currency="EUR", number="50%OFF"),
        "paid": seed.invoice(
            store, a, "4", due=TODAY - timedelta(days=20), status="paid", balance="0.00", total="80.00"
        ),
        "beta": seed.invoice(store, b, "1", due=TODAY),
        "other": seed.invoice(store, other, "1", due=TODAY),
    }
    with store.unit_of_work() as uow:
        uow.session.add(PaymentPlan(connection_id=a, invoice_external_id="1", grace_days=3))
        uow.session.add(InvoiceOverride(connection_id=a, invoice_external_id="2", dispute=True, dispute_reason="x"))
        uow.commit()
    seed.action(store, a, "r" * 40, state="done", at=NOW - timedelta(days=2), updated_at=NOW - timedelta(days=2))
    settings = MailSettings(backend="maildir", outbox_path="/nowhere", from_address="billing@books.example")
    message = OutgoingMessage(
        to=["ap@one.example"],
        subject="Invoice INV-1 is overdue",
        text="Please pay INV-1.\n<b>not bold</b>",
        html='<p class="x" style="color: #b00">Please pay</p><script>parent.document.title="owned"</script>'
        '<img src="https://tracker.example/p.gif">',
        thread_key=f"{a}:invoice:1",
        message_key="r" * 40,
        reply_to="accounts@alpha.example",
        from_name="Alpha Ltd",
    )
    prepared = prepare(message, settings, now=NOW - timedelta(days=2))
    email_id = keep(store, prepared, Concerning("r" * 40, a, "c1", ["1"]), mailer="smtp", at=NOW - timedelta(days=2))
    with store.unit_of_work() as uow:
        settle(uow.session, "r" * 40, "sent")
        uow.commit()
    return Books(account, org, a, b, other_org, other, inv, email_id, prepared.as_bytes())


def _list(books: Books, client_id: int | None = None) -> str:
    return f"/orgs/{books.org}/clients/{client_id or books.a}/invoices"


def _numbers(page: str) -> list[str]:
    return re.findall(r'<a href="/orgs/\d+/clients/\d+/invoices/\d+">([^<]+)</a>', page)


def test_the_list_shows_each_invoice_with_money_status_and_badges(client: FlaskClient, books: Books) -> None:
    answer = client.get(_list(books))
    assert answer.status_code == 200
    page = answer.text
    assert _numbers(page) == ["INV-1", "INV-4", "INV-2", "50%OFF"]
    assert "$120.50" not in page  # never another currency's sign
    assert "£120.50" in page
    assert "€100.00" in page
    assert "40 days late" in page
    assert "due in 3 days" in page
    assert "Payment plan" in page
    assert "In dispute" in page
    assert "Paid" in page
    assert "Overdue" in page
    assert f'href="/orgs/{books.org}/clients/{books.a}/customers/' in page
    assert "<script>alert" not in page  # the hostile name is escaped
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


@pytest.mark.parametrize(
    ("query", "numbers"),
    [
        ({"status": "paid"}, ["INV-4"]),
        ({"aging": "31-60"}, ["INV-1"]),
        ({"aging": "current"}, ["50%OFF"]),
        ({"plan": "yes"}, ["INV-1"]),
        ({"plan": "no"}, ["INV-4", "INV-2", "50%OFF"]),
        ({"dispute": "yes"}, ["INV-2"]),
        ({"due_from": (TODAY - timedelta(days=25)).isoformat(), "due_to": TODAY.isoformat()}, ["INV-4", "INV-2"]),
        ({"q": "%"}, ["INV-2", "50%OFF"]),
        ({"q": "_"}, ["INV-2"]),
        ({"q": "o'brien"}, ["INV-2"]),
        ({"q": '"sons"'}, ["INV-2"]),
        ({"q": "<script>"}, ["INV-2"]),
        ({"q": "inv-1"}, ["INV-1"]),
    ],
)
def test_filters_and_search(client: FlaskClient, books: Books, query: dict[str, str], numbers: list[str]) -> None:
    answer = client.get(_list(books), query_string=query)
    assert answer.status_code == 200
    assert _numbers(answer.text) == numbers


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"due_from": "2026-13-45"}, "“Due from” must be a date like 2026-11-30."),
        ({"due_to": "yesterday"}, "“Due until” must be a date like 2026-11-30."),
        ({"due_from": "0001-01-01"}, "between the years 1900 and 9000"),
        ({"due_from": "2026-12-01", "due_to": "2026-11-01"}, "is before “Due from”"),
        ({"status": "'; DROP TABLE invoices; --"}, "Choose a status from the list."),
        ({"aging": "-1"}, "Choose how late from the list."),
        ({"plan": "maybe"}, "Choose Any, Yes or No."),
        ({"q": "x" * 201}, "Search for at most 200 characters."),
        ({"q": "a\x00b"}, "without control characters"),
        ({"cursor": "not-a-cursor"}, "start again without it"),
        ({"before": "eyJ4IjoxfQ"}, "start again without it"),
    ],
)
def test_bad_input_is_explained_not_a_500(client: FlaskClient, books: Books, query: dict[str, str], words: str) -> None:
    answer = client.get(_list(books), query_string=query)
    assert answer.status_code == 200
    assert words in answer.text.replace("&#34;", '"').replace("&#39;", "'")
    assert _numbers(answer.text)  # the other filters still apply: the list is there


def test_an_htmx_request_gets_the_results_alone(client: FlaskClient, books: Books) -> None:
    answer = client.get(
        _list(books), query_string={"status": "paid"}, headers={"HX-Request": "true", "HX-Target": "invoice-results"}
    )
    assert answer.status_code == 200
    assert "<html" not in answer.text
    assert _numbers(answer.text) == ["INV-4"]
    assert "HX-Request" in answer.headers["Vary"]


def test_an_empty_list_says_what_to_do(client: FlaskClient, books: Books, store: Store) -> None:
    answer = client.get(_list(books), query_string={"q": "nothing like this"})
    assert "No invoice matches these filters." in answer.text
    assert "Clear filters" in answer.text
    empty = seed.client(store, books.org, "Empty Ltd")
    assert "No invoices for this client yet." in client.get(_list(books, empty)).text


def test_pages_forward_and_back_with_a_fixed_statement_count(client: FlaskClient, books: Books, store: Store) -> None:
    for n in range(120):
        seed.invoice(store, books.b, f"p{n}", due=TODAY - timedelta(days=n % 90), number=f"B-{n:03}")
    with store.unit_of_work() as uow:  # holds on many rows: still no query per row
        for n in range(0, 120, 3):
            uow.session.add(InvoiceOverride(connection_id=books.b, invoice_external_id=f"p{n}", dispute=True))
            uow.session.add(PaymentPlan(connection_id=books.b, invoice_external_id=f"p{n}", grace_days=1))
        uow.session.add(Customer(connection_id=books.b, external_id="c1", name="Cust One", dispute=True))
        uow.commit()
    engine = store.engine
    with counting_statements(engine) as first_log:
        first = client.get(_list(books, books.b))
    assert first.status_code == 200
    assert len(_numbers(first.text)) == 50
    assert first_log.count <= STATEMENT_CEILING, first_log.report()
    next_url = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert next_url is not None
    assert 'rel="prev"' not in first.text
    with counting_statements(engine) as second_log:
        second = client.get(next_url.group(1).replace("&amp;", "&"))
    assert second_log.count <= STATEMENT_CEILING, second_log.report()
    assert len(_numbers(second.text)) == 50
    assert not set(_numbers(first.text)) & set(_numbers(second.text))
    prev_url = re.search(r'href="([^"]+)" rel="prev"', second.text)
    assert prev_url is not None
    back = client.get(prev_url.group(1).replace("&amp;", "&"))
    assert _numbers(back.text) == _numbers(first.text)


def test_the_invoice_tells_its_story(client: FlaskClient, books: Books) -> None:
    answer = client.get(f"{_list(books)}/{books.inv['one']}")
    assert answer.status_code == 200
    page = answer.text
    assert "Invoice INV-1" in page
    assert "Reminder sent to ap@one.example" in page
    assert "Subject: “Invoice INV-1 is overdue”" in page
    assert f'href="{_list(books)}/{books.inv["one"]}/emails/{books.email_id}"' in page
    assert "Being kept" in page  # the active plan
    hostile = client.get(f"{_list(books)}/{books.inv['hostile']}").text
    assert "This invoice is in dispute: x." in hostile
    assert "<script>alert" not in hostile


def test_the_email_as_sent(client: FlaskClient, books: Books) -> None:
    base = f"{_list(books)}/{books.inv['one']}/emails/{books.email_id}"
    page = client.get(base)
    assert page.status_code == 200
    text = page.text
    for shown in ("Alpha Ltd &lt;billing@books.example&gt;", "ap@one.example", "accounts@alpha.example",
                  "Invoice INV-1 is overdue", "Sat, 28 Nov 2026", "Please pay INV-1."):  # fmt: skip
        assert shown in text, shown
    assert "&lt;b&gt;not bold&lt;/b&gt;" in text  # the text part is text
    assert "<script>parent" not in text  # the HTML part never enters the page itself
    assert re.search(r'<iframe[^>]+src="' + re.escape(base) + r'/body.html"[^>]+sandbox', text)

    body = client.get(f"{base}/body.html")
    assert body.status_code == 200
    policy = body.headers["Content-Security-Policy"]
    assert policy.startswith("sandbox;")
    assert "script-src" not in policy
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'self'" in policy
    assert body.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert body.mimetype == "text/html"

    # the frame is sized for the email (a short one: the smallest step), and the email opens alone in its own tab
    assert re.search(r'<iframe class="email-html lines-16" src="' + re.escape(base) + '/body.html"', text)
    assert (
        f'<a href="{base}/body.html" target="_blank" rel="noopener noreferrer">Open the email in its own tab</a>'
        in text
    )

    raw = client.get(f"{base}/message.eml")
    assert raw.status_code == 200
    assert raw.data == books.email_raw  # byte for byte
    assert raw.mimetype == "message/rfc822"
    assert raw.headers["Content-Disposition"] == f'attachment; filename="reminder-INV-1-{books.email_id}.eml"'


def test_scoping_is_a_404(
    client: FlaskClient,
    books: Books,
    store: Store,
    make_user: Callable[..., Account],
    login: Callable[..., TestResponse],
) -> None:
    email = f"/emails/{books.email_id}"
    for url in (
        f"{_list(books)}/{books.inv['beta']}",  # another client's invoice under this client
        f"{_list(books)}/{books.inv['other']}",  # another organization's invoice
        f"/orgs/{books.other_org}/clients/{books.other}/invoices",  # another organization's client
        f"/orgs/{books.other_org}/clients/{books.other}/invoices/{books.inv['other']}",
        f"/orgs/{books.org}/clients/{books.other}/invoices",  # another organization's client under ours
        f"{_list(books)}/{books.inv['hostile']}{email}",  # the email, under an invoice it is not about
        f"{_list(books, books.b)}/{books.inv['beta']}{email}",  # the email, under another client
        f"{_list(books)}/{books.inv['hostile']}{email}/body.html",
        f"{_list(books)}/{books.inv['hostile']}{email}/message.eml",
        f"{_list(books)}/{books.inv['one']}/emails/{books.email_id + 99}",
        f"{_list(books)}/99999999999",  # beyond any row id
    ):
        assert client.get(url).status_code == 404, url

    limited = make_user("Acme Books", Role.VIEWER)
    with store.unit_of_work() as uow:
        membership = uow.session.scalars(
            select(Membership).where(Membership.user_id == limited.user_id, Membership.organization_id == books.org)
        ).one()
        membership.client_limited = True
        uow.session.add(MembershipClient(membership_id=membership.id, connection_id=books.b))
        uow.commit()
    other_browser = client.application.test_client()
    assert login(other_browser, limited.email, limited.password).status_code == 302
    assert other_browser.get(_list(books, books.b)).status_code == 200
    assert other_browser.get(_list(books)).status_code == 404
    assert other_browser.get(f"{_list(books)}/{books.inv['one']}{email}").status_code == 404


def test_amounts_are_never_mixed(client: FlaskClient, books: Books, store: Store) -> None:
    seed.invoice(store, books.a, "9", due=TODAY, currency="JPY", balance="1000", number="YEN-1")
    page = client.get(_list(books), query_string={"q": "yen"}).text
    assert "¥1,000" in page  # yen have no minor unit: formatted for their own currency, never converted


@pytest.mark.parametrize(
    ("html", "lines"),
    [
        ("", 16),
        ("<p>Please pay</p>", 16),
        ("<p><b>unclosed <i>tags & stray </td> ends", 16),
        ("<style>" + "p { color: red; }" * 500 + "</style><title>x</title><p>short</p>", 16),  # unseen text
        ("<p>" + "x" * 100 + "</p>" * 1, 16),
        ("".join(f"<p>{'word ' * 20}</p>" for _ in range(20)), 64),  # 20 paragraphs of two lines and a gap
        ("<table>" + "<tr><td>INV-1</td><td>$10.00</td></tr>" * 30 + "</table>", 40),  # a row a line
        ("line<br>" * 40, 48),
        ("".join(f"<p>{'word ' * 40}</p>" for _ in range(200)), 120),  # longer than the largest frame
    ],
)
def test_the_emails_frame_steps_hold_its_lines(html: str, lines: int) -> None:
    assert email_frame_lines(html) == lines

"""The overview and client pages through Flask's test client: who sees what (other organizations, client-limited
members, viewers), hostile query strings and names, and a fixed number of statements per page whatever the number
of clients, invoices or actions (no N+1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from connector.accounts import members
from connector.domain.actions import ActionKind
from connector.domain.model import Role
from connector.storage import Store
from connector.storage.tables import Activity, SyncRun
from tests.support import receivables as seed
from tests.support.statements import counting_statements

TODAY = datetime.now(UTC).date()
NOW = datetime.now(UTC)
OVERVIEW_CEILING = 12  # sign-in, membership, the organization, seven grouped reads of the overview, the switcher
CLIENT_CEILING = 45  # the same, the client's figures, recovery, the planner's forecast and the activity


def _fill(store: Store, org_id: int, cid: int, invoices: int) -> None:
    """A client's ledger copy: `invoices` invoices (some paid, with payments), actions, tasks, syncs, activity."""
    for n in range(invoices):
        paid = n % 3 == 0
        seed.invoice(
            store,
            cid,
            str(n),
            due=TODAY - timedelta(days=n * 7 % 120),
            balance="0" if paid else f"{100 + n}.00",
            total=f"{100 + n}.00",
            status="paid" if paid else "open",
            customer_id=f"c{n % 4}",
        )
        if paid:
            seed.payment(store, cid, f"P{n}", str(n), f"{100 + n}.00", TODAY - timedelta(days=n % 40))
        state = ("planned", "done", "failed", "awaiting_approval")[n % 4]
        seed.action(store, cid, f"k{cid}x{n}x".ljust(40, "0"), state=state, at=NOW + timedelta(days=n % 9 - 2))
    seed.action(store, cid, f"k{cid}xfee".ljust(40, "0"), kind=ActionKind.LATE_FEE, state="done", at=NOW)
    seed.task(store, org_id, cid, due_on=TODAY)
    with store.unit_of_work() as uow:
        for n in range(max(2, invoices // 3)):
            uow.session.add(
                SyncRun(
                    connection_id=cid,
                    started_at=NOW - timedelta(hours=n + 1),
                    finished_at=NOW - timedelta(hours=n),
                    outcome="ok",
                )
            )
            uow.session.add(
                Activity(
                    organization_id=org_id,
                    connection_id=cid,
                    kind="action.remind" if n % 2 else "task.completed",
                    subject=f"k{cid}x{n}x".ljust(40, "0"),
                    detail={"kind": "remind", "invoice": "1", "outcome": "Promised"},
                    at=NOW - timedelta(hours=n),
                )
            )
        uow.commit()


def _count(store: Store, client: FlaskClient, path: str) -> tuple[int, str]:
    with counting_statements(store.engine) as log:
        page = client.get(path)
    assert page.status_code == 200, page.text
    return log.count, log.report()


def test_the_overview_sends_the_same_statements_for_3_and_30_clients(
    client: FlaskClient, store: Store, signed_in: Any
) -> None:
    org = signed_in.org_id
    for n in range(3):
        _fill(store, org, seed.client(store, org, f"Small {n}"), 6)
    client.get(f"/orgs/{org}/")  # warm: the first request loads what every request needs once
    few, few_report = _count(store, client, f"/orgs/{org}/")
    for n in range(27):
        _fill(store, org, seed.client(store, org, f"More {n:02d}"), 6)
    many, many_report = _count(store, client, f"/orgs/{org}/")
    assert few == many, f"3 clients:\n{few_report}\n30 clients:\n{many_report}"
    assert many <= OVERVIEW_CEILING, many_report
    page = client.get(f"/orgs/{org}/?sort=overdue")
    assert page.text.count('<th scope="row" class="client">') == 30


def test_the_client_page_sends_the_same_statements_for_a_small_and_a_large_ledger(
    client: FlaskClient, store: Store, signed_in: Any
) -> None:
    org = signed_in.org_id
    small = seed.client(store, org, "Small")
    large = seed.client(store, org, "Large")
    _fill(store, org, small, 4)
    _fill(store, org, large, 60)
    client.get(f"/orgs/{org}/clients/{small}/")
    few, few_report = _count(store, client, f"/orgs/{org}/clients/{small}/")
    many, many_report = _count(store, client, f"/orgs/{org}/clients/{large}/")
    assert few == many, f"small:\n{few_report}\nlarge:\n{many_report}"
    assert many <= CLIENT_CEILING, many_report


def test_other_organizations_and_their_clients_are_404(
    app: Flask, store: Store, signed_in: Any, make_user: Callable[..., Any], login: Callable[..., TestResponse]
) -> None:
    mine = seed.client(store, signed_in.org_id, "Mine")
    outsider = make_user("Elsewhere Ltd", Role.OWNER)
    theirs = seed.client(store, outsider.org_id, "Theirs")
    browser = app.test_client()
    assert login(browser, outsider.email, outsider.password).status_code == 302
    assert browser.get(f"/orgs/{signed_in.org_id}/").status_code == 404
    assert browser.get(f"/orgs/{signed_in.org_id}/clients/{mine}/").status_code == 404
    assert browser.get(f"/orgs/{outsider.org_id}/clients/{mine}/").status_code == 404  # not that org's client
    assert browser.get(f"/orgs/{outsider.org_id}/clients/{theirs}/").status_code == 200
    assert browser.get(f"/orgs/{outsider.org_id}/clients/{2**40}/").status_code == 404


def test_a_client_limited_member_sees_only_their_client(
    app: Flask, store: Store, signed_in: Any, make_user: Callable[..., Any], login: Callable[..., TestResponse]
) -> None:
    theirs = seed.client(store, signed_in.org_id, "Their Own Books")
    other = seed.client(store, signed_in.org_id, "Someone Else Entirely")
    seed.invoice(store, theirs, "1", due=TODAY - timedelta(days=3), balance="10.00")
    seed.invoice(store, other, "1", due=TODAY - timedelta(days=3), balance="99999.00")
    limited = make_user("Acme Ltd", Role.VIEWER)
    with store.unit_of_work() as uow:
        member = next(m.id for m in members.members_of(uow, signed_in.org_id) if m.user_id == limited.user_id)
        members.update_member(
            uow,
            organization_id=signed_in.org_id,
            member_id=member,
            acting_user_id=signed_in.user_id,
            now=NOW,
            actor=signed_in.email,
            client_limited=True,
            connection_ids=[theirs],
        )
        uow.commit()
    browser = app.test_client()
    assert login(browser, limited.email, limited.password).status_code == 302
    page = browser.get(f"/orgs/{signed_in.org_id}/")
    assert "Their Own Books" in page.text
    assert "Someone Else Entirely" not in page.text
    assert "99,999" not in page.text  # not in the totals either
    assert browser.get(f"/orgs/{signed_in.org_id}/clients/{theirs}/").status_code == 200
    assert browser.get(f"/orgs/{signed_in.org_id}/clients/{other}/").status_code == 404


def test_a_viewer_reads_but_gets_no_buttons(
    app: Flask, store: Store, signed_in: Any, make_user: Callable[..., Any], login: Callable[..., TestResponse]
) -> None:
    cid = seed.client(store, signed_in.org_id, "Dead Grant Co", status="needs_reauth")
    viewer = make_user("Acme Ltd", Role.VIEWER)
    browser = app.test_client()
    assert login(browser, viewer.email, viewer.password).status_code == 302
    overview = browser.get(f"/orgs/{signed_in.org_id}/").text
    assert "Reconnect needed" in overview
    assert ">Reconnect</button>" not in overview
    client_page = browser.get(f"/orgs/{signed_in.org_id}/clients/{cid}/").text
    assert "Disconnect" not in client_page
    assert ">Reconnect</button>" not in client_page
    assert browser.post(f"/orgs/{signed_in.org_id}/clients/{cid}/").status_code in (400, 405)  # nothing to post


@pytest.mark.parametrize(
    "query",
    [
        "sort=%3Cscript%3E&dir=sideways",
        "page=-1",
        "page=99999999999999999999",
        "page=abc",
        "q=" + "x" * 5000,
        "q=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
        "currency=%3Cb%3E",
        "currency=usd",
        "health=%00",
        "sort=dso&dir=desc&health=attention&currency=GBP&page=2",
    ],
)
def test_hostile_query_strings_are_ignored_or_escaped(
    client: FlaskClient, store: Store, signed_in: Any, query: str
) -> None:
    seed.invoice(store, seed.client(store, signed_in.org_id, "Books"), "1", due=TODAY, balance="5.00")
    page = client.get(f"/orgs/{signed_in.org_id}/?{query}")
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "<img src=x" not in page.text
    assert "<b>" not in page.text


def test_html_in_names_is_escaped_everywhere(client: FlaskClient, store: Store, signed_in: Any) -> None:
    name = '<img src=x onerror="alert(1)">Evil & Co'
    cid = seed.client(store, signed_in.org_id, name)
    seed.invoice(store, cid, "1", due=TODAY - timedelta(days=40), balance="5.00", customer_name=name)
    seed.action(store, cid, "e" * 40, at=NOW + timedelta(days=1))
    for path in (f"/orgs/{signed_in.org_id}/", f"/orgs/{signed_in.org_id}/clients/{cid}/"):
        page = client.get(path)
        assert page.status_code == 200
        assert "<img src=x" not in page.text
        assert "&lt;img src=x onerror=" in page.text
    assert client.get(f"/orgs/{signed_in.org_id}/?q=%3Cimg").text.count("&lt;img") >= 1


def test_the_client_page_links_the_invoices_and_its_disconnect_confirmation(
    client: FlaskClient, store: Store, signed_in: Any
) -> None:
    cid = seed.client(store, signed_in.org_id, "Linked Books")
    page = client.get(f"/orgs/{signed_in.org_id}/clients/{cid}/").text
    assert f'href="/orgs/{signed_in.org_id}/clients/{cid}/invoices"' in page
    assert "Nothing open" in page  # empty states, not a 500
    assert "No payments yet" in page
    assert "Nothing has happened yet" in page


def test_an_empty_organization_says_to_connect_a_client(client: FlaskClient, signed_in: Any) -> None:
    page = client.get(f"/orgs/{signed_in.org_id}/")
    assert "No clients connected yet" in page.text
    assert "<table" not in page.text

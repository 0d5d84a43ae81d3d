"""The inbox screen through the Flask test client: what each role sees, every action and its error paths
(viewer 403, another organization 404, a client-limited member kept to their clients), hostile input, the
navigation's count and a fixed number of statements per render."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from connector.domain.actions import ActionKind
from connector.domain.model import Role
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Connection, Membership, MembershipClient, Task
from tests.support import receivables as seed
from tests.support.statements import counting_statements
from tests.web.conftest import Account, csrf_token

pytestmark = pytest.mark.web

DUE = date(2026, 11, 1)


def _state(store: Store, action_id: int) -> str:
    with store.unit_of_work() as uow:
        row = uow.session.get(ActionRow, action_id)
        assert row is not None
        return row.state


def _task_state(store: Store, task_id: int) -> tuple[str, str]:
    with store.unit_of_work() as uow:
        row = uow.session.get(Task, task_id)
        assert row is not None
        return row.state, row.outcome


def _error(store: Store, action_id: int, text: str) -> None:
    with store.unit_of_work() as uow:
        row = uow.session.get(ActionRow, action_id)
        assert row is not None
        row.error = text
        uow.commit()


class Inbox:
    """One organization's rows and the people in it."""

    def __init__(self, store: Store, make_user: Callable[..., Account]) -> None:
        self.owner = make_user("Acme Practice", Role.OWNER, email="owner@acme.example")
        self.viewer = make_user("Acme Practice", Role.VIEWER, email="viewer@acme.example")
        self.limited = make_user("Acme Practice", Role.ACCOUNTANT, email="limited@acme.example")
        self.stranger = make_user("Other Practice", Role.OWNER, email="owner@other.example")
        org = self.org = self.owner.org_id
        self.alpha = seed.client(store, org, "Alpha <b>Ltd</b>")
        self.beta = seed.client(store, org, "Beta")
        self.customer = seed.customer(store, self.alpha, "c1", "Cust One")
        self.invoice = seed.invoice(store, self.alpha, "1", due=DUE, number="INV-1001")
        self.wait_a = seed.action(store, self.alpha, "k-a", state="awaiting_approval")
        self.wait_b = seed.action(store, self.alpha, "k-b", kind=ActionKind.NOTE, state="awaiting_approval")
        self.uncertain = seed.action(store, self.alpha, "k-u", state="uncertain")
        _error(store, self.uncertain, "the mail server stopped answering after we handed it over")
        self.failed = seed.action(store, self.alpha, "k-f", kind=ActionKind.LATE_FEE, state="failed")
        _error(store, self.failed, "QuickBooks refused the request: the books are closed")
        self.task = seed.task(store, org, self.alpha, due_on=DUE)
        self.beta_wait = seed.action(store, self.beta, "k-beta", state="awaiting_approval")
        self.beta_task = seed.task(store, org, self.beta, due_on=DUE)
        with store.unit_of_work() as uow:
            membership = uow.session.scalars(select(Membership).where(Membership.user_id == self.limited.user_id)).one()
            membership.client_limited = True
            uow.session.add(MembershipClient(membership_id=membership.id, connection_id=self.beta))
            uow.commit()

    def url(self, path: str = "") -> str:
        return f"/orgs/{self.org}/inbox{path}"


@pytest.fixture
def box(store: Store, make_user: Callable[..., Account]) -> Inbox:
    return Inbox(store, make_user)


@pytest.fixture
def as_user(client: FlaskClient, login: Callable[..., TestResponse]) -> Callable[[Account], FlaskClient]:
    def sign_in(account: Account) -> FlaskClient:
        answer = login(client, account.email, account.password)
        assert answer.status_code == 302
        return client

    return sign_in


def _post(browser: FlaskClient, url: str, page_url: str, /, **data: object) -> TestResponse:
    page = browser.get(page_url)
    return browser.post(url, data={"csrf_token": csrf_token(page.text), **data})


def _plain(page: str) -> str:
    """What a person reads: the page's text without tags, on one line."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split()).replace(" :", ":").replace(" .", ".")


def _flashes(client: FlaskClient, url: str) -> list[str]:
    text = client.get(url).text
    return [re.sub(r"\s+", " ", found) for found in re.findall(r'<p class="flash[^"]*"[^>]*>(.*?)</p>', text, re.S)]


def test_the_owner_sees_every_group_with_counts_and_the_navigation_count(
    box: Inbox, as_user: Callable[[Account], FlaskClient]
) -> None:
    client = as_user(box.owner)
    page = client.get(box.url())
    assert page.status_code == 200
    text = page.text
    assert "7 things wait for a person" in text
    assert 'aria-label="7 waiting">7</span>' in text  # the navigation's count
    for title in ("Waiting for your approval", "Emails that may not have been sent", "Failed actions", "Calls to make"):
        assert title in text
    plain = _plain(text)
    assert "Email to Cust One about INV-1001 may not have been sent: the mail server stopped answering" in plain
    assert "Check your Sent folder, then mark it sent or send it again." in plain
    assert "Late fee on INV-1001 (Cust One) failed: QuickBooks refused the request: the books are closed." in plain
    assert "Alpha &lt;b&gt;Ltd&lt;/b&gt;" in text  # names are escaped
    assert "<b>Ltd</b>" not in text
    assert f'href="/orgs/{box.org}/clients/{box.alpha}/invoices/{box.invoice}"' in text
    assert f'href="/orgs/{box.org}/clients/{box.alpha}/customers/{box.customer}"' in text
    assert "Approve selected" in text
    assert "Records Nudge could not read" not in text  # empty groups are not shown
    assert "Customer replies" not in text


def test_filter_by_client(box: Inbox, as_user: Callable[[Account], FlaskClient]) -> None:
    client = as_user(box.owner)
    text = client.get(box.url(f"?client={box.beta}")).text
    assert "2 things wait for a person at this client" in text
    assert "INV-1001" not in text
    assert client.get(box.url("?client=abc")).status_code == 200  # garbage is no filter
    assert client.get(box.url("?client=99999999999999999999")).status_code == 200
    assert client.get(box.url("?client=424242")).status_code == 404


def test_a_viewer_sees_but_cannot_act(box: Inbox, as_user: Callable[[Account], FlaskClient], store: Store) -> None:
    client = as_user(box.viewer)
    page = client.get(box.url())
    assert page.status_code == 200
    assert "You can look; owners and accountants decide." in page.text
    assert "Approve selected" not in page.text
    assert "Mark sent" not in page.text
    token = csrf_token(client.get("/login").text if "csrf_token" not in page.text else page.text)
    for path, data in (
        ("/decide", {"decision": "approve", "action_id": str(box.wait_a)}),
        (f"/reviews/{box.alpha}/approve", {}),
        (f"/actions/{box.uncertain}/mark-sent", {}),
        (f"/actions/{box.uncertain}/send-again", {}),
        (f"/actions/{box.failed}/retry", {}),
        (f"/tasks/{box.task}/complete", {"note": "called"}),
    ):
        assert client.post(box.url(path), data={"csrf_token": token, **data}).status_code == 403, path
    assert _state(store, box.wait_a) == "awaiting_approval"
    assert _state(store, box.uncertain) == "uncertain"


def test_another_organization_gets_404(box: Inbox, as_user: Callable[[Account], FlaskClient]) -> None:
    client = as_user(box.stranger)
    token = csrf_token(client.get(f"/orgs/{box.stranger.org_id}/inbox").text)
    assert client.get(box.url()).status_code == 404
    assert client.post(box.url(f"/actions/{box.uncertain}/mark-sent"), data={"csrf_token": token}).status_code == 404
    # Their own inbox does not reach our rows either.
    other = f"/orgs/{box.stranger.org_id}/inbox"
    answer = client.post(f"{other}/actions/{box.uncertain}/mark-sent", data={"csrf_token": token})
    assert answer.status_code == 404
    answer = client.post(f"{other}/tasks/{box.task}/complete", data={"csrf_token": token, "note": "x"})
    assert answer.status_code == 404
    answer = client.post(f"{other}/reviews/{box.alpha}/approve", data={"csrf_token": token})
    assert answer.status_code == 404


def test_a_client_limited_member_sees_and_acts_on_their_clients_only(
    box: Inbox, as_user: Callable[[Account], FlaskClient], store: Store
) -> None:
    client = as_user(box.limited)
    page = client.get(box.url())
    assert "2 things wait for a person" in page.text
    assert "INV-1001" not in page.text
    assert "Alpha" not in page.text
    assert client.get(box.url(f"?client={box.alpha}")).status_code == 404
    token = csrf_token(page.text)
    assert client.post(box.url(f"/actions/{box.uncertain}/mark-sent"), data={"csrf_token": token}).status_code == 404
    answer = client.post(box.url(f"/tasks/{box.task}/complete"), data={"csrf_token": token, "note": "x"})
    assert answer.status_code == 404
    # A bulk decision naming someone else's action does nothing to it and says so.
    answer = client.post(
        box.url("/decide"),
        data={"csrf_token": token, "decision": "approve", "action_id": [str(box.wait_a), str(box.beta_wait)]},
    )
    assert answer.status_code == 303
    assert _state(store, box.beta_wait) == "planned"
    assert _state(store, box.wait_a) == "awaiting_approval"


def test_bulk_approve_and_skip(box: Inbox, as_user: Callable[[Account], FlaskClient], store: Store) -> None:
    client = as_user(box.owner)
    answer = _post(
        client,
        box.url("/decide"),
        box.url(),
        decision="approve",
        action_id=[str(box.wait_a), str(box.wait_b), "garbage", "-1"],
        group="approvals",
    )
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/inbox#group-approvals")
    assert _state(store, box.wait_a) == _state(store, box.wait_b) == "planned"
    assert _flashes(client, box.url())[0] == "Approved 2 actions: they go out when due."
    answer = _post(
        client, box.url("/decide"), box.url(), decision="skip", action_id=[str(box.beta_wait), str(box.wait_a)]
    )
    assert _state(store, box.beta_wait) == "skipped"
    assert _state(store, box.wait_a) == "skipped"  # a planned action can be skipped too
    answer = _post(client, box.url("/decide"), box.url(), decision="approve", action_id=[str(box.wait_b)])
    flashes = _flashes(client, box.url())
    assert flashes == [
        "1 action could not be approved: only actions awaiting approval can be approved; this one is planned"
    ]


def test_bulk_decisions_refuse_nonsense(box: Inbox, as_user: Callable[[Account], FlaskClient], store: Store) -> None:
    client = as_user(box.owner)
    _post(client, box.url("/decide"), box.url(), decision="approve")
    assert _flashes(client, box.url()) == ["Tick at least one action first."]
    _post(client, box.url("/decide"), box.url(), decision="delete-everything", action_id=str(box.wait_a))
    assert _flashes(client, box.url()) == ["Choose Approve or Skip."]
    answer = _post(client, box.url("/decide"), box.url(), decision="approve", action_id="1" * 400, client="<script>")
    assert answer.status_code == 303
    assert "script" not in answer.headers["Location"]
    assert _state(store, box.wait_a) == "awaiting_approval"


def test_approve_a_new_clients_first_plan(box: Inbox, as_user: Callable[[Account], FlaskClient], store: Store) -> None:
    with store.unit_of_work() as uow:
        connection = uow.session.get(Connection, box.beta)
        assert connection is not None
        connection.chasing = "review"
        uow.commit()
    client = as_user(box.owner)
    page = client.get(box.url())
    assert "Beta is newly connected: nothing goes out until you approve its first plan" in _plain(page.text)
    assert "8 things wait" in page.text
    _post(client, box.url(f"/reviews/{box.beta}/approve"), box.url(), group="reviews")
    assert _flashes(client, box.url()) == ["Approved the first plan of Beta (1 action approved): Nudge now chases it."]
    with store.unit_of_work() as uow:
        connection = uow.session.get(Connection, box.beta)
        assert connection is not None
        assert connection.chasing == "active"
    assert _state(store, box.beta_wait) == "planned"
    _post(client, box.url(f"/reviews/{box.beta}/approve"), box.url())
    assert _flashes(client, box.url()) == ["Beta is not waiting for a review (someone may have approved it already)."]


def test_uncertain_emails_and_failed_actions(
    box: Inbox, as_user: Callable[[Account], FlaskClient], store: Store
) -> None:
    client = as_user(box.owner)
    _post(client, box.url(f"/actions/{box.uncertain}/mark-sent"), box.url(), group="uncertain")
    assert _state(store, box.uncertain) == "done"
    assert _flashes(client, box.url()) == ["Marked the email to Cust One as sent."]
    _post(client, box.url(f"/actions/{box.uncertain}/mark-sent"), box.url())
    assert _flashes(client, box.url()) == [
        "Only emails whose delivery is uncertain can be marked as sent; this one is done."
    ]
    _post(client, box.url(f"/actions/{box.failed}/retry"), box.url())
    assert _state(store, box.failed) == "planned"
    assert _flashes(client, box.url()) == ["Retrying the late fee for Cust One: it goes out at the next run."]
    _post(client, box.url(f"/actions/{box.failed}/send-again"), box.url())
    assert _flashes(client, box.url()) == ["Only emails can be sent again; this action is a late fee."]
    other = seed.action(store, box.alpha, "k-u2", state="uncertain")
    _post(client, box.url(f"/actions/{other}/send-again"), box.url())
    assert _state(store, other) == "planned"
    assert _flashes(client, box.url()) == [
        "The email to Cust One goes out again at the next moment its send window allows."
    ]
    assert (
        client.post(
            box.url("/actions/424242/retry"), data={"csrf_token": csrf_token(client.get(box.url()).text)}
        ).status_code
        == 404
    )


def test_complete_a_task_with_a_note(box: Inbox, as_user: Callable[[Account], FlaskClient], store: Store) -> None:
    client = as_user(box.owner)
    answer = _post(client, box.url(f"/tasks/{box.task}/complete"), box.url(), note="   ", group="calls")
    assert answer.status_code == 200
    assert "Say what happened: the note must not be empty." in answer.text
    assert 'aria-invalid="true"' in answer.text
    assert _task_state(store, box.task) == ("open", "")
    hostile = "<script>alert(1)</script>" + "x" * 2001
    answer = _post(client, box.url(f"/tasks/{box.task}/complete"), box.url(), note=hostile)
    assert answer.status_code == 200
    assert "Note is at most 2000 characters." in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text  # kept in its box, escaped
    assert "<script>alert(1)" not in answer.text
    answer = _post(client, box.url(f"/tasks/{box.task}/complete"), box.url(), note="Spoke to <b>Jo</b>: pays Friday")
    assert answer.status_code == 303
    assert _task_state(store, box.task) == ("done", "Spoke to <b>Jo</b>: pays Friday")
    assert _flashes(client, box.url()) == ["Completed the call with Cust One. Your note is in the timeline."]
    answer = _post(client, box.url(f"/tasks/{box.task}/complete"), box.url(), note="again")
    assert answer.status_code == 303
    assert _flashes(client, box.url()) == [
        f"Task {box.task} is already done by owner@acme.example; nothing was changed."
    ]


def test_an_inbox_with_nothing_says_so(
    store: Store, make_user: Callable[..., Account], as_user: Callable[[Account], FlaskClient]
) -> None:
    owner = make_user("Quiet Ltd", Role.OWNER)
    client = as_user(owner)
    text = client.get(f"/orgs/{owner.org_id}/inbox").text
    assert "Nothing waits for you" in text
    assert 'class="count"' not in text


def test_the_page_reads_in_a_fixed_number_of_statements(
    box: Inbox, as_user: Callable[[Account], FlaskClient], store: Store
) -> None:
    client = as_user(box.owner)
    client.get(box.url())
    with counting_statements(store.engine) as few:
        client.get(box.url())
    for index in range(40):
        seed.action(store, box.alpha, f"more-{index}", state="failed", invoices=(str(index),))
        seed.task(store, box.org, box.beta, due_on=DUE + timedelta(days=index), invoices=(str(index),))
    with counting_statements(store.engine) as many:
        page = client.get(box.url())
    assert "47 things" in page.text or "87 things" in page.text
    assert many.count == few.count, many.report()
    assert many.count <= 20, many.report()


def test_reconnect_needed_offers_the_connections_route(
    box: Inbox, as_user: Callable[[Account], FlaskClient], store: Store
) -> None:
    with store.unit_of_work() as uow:
        connection = uow.session.get(Connection, box.beta)
        assert connection is not None
        connection.status = "needs_reauth"
        connection.last_error = "the refresh token was revoked"
        uow.commit()
    client = as_user(box.owner)
    text = client.get(box.url()).text
    assert "Beta: reconnect needed" in _plain(text)
    assert "Last error: the refresh token was revoked." in text
    assert "needs_reauth" not in text.replace('data-testid="reconnect-', "")
    # The test install configures no "fake" provider: no Reconnect button that could only fail.
    assert f"/connections/{box.beta}/reconnect" not in text


def test_unreadable_records_name_the_field(box: Inbox, as_user: Callable[[Account], FlaskClient], store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.activities.record(
            box.org,
            "sync.quarantined",
            "1",
            connection_id=box.alpha,
            detail={"field": "DueDate", "reason": "not a date: '<b>31/02</b>'"},
            at=datetime.now(UTC),
        )
        uow.commit()
    client = as_user(box.owner)
    text = client.get(box.url()).text
    assert "Records Nudge could not read" in text
    assert "could not be read from Fake: not a date: '<b>31/02</b>' (field DueDate)." in _plain(text)
    assert "not a date: &#39;&lt;b&gt;31/02&lt;/b&gt;&#39;" in text
    assert "<b>31/02" not in text
    assert "<code>DueDate</code>" in text

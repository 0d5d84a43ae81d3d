"""RS-30 — tenant isolation by URL and id tampering, generated over every route of the URL map.

The real parts: the Flask app on SQLite, both organizations' files connected through the real OAuth round
trip against the QuickBooks and Xero emulators, and signed webhooks through the real route and verifiers.
Expected (catalogue): 404 with no data; zero rows of B in any response; a webhook carrying B's
realmId/tenantId with A's signature context changes nothing of A.

Nudge today has connection routes (dashboard, connect, reconnect, disconnect and its confirmation); invoice,
reminder-preview, template and export pages do not exist yet. The test reads `app.url_map`, so each of
those is covered by the same loop the day it is added (with B's ids substituted for every int argument).
The generic 404-for-other-organizations half of this lives in tests/web/test_access.py (same helpers).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update
from werkzeug.routing import IntegerConverter

from connector.storage.tables import Connection
from tests.web.harness import SAFE, WEBHOOK_KEYS, Account, WebWorld, csrf_token, org_rules, rule_url, send, web_world

SECRET_NAMES = {"quickbooks": "Beta Secret Books", "xero": "Beta Secret Joinery"}


@dataclass
class Orgs:
    """Organization A (alice, signed in) and organization B with its two connections and their tenants."""

    world: WebWorld
    alice: Account
    browser: FlaskClient
    bob: Account
    b_connections: dict[str, int]  # provider -> connection id in B
    b_tenants: dict[str, str]
    a_connections: dict[str, int]
    a_tenants: dict[str, str]


def _connect(world: WebWorld, account: Account, provider: str, name: str) -> tuple[int, str]:
    browser = world.client(account)
    tenant = world.kits[provider].add_company(name)
    assert (
        world.callback(browser, provider, world.consent(browser, account.org_id, provider, tenant)).status_code == 303
    )
    [row] = [row for row in world.connections(account.org_id) if row.provider == provider]
    return row.id, tenant


@pytest.fixture
def orgs(tmp_path: Path) -> Iterator[Orgs]:
    with web_world(tmp_path) as world:
        alice = world.user("Alpha Practice")
        bob = world.user("Beta Practice")
        b = {key: _connect(world, bob, key, SECRET_NAMES[key]) for key in ("quickbooks", "xero")}
        a = {key: _connect(world, alice, key, f"Alpha {key} file") for key in ("quickbooks", "xero")}
        yield Orgs(
            world,
            alice,
            world.client(alice),
            bob,
            {key: value[0] for key, value in b.items()},
            {key: value[1] for key, value in b.items()},
            {key: value[0] for key, value in a.items()},
            {key: value[1] for key, value in a.items()},
        )


def _leaks(text: str, orgs: Orgs) -> list[str]:
    """B's data found in a response body."""
    markers = [*SECRET_NAMES.values(), *orgs.b_tenants.values(), "Beta Practice", orgs.bob.email]
    return [marker for marker in markers if marker in text]


def test_rs30_every_route_with_b_ids_is_404_with_no_data(orgs: Orgs) -> None:
    """A user of org A requesting B's objects by URL or id → 404 with no data; zero rows of B in any response."""
    world, app = orgs.world, orgs.world.app
    token = csrf_token(orgs.browser.get(f"/orgs/{orgs.alice.org_id}/").text)
    before = world.snapshot()
    failures: list[str] = []
    tried = 0
    for rule in org_rules(app):
        # The ids this test holds of B are connection ids: tampering is tried where a route names a client
        # (any other int argument then gets B's connection id too, and the client check answers first). Ids of
        # other kinds are numbers A may own too; the API's are tampered with by tests/web/test_api_schemathesis.py.
        has_ids = isinstance(rule._converters.get("connection_id"), IntegerConverter)
        for method in sorted((rule.methods or set()) - SAFE):
            for provider, b_id in orgs.b_connections.items():
                cases = [("B's org", rule_url(app, rule, orgs.bob.org_id, other_id=b_id, text=provider))]
                if has_ids:  # A's own org in the URL, B's object id: id tampering
                    cases.append(
                        ("A's org, B's id", rule_url(app, rule, orgs.alice.org_id, other_id=b_id, text=provider))
                    )
                for label, url in cases:
                    tried += 1
                    response = send(orgs.browser, method, url, token)
                    if response.status_code != 404:
                        failures.append(f"{method} {url} ({label}): {response.status_code}")
                    if leaks := _leaks(response.get_data(as_text=True), orgs):
                        failures.append(f"{method} {url} ({label}): shows {leaks}")
    assert tried >= 10  # the enumeration reached the connection routes
    assert failures == []
    assert world.snapshot() == before  # nothing of B (or anyone) changed


def test_rs30_a_own_pages_show_no_row_of_b(orgs: Orgs) -> None:
    """Zero rows of B in any response: every GET page of A (and the routes outside organizations) shows none of B."""
    app = orgs.world.app
    failures: list[str] = []
    pages = [rule for rule in app.url_map.iter_rules() if "GET" in (rule.methods or ()) and rule.endpoint != "static"]
    for rule in pages:
        for provider, a_id in orgs.a_connections.items():
            url = rule_url(app, rule, orgs.alice.org_id, other_id=a_id, text=provider)
            response = orgs.browser.get(url)
            if leaks := _leaks(response.get_data(as_text=True), orgs):
                failures.append(f"GET {url}: shows {leaks}")
    assert failures == []
    # The marketplace page names only the user's own connections, even for B's realm.
    b_realm = orgs.b_tenants["quickbooks"]
    page = orgs.browser.get(f"/marketplace/quickbooks/disconnected?realmId={b_realm}")
    assert page.status_code == 200
    assert _leaks(page.text, orgs) == []
    checked = orgs.browser.post(
        "/marketplace/quickbooks/disconnected", data={"csrf_token": csrf_token(page.text), "tenant_id": b_realm}
    )
    assert _leaks(checked.text, orgs) == []
    assert {row.status for row in orgs.world.connections(orgs.bob.org_id)} == {"active"}


# A person's own things, looked up within the signed-in user (another user's id is 404 / refused): the sessions list
# (tests/web/test_sessions.py::test_another_users_session_cannot_be_ended).
USER_SCOPED = {"/account/sessions/<int:session_id>/end"}
# A customer's own invoices, looked up within the customer a signed link names (issue 17, web/customer_page.py): an
# invoice id that is not one of that customer's open invoices of that client is 404 whatever else it names
# (tests/web/test_customer_page.py::test_no_route_reaches_another_customers_invoice, and the browser test).
TOKEN_SCOPED = {
    "/c/<token>/invoices/<int:invoice_id>/pdf",
    "/c/<token>/invoices/<int:invoice_id>/pay",
    "/c/<token>/invoices/<int:invoice_id>/plan",
    "/c/<token>/invoices/<int:invoice_id>/dispute",
    "/c/<token>/invoices/<int:invoice_id>/paid",
}


def test_rs30_no_route_takes_an_object_id_outside_an_organization(orgs: Orgs) -> None:
    """Ids are only looked up inside the signed-in member's organization: every int argument sits under org_id
    (or, for a person's own things, under /account/ and within the signed-in user; for a customer's own invoices,
    under their signed link)."""
    loose = [
        rule.rule
        for rule in orgs.world.app.url_map.iter_rules()
        if "org_id" not in rule.arguments
        and rule.rule not in USER_SCOPED | TOKEN_SCOPED
        and any(isinstance(converter, IntegerConverter) for converter in rule._converters.values())
    ]
    assert loose == []


def _state(world: WebWorld, org_id: int) -> list[tuple[object, ...]]:
    return [
        (row.id, row.status, row.next_run_at, row.tokens_sealed, row.last_error, row.failures, row.updated_at)
        for row in world.connections(org_id)
    ]


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_rs30_webhook_naming_b_changes_nothing_of_a(orgs: Orgs, provider: str) -> None:
    """A webhook carrying B's realmId/tenantId, signed with the app's (A's) key → nothing of A changes."""
    world = orgs.world
    later = world.clock.now() + timedelta(days=1)
    with world.store.unit_of_work() as uow:  # nobody is due: a webhook making a connection due shows
        uow.session.execute(update(Connection).values(next_run_at=later))
        uow.commit()
    a_before = _state(world, orgs.alice.org_id)
    kit = world.kits[provider]
    header = world.services.registry.spec(provider).webhook_signature_header
    invoice = "1" if provider == "quickbooks" else "00000000-0000-0000-0000-000000000001"
    body = kit.webhook_body(orgs.b_tenants[provider], invoice)
    answer = world.app.test_client().post(
        f"/webhooks/{provider}",
        data=body,
        headers={header: kit.sign_webhook(body, WEBHOOK_KEYS[provider])},
        content_type="application/json",
    )
    assert answer.status_code == 200
    assert _state(world, orgs.alice.org_id) == a_before  # nothing of A changed
    b_row = next(row for row in world.connections(orgs.bob.org_id) if row.id == orgs.b_connections[provider])
    assert b_row.next_run_at is not None
    assert b_row.next_run_at < later  # the webhook reached B's connection only

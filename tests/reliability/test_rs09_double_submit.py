"""RS-09 — double-click / double-submit: the same intent submitted twice has one side effect.

Expected (catalogue): one side effect; the form token is single-use and the request maps to the same intent.

The "send now" and "apply late fee" buttons do not exist yet (they arrive with the web issue), so the
test asserts the guarantees they will stand on, on the real parts:
- the intents themselves: a reminder and a late fee are planned under deterministic idempotency keys, so
  planning the same intent twice (what a second press will do) stores one outbox row each, and carrying
  the outbox out twice sends one email (aiosmtpd sink) and creates one fee invoice (QuickBooks and Xero
  emulators over HTTP);
- the buttons that exist today: "Disconnect" (and the marketplace's disconnect check) posted twice with the
  same form is one revocation at the provider and one `connection.disconnected` activity; the second answer
  says it is already done.
Flask-WTF's CSRF token is per session, not per form: "the same intent" is carried by the action key and
the connection's state rather than by a single-use form token (the design's choice: idempotent intents).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.storage.tables import Activity
from connector.vault.tokens import open_tokens
from tests.support.pipeline import pipeline, rules
from tests.support.workers import customer_email
from tests.web.harness import WebWorld, csrf_token, web_world

STEPS = [{"id": "late", "offset": 3, "remind": "firm", "late_fee": "flat"}]
RULES = rules(STEPS, late_fees={"flat": {"kind": "flat", "amount": 25, "warning_required": False}})


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_rs09_the_same_reminder_and_late_fee_intent_twice_is_one_effect(provider: str, tmp_path: Path) -> None:
    """One side effect: the same reminder and late-fee intent planned and carried out twice → one email, one fee."""
    now = datetime.now(UTC)
    with pipeline(provider, tmp_path, RULES, start=now) as world:
        kit = world.kit
        tenant = kit.add_company("Double Click Co")
        customer = kit.add_customer(tenant, "Twice Pressed", customer_email("Twice Pressed"))
        today = now.date()
        kit.add_invoice(
            tenant, customer, "DC-1", Decimal("400.00"), "", today - timedelta(days=30), today - today.resolution * 10
        )
        connection = world.connect(tenant)

        world.sync_and_plan(connection)
        first = sorted((row.key, row.kind) for row in world.actions(connection))
        assert {kind for _key, kind in first} == {"remind", "late_fee"}
        world.sync_and_plan(connection)  # the same intent submitted again
        assert sorted((row.key, row.kind) for row in world.actions(connection)) == first

        world.execute(connection)
        world.execute(connection)  # and carried out again
        assert {row.state for row in world.actions(connection)} == {"done"}
        assert len(world.sink.received) == 1
        assert kit.ledger_writes(tenant)["fee_invoices"] == 1


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebWorld]:
    with web_world(tmp_path) as world:
        yield world


def _activities(world: WebWorld, kind: str) -> int:
    with world.store.unit_of_work() as uow:
        return len(list(uow.session.scalars(select(Activity).where(Activity.kind == kind))))


def _revocations(world: WebWorld) -> int:
    return sum(1 for call in world.kits["quickbooks"].calls() if str(call.get("path", "")).endswith("/revoke"))


def test_rs09_disconnect_posted_twice_is_one_revocation(web: WebWorld) -> None:
    """One side effect: "Disconnect" submitted twice (a double click) → one revocation, one activity."""
    owner = web.user("Double Practice")
    browser = web.client(owner)
    realm = web.kits["quickbooks"].add_company("Double Books")
    assert (
        web.callback(browser, "quickbooks", web.consent(browser, owner.org_id, "quickbooks", realm)).status_code == 303
    )
    [row] = web.connections(owner.org_id)
    path = f"/orgs/{owner.org_id}/connections/{row.id}/disconnect"
    form = {"csrf_token": csrf_token(browser.get(path).text)}

    answers = [browser.post(path, data=form), browser.post(path, data=form)]
    assert [answer.status_code for answer in answers] == [303, 303]
    assert _revocations(web) == 1
    assert _activities(web, "connection.disconnected") == 1
    assert "already disconnected" in browser.get(answers[1].location).text
    [after] = web.connections(owner.org_id)
    assert (after.status, after.tokens_sealed) == ("disconnected", "")


def test_rs09_marketplace_check_posted_twice_marks_once(web: WebWorld) -> None:
    """One side effect: the marketplace disconnect check submitted twice → one marking, no revocation."""
    owner = web.user("Market Practice")
    browser = web.client(owner)
    realm = web.kits["quickbooks"].add_company("Market Twice")
    assert (
        web.callback(browser, "quickbooks", web.consent(browser, owner.org_id, "quickbooks", realm)).status_code == 303
    )
    services = web.services
    [row] = web.connections(owner.org_id)
    with services.store.unit_of_work() as uow:
        stored = uow.connections.by_id(row.id)
        assert stored is not None
        tokens = open_tokens(services.vault, stored)
    services.registry.spec("quickbooks").revoke(services.registry.settings("quickbooks"), tokens)  # at Intuit
    revoked = _revocations(web)
    page = browser.get(f"/marketplace/quickbooks/disconnected?realmId={realm}")
    form = {"csrf_token": csrf_token(page.text), "tenant_id": realm}
    answers = [browser.post("/marketplace/quickbooks/disconnected", data=form) for _ in range(2)]
    assert "Marked as disconnected" in answers[0].text
    assert "Marked as disconnected" not in answers[1].text
    assert _activities(web, "connection.disconnected_at_provider") == 1
    assert _revocations(web) == revoked  # Nudge never revokes from this route

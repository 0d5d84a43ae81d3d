"""RS-03 — the user deleted Nudge's fee invoice in QuickBooks, then a retry replays the old `requestid`.

The emulator keeps QuickBooks' requestid replay store: the retry is answered with the original response,
naming an invoice that no longer exists (GET → 610). The adapter reads every created record back.
Through planning and the executor, the action is `superseded`; the fee is planned again, under a new
generation key, only when its policy says `recreate_deleted: true`.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connector.domain.money import Money
from connector.errors import Rejected, ReplayedObjectGone
from connector.storage.tables import Action
from providers._emulator import Fault
from providers.quickbooks.client import request_id
from providers.quickbooks.emulator import EmulatorHandle
from tests.support.pipeline import Pipeline, pipeline, rules
from tests.support.quickbooks import Company, emulator_company
from tests.support.workers import customer_email


@pytest.fixture
def company(qbo: EmulatorHandle) -> Company:
    return emulator_company(qbo, retry_base_s=0.01, timeout_s=10)


def _fees(company: Company) -> list[dict[str, object]]:
    return [i for i in company.entities("Invoice") if str(i.get("DocNumber", "")).startswith("LF-")]


def test_rs03_replayed_requestid_of_a_deleted_fee_invoice_stores_no_dead_id(
    qbo: EmulatorHandle, company: Company
) -> None:
    """Nudge detects a replayed response for a missing object (GET returns 610) and does not store a dead Id."""
    customer = company.customer("Deleted Fee Ltd", "ap@deleted.example")
    original = company.invoice(customer, "400.00", DocNumber="1042", DueDate="2026-01-31")
    adapter = company.adapter()
    invoice = adapter.get_invoice(original["Id"])
    assert invoice is not None
    first = adapter.create_fee_invoice(invoice, Money.of("20.00", "USD"), "Late fee", "fee-rs03")  # then: crash
    fee = qbo.store.read(company.realm, "Invoice", first.external_ref)
    qbo.store.delete(company.realm, "Invoice", {"Id": fee["Id"], "SyncToken": fee["SyncToken"]})  # the user
    with pytest.raises(ReplayedObjectGone) as info:
        company.adapter().create_fee_invoice(invoice, Money.of("20.00", "USD"), "Late fee", "fee-rs03")
    assert info.value.external_id == first.external_ref
    assert isinstance(info.value, Rejected)  # not retried unchanged: the executor records it, never as done
    assert "deleted" in info.value.user_message
    assert _fees(company) == []  # nothing re-created under the old key
    replays = [c for c in qbo.core.calls("data", company.realm) if c.request_id == "fee-rs03"]
    assert len(replays) == 2  # the original create and its replay


def test_rs03_recreated_only_under_a_new_generation_key(qbo: EmulatorHandle, company: Company) -> None:
    """It re-creates only with a new generation key (when policy says so): exactly one live fee invoice."""
    customer = company.customer("Second Try Ltd", "ap@second.example")
    original = company.invoice(customer, "400.00", DocNumber="2042", DueDate="2026-01-31")
    adapter = company.adapter()
    invoice = adapter.get_invoice(original["Id"])
    assert invoice is not None
    first = adapter.create_fee_invoice(invoice, Money.of("20.00", "USD"), "Late fee", "fee-rs03-b")
    fee = qbo.store.read(company.realm, "Invoice", first.external_ref)
    qbo.store.delete(company.realm, "Invoice", {"Id": fee["Id"], "SyncToken": fee["SyncToken"]})
    with pytest.raises(ReplayedObjectGone):
        adapter.create_fee_invoice(invoice, Money.of("20.00", "USD"), "Late fee", "fee-rs03-b")
    again = adapter.create_fee_invoice(invoice, Money.of("20.00", "USD"), "Late fee", "fee-rs03-b:gen2")
    assert again.external_ref != first.external_ref
    assert [f["Id"] for f in _fees(company)] == [again.external_ref]


# -- through planning, the executor and the QuickBooks emulator (issue 10 item 7) --------------------------------


FAST = {"timeout_s": 0.3, "retry_base_s": 0.01}  # a held-back answer times out quickly


def _rules(recreate: bool) -> dict[str, object]:
    fees = {"flat": {"kind": "flat", "amount": 25, "recreate_deleted": recreate, "warning_required": False}}
    return rules([{"id": "late", "offset": 3, "late_fee": "flat"}], late_fees=fees)


def _ledger_fees(world: Pipeline, realm: str) -> list[dict[str, Any]]:
    invoices = world.kit.emulator.store.company(realm).entities["Invoice"]  # type: ignore[attr-defined]
    return [dict(raw) for raw in invoices.values() if str(raw.get("DocNumber", "")).startswith("LF-")]


def _fee_rows(world: Pipeline, connection: int) -> list[Action]:
    return [row for row in world.actions(connection) if row.kind == "late_fee"]


def _fee_written_then_deleted_before_the_retry(world: Pipeline) -> tuple[str, int, Action]:
    """A fee POST committed at QuickBooks whose answer never arrived; the user deletes that fee invoice;
    the retry (same requestid) is answered with the deleted invoice's Id and the action is superseded."""
    kit = world.kit
    realm = kit.add_company("Deleted Fee Pipeline Ltd", "USD")
    customer = kit.add_customer(realm, "Slow Payer", customer_email("Slow Payer"))
    today = world.clock.now().date()
    kit.add_invoice(
        realm, customer, "3042", Decimal("400.00"), "", today - timedelta(days=40), today - timedelta(days=10)
    )
    connection = world.connect(realm)
    world.sync_and_plan(connection)
    [planned] = _fee_rows(world, connection)

    kit.add_fault(Fault("delay_after", method="POST", path="/invoice", seconds=1.0, times=10))  # committed, answer lost
    assert world.execute(connection).done == []
    [fee] = _ledger_fees(world, realm)
    kit.clear_faults()
    kit.emulator.store.delete(realm, "Invoice", {"Id": fee["Id"], "SyncToken": fee["SyncToken"]})  # type: ignore[attr-defined]
    world.clock.advance(timedelta(hours=2))  # past the executor's back-off
    report = world.execute(connection)

    assert report.superseded == [planned.key]
    [row] = _fee_rows(world, connection)
    assert (row.state, row.external_ref) == ("superseded", "")
    assert "deleted" in row.error
    replays = [c for c in kit.core.calls("data", realm) if c.request_id == request_id(planned.key)]
    assert len(replays) >= 2  # the lost create and the replay that named the deleted invoice
    return realm, connection, row


def _turns(world: Pipeline, connection: int, days: int) -> None:
    for _ in range(days):
        world.clock.advance(timedelta(days=1))
        world.turn(connection)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_rs03_deleted_fee_is_superseded_and_never_charged_again_by_default(database: str, tmp_path: Path) -> None:
    """`recreate_deleted: false`: the user's deletion stands; no planning turn ever writes a second fee."""
    with pipeline("quickbooks", tmp_path, _rules(False), database=database, provider_options=FAST) as world:
        realm, connection, superseded = _fee_written_then_deleted_before_the_retry(world)
        _turns(world, connection, 5)

        assert _ledger_fees(world, realm) == []
        [row] = _fee_rows(world, connection)
        assert (row.key, row.state, row.error) == (superseded.key, "superseded", superseded.error)
        assert [a.subject for a in world.activities("action.superseded")] == [superseded.key]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_rs03_deleted_fee_is_charged_once_more_under_a_new_generation_key(database: str, tmp_path: Path) -> None:
    """`recreate_deleted: true`: exactly one new fee invoice, under a new key; the superseded row keeps its reason."""
    with pipeline("quickbooks", tmp_path, _rules(True), database=database, provider_options=FAST) as world:
        realm, connection, superseded = _fee_written_then_deleted_before_the_retry(world)
        _turns(world, connection, 5)

        [fee] = _ledger_fees(world, realm)
        rows = {row.key: row for row in _fee_rows(world, connection)}
        assert len(rows) == 2
        old = rows.pop(superseded.key)
        assert (old.state, old.external_ref, old.error) == ("superseded", "", superseded.error)
        [new] = rows.values()
        assert (new.state, new.external_ref) == ("done", str(fee["Id"]))
        assert new.payload["generation"] == 1
        assert "generation 1" in new.payload["rule"]
        assert Decimal(str(fee["TotalAmt"])) == Decimal("25.00")

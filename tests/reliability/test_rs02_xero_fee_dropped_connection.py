"""RS-02: Xero commits the late-fee invoice, then the connection drops before Nudge hears the answer.

The executor over the real Xero emulator (HTTP, the xero-python SDK) and a real store; the emulator's
`drop_after` fault carries the PUT out (remembering its Idempotency-Key) and closes the socket
without answering.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from providers._emulator import Fault
from providers.xero.adapter import idempotency_key
from tests.support.pipeline import Pipeline, pipeline, rules
from tests.support.workers import customer_email

STEPS = [{"id": "late", "offset": 3, "late_fee": "flat"}]
RULES = rules(STEPS, late_fees={"flat": {"kind": "flat", "amount": 25, "warning_required": False}})


def _overdue_invoice(world: Pipeline) -> tuple[str, int]:
    """One Xero organisation with one invoice 10 days overdue, connected; (tenant, connection id)."""
    kit = world.kit
    tenant = kit.add_company("Dropped Line Ltd", "GBP")
    customer = kit.add_customer(tenant, "Slow Payer", customer_email("Slow Payer"))
    today = world.clock.now().date()
    kit.add_invoice(
        tenant, customer, "DL-1", Decimal("400.00"), "", today - timedelta(days=40), today - timedelta(days=10)
    )
    return tenant, world.connect(tenant)


def _fee_puts(world: Pipeline, tenant: str) -> list[str]:
    """Idempotency-Key of every invoice-creating PUT the emulator carried out or refused."""
    return [
        call.request_id
        for call in world.kit.core.calls("data", tenant=tenant)
        if call.method == "PUT" and call.path.rstrip("/").endswith("/Invoices")
    ]


def _fee_ids(world: Pipeline, tenant: str) -> list[str]:
    ledger = world.kit.emulator.state.ledgers[tenant]
    return sorted(
        i["InvoiceID"] for i in ledger.invoices.values() if str(i.get("Reference", "")).startswith("Late fee")
    )


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_rs02_connection_dropped_after_commit_leaves_one_fee_invoice(database: str, tmp_path: Path) -> None:
    """Expected: the emulator drops the TCP connection after committing → one invoice (Idempotency-Key replay)."""
    with pipeline("xero", tmp_path, RULES, database=database, start=datetime.now(UTC)) as world:
        tenant, connection = _overdue_invoice(world)
        world.sync_and_plan(connection)
        [planned] = world.actions(connection)
        assert planned.kind == "late_fee"

        drop = Fault("drop_after", method="PUT", path="/Invoices")
        world.kit.add_fault(drop)
        report = world.execute(connection)

        assert drop.times == 0  # the drop happened: the emulator committed and closed the socket
        assert report.done == [planned.key]
        [row] = world.actions(connection)
        assert row.state == "done"
        assert world.kit.ledger_writes(tenant)["fee_invoices"] == 1
        assert [str(row.external_ref)] == _fee_ids(world, tenant)  # the local row holds the one fee's InvoiceID
        puts = _fee_puts(world, tenant)
        assert len(puts) == 2  # the dropped PUT and its retry, the same key: Xero replayed the first answer
        assert set(puts) == {idempotency_key(planned.key)}


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_rs02_forgotten_idempotency_key_reconciles_by_reference(database: str, tmp_path: Path) -> None:
    """Expected: the emulator has forgotten the key; the executor reconciles first (Reference) → no second fee.

    The crash is every answer of the fee PUT lost (the write is carried out each time it is replayed,
    the socket dropped): the attempt fails as a transient error, so the action goes back to planned
    without an Id, which is the state a restarted worker finds. Then the replay window expires (the
    emulator forgets the key) and the next attempt must find the fee by its Reference, not create one.
    """
    with pipeline("xero", tmp_path, RULES, database=database, start=datetime.now(UTC)) as world:
        tenant, connection = _overdue_invoice(world)
        world.sync_and_plan(connection)
        [planned] = world.actions(connection)

        world.kit.add_fault(Fault("drop_after", method="PUT", path="/Invoices", times=10))
        first = world.execute(connection)
        assert first.done == []
        [row] = world.actions(connection)
        assert row.state == "planned"
        assert not row.external_ref
        assert world.kit.ledger_writes(tenant)["fee_invoices"] == 1  # committed at Xero, unknown to Nudge

        world.kit.clear_faults()
        world.kit.forget_idempotency(tenant)  # the replay window has passed
        world.kit.core.clear_calls()
        world.clock.advance(timedelta(hours=1))  # past the executor's back-off
        second = world.execute(connection)

        assert second.done == [planned.key]
        [row] = world.actions(connection)
        assert row.state == "done"
        assert world.kit.ledger_writes(tenant)["fee_invoices"] == 1
        assert [str(row.external_ref)] == _fee_ids(world, tenant)
        assert _fee_puts(world, tenant) == []  # found by its Reference: no PUT at all

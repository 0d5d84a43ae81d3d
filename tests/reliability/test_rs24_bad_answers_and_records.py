"""RS-24 — HTTP 200 carrying a `Fault`, truncated JSON, an HTML error page, and invoices missing `DueDate` or with
a null `Balance` (docs/provider-api-facts.md §1.5), through the real adapter into a real store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from sqlalchemy import select

from connector.errors import ProviderError, Rejected, Transient
from connector.storage import Store
from connector.storage.tables import Activity, Invoice, SyncCursor, SyncRun
from connector.sync.invoices import sync_connection
from providers.quickbooks.emulator import EmulatorHandle
from tests.support.quickbooks import Company, emulator_company, faults_cleared


@pytest.fixture
def company(qbo: EmulatorHandle) -> Iterator[Company]:
    with faults_cleared(qbo):
        yield emulator_company(qbo, retry_base_s=0.01, timeout_s=10, max_retries=2)


def _now() -> datetime:
    return datetime.now(UTC)


def _connection(store: Store, tenant: str) -> int:
    with store.unit_of_work() as uow:
        org = uow.organizations.add("RS-24")
        connection_id = uow.connections.add(org.id, "quickbooks", tenant, "Books").id
        uow.commit()
        return connection_id


def _fault(qbo: EmulatorHandle, **spec: object) -> None:
    requests.post(f"{qbo.url}/__admin/faults", json=spec, timeout=5).raise_for_status()


def _runs(store: Store, connection_id: int) -> list[str]:
    with store.unit_of_work() as uow:
        return [r.outcome for r in uow.session.scalars(select(SyncRun).where(SyncRun.connection_id == connection_id))]


def _cursor(store: Store, connection_id: int) -> str | None:
    with store.unit_of_work() as uow:
        row = uow.session.get(SyncCursor, (connection_id, "invoice"))
        return row.cursor if row else None


FAULT_200 = json.dumps(
    {
        "Fault": {
            "Error": [
                {"Message": "A business validation error", "Detail": "Business Validation Error", "code": "6000"}
            ],
            "type": "ValidationFault",
        },
        "time": "2026-01-01T00:00:00.000-07:00",
    }
)


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        pytest.param({"kind": "status", "status": 200, "body": FAULT_200, "times": 5}, Rejected, id="200-fault"),
        pytest.param({"kind": "malformed", "times": 5}, Transient, id="truncated-json"),
    ],
)
def test_rs24_a_fault_or_truncated_answer_is_an_error_not_data(
    store: Store, qbo: EmulatorHandle, company: Company, spec: dict[str, object], error: type[ProviderError]
) -> None:
    """The Fault is treated as an error (and truncated JSON too): the sync fails visibly, nothing is stored."""
    company.seed(customers=2, invoices=5)
    connection_id = _connection(store, company.realm)
    _fault(qbo, path="/batch", **spec)
    with pytest.raises(error):
        sync_connection(store, company.adapter(), connection_id, _now)
    assert _runs(store, connection_id) == ["failed"]
    assert not _cursor(store, connection_id)  # the watermark did not move
    qbo.core.clear_faults()
    sync_connection(store, company.adapter(), connection_id, _now)  # the next turn completes
    assert _runs(store, connection_id) == ["failed", "ok"]


def test_rs24_an_html_error_page_is_retried_and_the_sync_finishes(
    store: Store, qbo: EmulatorHandle, company: Company
) -> None:
    """An HTML error page (503) is an error, retried with back-off; the sync then finishes."""
    company.seed(customers=2, invoices=5)
    connection_id = _connection(store, company.realm)
    _fault(qbo, kind="html", status=503, path="/query", times=1)
    _fault(qbo, kind="html", status=503, path="/batch", times=1)
    report = sync_connection(store, company.adapter(), connection_id, _now)
    assert report.changed == 5
    assert _runs(store, connection_id) == ["ok"]


def test_rs24_bad_invoices_are_quarantined_and_the_rest_commits(
    store: Store, qbo: EmulatorHandle, company: Company
) -> None:
    """Bad invoices quarantined with a message naming invoice id and field; the rest of the sync commits.

    The broken records arrive through CDC (full payloads), after a first full sync stored all five.
    """
    customer = company.customer("Quarantine Ltd", "ap@quarantine.example")
    ids = [company.invoice(customer, "50.00")["Id"] for _ in range(5)]
    connection_id = _connection(store, company.realm)
    sync_connection(store, company.adapter(), connection_id, _now)
    for ident in (ids[1], ids[3]):
        token = qbo.store.read(company.realm, "Invoice", ident)["SyncToken"]
        qbo.store.update(
            company.realm, "Invoice", {"Id": ident, "SyncToken": token, "sparse": True, "CustomerMemo": {"value": "x"}}
        )
    entities = qbo.store.company(company.realm).entities["Invoice"]
    entities[ids[1]].pop("DueDate")
    entities[ids[3]]["Balance"] = None
    requests.post(
        f"{qbo.url}/__admin/companies/{company.realm}/pay", json={"invoice_id": ids[0], "amount": "10.00"}, timeout=5
    ).raise_for_status()
    report = sync_connection(store, company.adapter(), connection_id, _now)
    assert report.full is False
    assert report.quarantined == 2
    with store.unit_of_work() as uow:
        balances = {row.external_id: row.balance for row in uow.session.scalars(select(Invoice))}
        set_aside = {
            a.subject: a.detail["field"] for a in uow.session.scalars(select(Activity)) if a.kind == "sync.quarantined"
        }
    assert set_aside == {ids[1]: "DueDate", ids[3]: "Balance"}
    assert balances[ids[0]] == 40  # the good change in the same page committed
    assert sorted(balances) == sorted(ids)
    assert _runs(store, connection_id) == ["ok", "ok"]

"""One ledger, one chaser (issue 12): a ledger another organization chases is stored "managed_elsewhere"
(plans nothing, names its manager); access requests move the chasing or are declined, with activities."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from connector.connections.connect import ConnectedFile, store_connections
from connector.connections.ownership import AccessError, decide, list_requests, request_access
from connector.domain.model import ConnectionInfo, ConnectionStatus
from connector.domain.policy_parsing import policy_from_dict
from connector.outbox.planning import plan_connection
from connector.review import ReviewError, approve, review_of
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Activity, Connection
from connector.sync.invoices import sync_connection
from tests.support.ledger import FakeLedger
from tests.support.outbox import invoice_snapshot
from tests.support.tokens import sample_tokens, vault_with

DUE = date(2026, 11, 2)
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
RULES = policy_from_dict(
    {
        "cadences": {
            "standard": {
                "time_zone": "Europe/London",
                "send_time": "09:30",
                "steps": [
                    {"id": "due", "offset": 0, "remind": "due_today"},
                    {"id": "late", "offset": 7, "remind": "firm"},
                ],
            }
        },
    }
)


def connect(store: Store, org: str, tenant: str = "shared") -> ConnectedFile:
    """The connect flow's storing step for `org` (created if new), cadence "standard"."""
    with store.unit_of_work() as uow:
        org_id = (uow.organizations.by_name(org) or uow.organizations.add(org)).id
        info = ConnectionInfo("fake", tenant, "Acme Ledger")
        [connected] = store_connections(uow, vault_with("k1"), "fake", org_id, [info], sample_tokens(), NOW)
        row = uow.connections.by_id(connected.connection_id)
        assert row is not None
        row.cadence = "standard"
        uow.commit()
    return connected


def sync_and_plan(store: Store, connection_id: int, at: datetime = NOW) -> int:
    """Sync one overdue invoice and plan; how many actions were planned."""
    invoices = [invoice_snapshot(1, due=DUE, updated_at=NOW - timedelta(days=20))]
    ledger = FakeLedger(invoices)
    ledger.changes = list(invoices)
    sync_connection(store, ledger, connection_id, lambda: at)
    return plan_connection(store, connection_id, RULES, at).planned


def row(store: Store, connection_id: int) -> Connection:
    with store.unit_of_work() as uow:
        found = uow.connections.by_id(connection_id)
        assert found is not None
        uow.session.expunge(found)
        return found


def action_states(store: Store, connection_id: int) -> list[tuple[str, str]]:
    with store.unit_of_work() as uow:
        rows = uow.session.scalars(select(ActionRow).where(ActionRow.connection_id == connection_id))
        return sorted((r.state, r.error) for r in rows)


def kinds(store: Store, org_id: int) -> list[str]:
    with store.unit_of_work() as uow:
        return [a.kind for a in uow.session.scalars(select(Activity).where(Activity.organization_id == org_id))]


def test_the_second_organization_is_told_who_manages_the_ledger_and_plans_nothing(store: Store) -> None:
    smith = connect(store, "Smith & Co Accountants")
    assert smith.chasing == "review"
    approve(store, smith.connection_id, "smith-owner", NOW)
    owner = connect(store, "Acme Ltd")
    assert (owner.created, owner.chasing, owner.managed_by) == (True, "managed_elsewhere", "Smith & Co Accountants")
    assert owner.message.startswith("Acme Ledger is already managed by Smith & Co Accountants; ask them for access")
    second = row(store, owner.connection_id)
    assert second.managed_by_organization_id == row(store, smith.connection_id).organization_id
    assert sync_and_plan(store, owner.connection_id) == 0
    assert action_states(store, owner.connection_id) == []
    assert sync_and_plan(store, smith.connection_id) >= 1  # the manager chases, once
    review = review_of(store, owner.connection_id)
    assert (review.chasing, review.managed_by) == ("managed_elsewhere", "Smith & Co Accountants")
    with pytest.raises(ReviewError, match="managed by Smith & Co Accountants"):
        approve(store, owner.connection_id, "acme-owner", NOW)
    assert "connection.managed_elsewhere" in kinds(store, second.organization_id)


def test_a_ledger_still_in_review_elsewhere_counts_as_managed(store: Store) -> None:
    first = connect(store, "First")
    second = connect(store, "Second")
    assert (first.chasing, second.chasing, second.managed_by) == ("review", "managed_elsewhere", "First")
    third = connect(store, "Third", tenant="another ledger")
    assert third.chasing == "review"


def test_a_manager_waiting_to_be_reconnected_still_chases_the_ledger(store: Store) -> None:
    first = connect(store, "First")
    with store.unit_of_work() as uow:
        manager = uow.connections.by_id(first.connection_id)
        assert manager is not None
        manager.status = "needs_reauth"  # its grant expired; it comes back with a reconnect, still the chaser
        uow.commit()
    second = connect(store, "Second")
    assert (second.chasing, second.managed_by) == ("managed_elsewhere", "First")


def test_an_approved_access_request_moves_the_chasing(store: Store) -> None:
    smith = connect(store, "Smith & Co")
    approve(store, smith.connection_id, "smith-owner", NOW)
    assert sync_and_plan(store, smith.connection_id) >= 1
    acme = connect(store, "Acme")
    acme_org, smith_org = (
        row(store, acme.connection_id).organization_id,
        row(store, smith.connection_id).organization_id,
    )
    request = request_access(store, acme_org, acme.connection_id, "acme-owner", NOW)
    assert (request.state, request.managing_organization, request.requesting_organization) == (
        "pending",
        "Smith & Co",
        "Acme",
    )
    assert request_access(store, acme_org, acme.connection_id, "acme-owner", NOW).id == request.id  # asked once
    assert [r.id for r in list_requests(store, smith_org, state="pending")] == [request.id]
    assert [r.id for r in list_requests(store, acme_org)] == [request.id]
    with pytest.raises(AccessError, match="no access request"):
        decide(store, acme_org, request.id, "acme-owner", NOW, approve=True)  # only the manager decides
    decided = decide(store, smith_org, request.id, "smith-owner", NOW + timedelta(hours=1), approve=True)
    assert (decided.state, decided.decided_by) == ("approved", "smith-owner")
    old, new = row(store, smith.connection_id), row(store, acme.connection_id)
    assert (old.chasing, old.managed_by_organization_id) == ("managed_elsewhere", acme_org)
    assert (new.chasing, new.managed_by_organization_id, new.chasing_since) == ("review", None, None)
    cancelled = action_states(store, smith.connection_id)
    assert cancelled
    assert {state for state, _ in cancelled} == {"cancelled"}
    assert all("chasing handed over to Acme" in error for _, error in cancelled)
    assert sync_and_plan(store, smith.connection_id, NOW + timedelta(hours=2)) == 0
    assert sync_and_plan(store, acme.connection_id, NOW + timedelta(hours=2)) >= 1
    assert {state for state, _ in action_states(store, acme.connection_id)} == {"awaiting_approval"}
    assert kinds(store, acme_org).count("access.approved") == 1
    assert kinds(store, smith_org).count("access.approved") == 1
    assert "access.requested" in kinds(store, smith_org)
    with pytest.raises(AccessError, match="already approved"):
        decide(store, smith_org, request.id, "smith-owner", NOW, approve=False)


def test_a_declined_request_changes_nothing_but_the_record(store: Store) -> None:
    smith = connect(store, "Smith & Co")
    acme = connect(store, "Acme")
    acme_org, smith_org = (
        row(store, acme.connection_id).organization_id,
        row(store, smith.connection_id).organization_id,
    )
    request = request_access(store, acme_org, acme.connection_id, "acme-owner", NOW)
    declined = decide(store, smith_org, request.id, "smith-owner", NOW, approve=False)
    assert (declined.state, declined.decided_by) == ("declined", "smith-owner")
    assert (row(store, smith.connection_id).chasing, row(store, acme.connection_id).chasing) == (
        "review",
        "managed_elsewhere",
    )
    assert "access.declined" in kinds(store, acme_org)
    assert "access.declined" in kinds(store, smith_org)
    with pytest.raises(AccessError, match="chased by this organization already"):
        request_access(store, smith_org, smith.connection_id, "smith-owner", NOW)


def test_a_ledger_nobody_chases_any_more_is_handed_over_without_asking(store: Store) -> None:
    smith = connect(store, "Smith & Co")
    acme = connect(store, "Acme")
    with store.unit_of_work() as uow:
        manager = uow.connections.by_id(smith.connection_id)
        assert manager is not None
        manager.status = ConnectionStatus.DISCONNECTED.value
        acme_org = uow.connections.by_id(acme.connection_id).organization_id  # type: ignore[union-attr]
        uow.commit()
    granted = request_access(store, acme_org, acme.connection_id, "acme-owner", NOW)
    assert granted.state == "approved"
    assert row(store, acme.connection_id).chasing == "review"
    assert "access.granted" in kinds(store, acme_org)


def test_reconnecting_a_ledger_whose_manager_let_go_starts_its_review(store: Store) -> None:
    smith = connect(store, "Smith & Co")
    acme = connect(store, "Acme")
    assert acme.chasing == "managed_elsewhere"
    with store.unit_of_work() as uow:
        manager = uow.connections.by_id(smith.connection_id)
        assert manager is not None
        manager.status = ConnectionStatus.DISCONNECTED.value
        uow.commit()
    again = connect(store, "Acme")
    assert (again.created, again.chasing, again.managed_by) == (False, "review", "")


def test_a_former_manager_reconnecting_after_another_took_over_does_not_chase_twice(store: Store) -> None:
    smith = connect(store, "Smith & Co")
    approve(store, smith.connection_id, "smith-owner", NOW)
    with store.unit_of_work() as uow:
        manager = uow.connections.by_id(smith.connection_id)
        assert manager is not None
        manager.status = ConnectionStatus.DISCONNECTED.value  # Smith lets go ...
        uow.commit()
    acme = connect(store, "Acme")  # ... the owner connects and chases ...
    assert acme.chasing == "review"
    with store.unit_of_work() as uow:  # ... and Smith reconnects it (its Reconnect button): the owner keeps chasing
        smith_org = uow.organizations.by_name("Smith & Co")
        assert smith_org is not None
        info = ConnectionInfo("fake", "shared", "Acme Ledger")
        [back] = store_connections(
            uow, vault_with("k1"), "fake", smith_org.id, [info], sample_tokens(), NOW, reactivate={"shared"}
        )
        uow.commit()
    assert (back.created, back.kept_disconnected, back.chasing, back.managed_by) == (
        False,
        False,
        "managed_elsewhere",
        "Acme",
    )
    assert sync_and_plan(store, back.connection_id) == 0

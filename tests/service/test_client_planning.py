"""The planner reads each organization's library (issue 14): stored library rows, a proposed library in
memory (the impact preview), and the install's starter rules for an organization with no rows."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connector.domain.policy_parsing import policy_from_dict
from connector.library.resolve import CADENCE, LibraryEntry, assemble
from connector.outbox.planning import preview_connection
from connector.storage import Store
from tests.support.library import seed_library
from tests.support.outbox import connection_with_invoices, invoice_snapshot

DUE = date(2026, 11, 2)  # a Monday
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)  # a Monday, 14 days late, inside the London window


def cadence(*steps: tuple[str, int, str]) -> dict[str, Any]:
    """A London cadence of reminder steps (id, offset, template)."""
    return {
        "time_zone": "Europe/London",
        "send_time": "09:30",
        "steps": [{"id": step, "offset": offset, "remind": template} for step, offset, template in steps],
    }


STARTER_DOC = {"cadences": {"standard": cadence(("due", 0, "due_today"), ("late", 14, "firm"))}}
STARTER = policy_from_dict(STARTER_DOC)


def one_client(store: Store, **fields: Any) -> int:
    invoice = invoice_snapshot(1, due=DUE, updated_at=NOW - timedelta(days=20))
    return connection_with_invoices(store, [invoice], first_seen_at=NOW - timedelta(days=20), **fields)


def organization_of(store: Store, connection_id: int) -> int:
    with store.unit_of_work() as uow:
        connection = uow.connections.by_id(connection_id)
        assert connection is not None
        return connection.organization_id


def rules_of(rows: list[Any]) -> list[tuple[str, str | None]]:
    """(cadence/step, template) of each reminder of a preview."""
    out = []
    for row in rows:
        if row.kind == "remind":
            match = re.search(r"cadence '([^']+)' step '([^']+)'", row.rule)
            out.append((f"{match[1]}/{match[2]}" if match else row.rule, row.template))
    return out


def test_an_organization_without_library_rows_plans_with_the_starter_rules(store: Store) -> None:
    cid = one_client(store, cadence="standard")
    rows = preview_connection(store, cid, STARTER, NOW, 3)
    assert rules_of(rows) == [("standard/late", "firm")]


def test_the_stored_library_replaces_the_starter_rules(store: Store) -> None:
    cid = one_client(store, cadence="standard")
    gentle = {"cadences": {"standard": cadence(("due", 0, "due_today"), ("nudge", 15, "friendly"))}}
    seed_library(store, organization_of(store, cid), gentle)
    rows = preview_connection(store, cid, STARTER, NOW, 3)
    assert rules_of(rows) == [("standard/nudge", "friendly")]


def test_a_proposed_library_in_memory_is_previewed_without_touching_the_stored_one(store: Store) -> None:
    cid = one_client(store, cadence="standard")
    stored = seed_library(store, organization_of(store, cid), STARTER_DOC)["cadence:standard"]
    edited = cadence(("due", 0, "due_today"), ("late", 14, "final"))
    proposed = assemble(
        organization_of(store, cid),
        (LibraryEntry(stored.item_id, CADENCE, "standard", stored.version_id, 2, edited),),
    )
    assert rules_of(preview_connection(store, cid, STARTER, NOW, 3, library=proposed)) == [("standard/late", "final")]
    assert rules_of(preview_connection(store, cid, STARTER, NOW, 3)) == [("standard/late", "firm")]

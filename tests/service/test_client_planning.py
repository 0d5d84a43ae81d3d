"""The planner reads each organization's library (issue 14): stored library rows, a proposed library in
memory (the impact preview), and the install's starter rules for an organization with no rows."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from connector.domain.cadence import ConnectionSettings
from connector.domain.policy_parsing import policy_from_dict
from connector.library.resolve import CADENCE, LibraryEntry, assemble
from connector.outbox.client import Notice, apply_client, apply_client_settings
from connector.outbox.planning import CADENCE_FALLBACK, plan_connection, preview_connection
from connector.outbox.send_window import WindowGate
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Activity, ClientSettings, Customer, LibraryItem, Organization
from tests.support.library import new_version, seed_library
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


# -- the client's cadence, by library id --------------------------------------------------------------------

TWO = {
    "cadences": {
        "standard": cadence(("due", 0, "due_today"), ("late", 14, "firm")),
        "gentle": cadence(("due", 0, "due_today"), ("nudge", 14, "gentle_nudge")),
    }
}


def set_client(store: Store, connection_id: int, **fields: Any) -> None:
    """Write the client's settings row (what connector.library's settings service stores)."""
    with store.unit_of_work() as uow:
        row = uow.session.get(ClientSettings, connection_id) or ClientSettings(connection_id=connection_id)
        for name, value in fields.items():
            setattr(row, name, value)
        uow.session.add(row)
        uow.commit()


def set_customer(store: Store, connection_id: int, external_id: str = "c1", **fields: Any) -> None:
    with store.unit_of_work() as uow:
        row = uow.session.scalars(
            select(Customer).where(Customer.connection_id == connection_id, Customer.external_id == external_id)
        ).first() or Customer(connection_id=connection_id, external_id=external_id, name="Cust One")
        for name, value in fields.items():
            setattr(row, name, value)
        uow.session.add(row)
        uow.commit()


def delete_item(store: Store, item_id: int) -> None:
    with store.unit_of_work() as uow:
        item = uow.session.get(LibraryItem, item_id)
        assert item is not None
        item.deleted_at = NOW - timedelta(days=1)
        uow.commit()


def actions(store: Store, connection_id: int) -> list[ActionRow]:
    with store.unit_of_work() as uow:
        rows = list(
            uow.session.scalars(
                select(ActionRow).where(ActionRow.connection_id == connection_id).order_by(ActionRow.id)
            )
        )
        uow.session.expunge_all()
        return rows


def fallbacks(store: Store, connection_id: int) -> list[tuple[str, str]]:
    with store.unit_of_work() as uow:
        return [
            (row.subject, row.detail["notice"])
            for row in uow.session.scalars(
                select(Activity).where(Activity.connection_id == connection_id, Activity.kind == CADENCE_FALLBACK)
            )
        ]


def test_the_client_cadence_is_chosen_by_library_id_and_survives_a_rename(store: Store) -> None:
    cid = one_client(store, cadence="standard")  # the legacy name says standard; the settings row wins
    entries = seed_library(store, organization_of(store, cid), TWO)
    gentle = entries["cadence:gentle"]
    set_client(store, cid, cadence_id=gentle.item_id)
    assert rules_of(preview_connection(store, cid, STARTER, NOW, 1)) == [("gentle/nudge", "gentle_nudge")]
    renamed = new_version(store, gentle.item_id, TWO["cadences"]["gentle"], name="kind words")
    plan_connection(store, cid, STARTER, NOW)
    [reminder] = [row for row in actions(store, cid) if row.kind == "remind"]
    assert reminder.step == "nudge"
    assert reminder.library_version_id == renamed  # the version that planned it
    assert fallbacks(store, cid) == []


def test_the_organization_default_cadence_applies_when_the_client_names_none(store: Store) -> None:
    cid = one_client(store)
    entries = seed_library(store, organization_of(store, cid), TWO)
    with store.unit_of_work() as uow:
        org = uow.session.get(Organization, organization_of(store, cid))
        assert org is not None
        org.settings = {"default_cadence_id": entries["cadence:gentle"].item_id}
        uow.commit()
    assert rules_of(preview_connection(store, cid, STARTER, NOW, 1)) == [("gentle/nudge", "gentle_nudge")]


def test_a_deleted_client_cadence_falls_back_and_is_recorded_once(store: Store) -> None:
    cid = one_client(store, cadence="standard")
    entries = seed_library(store, organization_of(store, cid), TWO)
    set_client(store, cid, cadence_id=entries["cadence:gentle"].item_id)
    delete_item(store, entries["cadence:gentle"].item_id)
    plan_connection(store, cid, STARTER, NOW)
    plan_connection(store, cid, STARTER, NOW + timedelta(hours=1))
    # chasing goes on with the legacy name's cadence, and the log says why, once
    assert [row.step for row in actions(store, cid) if row.kind == "remind"] == ["late"]
    assert fallbacks(store, cid) == [
        (
            "client",
            f"the client's cadence (library item {entries['cadence:gentle'].item_id}) no longer exists: "
            "chased with 'standard'",
        )
    ]


def test_a_customer_cadence_by_id_and_its_fallback_to_the_client_cadence(store: Store) -> None:
    cid = one_client(store, cadence="standard")
    entries = seed_library(store, organization_of(store, cid), TWO)
    gentle = entries["cadence:gentle"].item_id
    set_customer(store, cid, cadence_id=gentle)
    assert rules_of(preview_connection(store, cid, STARTER, NOW, 1)) == [("gentle/nudge", "gentle_nudge")]
    delete_item(store, gentle)
    plan_connection(store, cid, STARTER, NOW)
    assert [row.step for row in actions(store, cid) if row.kind == "remind"] == ["late"]
    assert fallbacks(store, cid) == [
        (
            "customer:c1",
            f"the customer's cadence (library item {gentle}) no longer exists: chased with the client's cadence "
            "'standard'",
        )
    ]


def test_a_legacy_customer_cadence_name_that_no_longer_exists_still_chases(store: Store) -> None:
    cid = one_client(store, cadence="standard")
    set_customer(store, cid, cadence="renamed away")
    plan_connection(store, cid, STARTER, NOW)
    assert [row.step for row in actions(store, cid) if row.kind == "remind"] == ["late"]
    assert [subject for subject, _ in fallbacks(store, cid)] == ["customer:c1"]


# -- the client's settings applied ----------------------------------------------------------------------------


def test_client_zone_window_and_approval_apply_to_the_plan(store: Store) -> None:
    cid = one_client(store, cadence="standard")
    # 10:00 UTC is 05:00 in New York; the cadence's 09:30 send time is outside the client's 10:00-17:00 window,
    # so the reminder goes at the window's opening, 10:00 in New York.
    set_client(
        store,
        cid,
        time_zone="America/New_York",
        send_window={"days": [0, 1, 2, 3, 4], "start": "10:00", "end": "17:00"},
    )
    [row] = [r for r in preview_connection(store, cid, STARTER, NOW, 1) if r.kind == "remind"]
    assert row.scheduled_at == datetime(2026, 11, 16, 15, 0, tzinfo=UTC)
    set_client(store, cid, approval="all")
    plan_connection(store, cid, STARTER, NOW + timedelta(hours=5))
    [reminder] = [r for r in actions(store, cid) if r.kind == "remind"]
    assert reminder.state == "awaiting_approval"


def test_client_minimum_amounts_hold_small_balances(store: Store) -> None:
    cid = one_client(store, cadence="standard")
    set_client(store, cid, minimum_amounts={"GBP": "600.00"})
    [hold] = preview_connection(store, cid, STARTER, NOW, 1)
    assert hold.kind == "hold"
    assert "below the minimum 600.00 GBP" in hold.rule


def test_a_client_holiday_calendar_replaces_the_ledgers(store: Store) -> None:
    christmas = datetime(2026, 12, 25, 10, 0, tzinfo=UTC)  # a Friday
    invoice = invoice_snapshot(1, due=date(2026, 12, 11), updated_at=christmas - timedelta(days=30))
    cid = connection_with_invoices(store, [invoice], first_seen_at=christmas - timedelta(days=30), cadence="standard")
    # 14 days after 11 December is Christmas Day: the cadence (no holidays of its own) sends then...
    assert [r.kind for r in preview_connection(store, cid, STARTER, christmas, 1)] == ["remind"]
    # ...unless the client's calendar is England's
    set_client(store, cid, holiday_calendar="GB-ENG")
    assert [r.kind for r in preview_connection(store, cid, STARTER, christmas, 1)] == []


def test_the_send_gate_applies_the_client_settings_and_the_customers_cadence(store: Store) -> None:
    cid = one_client(store, cadence="standard")
    entries = seed_library(store, organization_of(store, cid), TWO)
    windowed = {**TWO["cadences"]["gentle"], "window": {"weekdays": ["sat"], "start": "08:00", "end": "12:00"}}
    new_version(store, entries["cadence:gentle"].item_id, windowed)
    gate = WindowGate(store, STARTER)
    set_client(
        store,
        cid,
        time_zone="America/New_York",
        send_window={"days": [0, 1, 2, 3, 4], "start": "10:00", "end": "17:00"},
        holiday_calendar="US-NY",
    )
    with store.unit_of_work() as uow:
        calendar = gate.calendar(uow, cid, "c1")
        assert calendar is not None
        assert (calendar.zone_name, calendar.holidays.country, calendar.holidays.subdiv) == (
            "America/New_York",
            "US",
            "NY",
        )
        # 05:00 in New York: the window opens at 10:00 local
        assert calendar.schedule.next_allowed(NOW) == datetime(2026, 11, 16, 15, 0, tzinfo=UTC)
    set_customer(store, cid, cadence_id=entries["cadence:gentle"].item_id)
    set_client(store, cid, send_window=None)  # the customer's cadence's own window: Saturdays 08:00-12:00
    with store.unit_of_work() as uow:
        calendar = gate.calendar(uow, cid, "c1")
        assert calendar is not None
        assert calendar.schedule.next_allowed(NOW) == datetime(2026, 11, 21, 13, 0, tzinfo=UTC)


def test_stored_settings_that_do_not_parse_are_ignored_and_reported() -> None:
    notices: list[Notice] = []
    hostile = ClientSettings(
        connection_id=1,
        time_zone="Mars/Olympus",
        holiday_calendar="not a code",
        send_window={"days": [9], "start": "18:00", "end": "08:00"},
        approval="sometimes",
        minimum_amounts={"GBP": "ten", "EURO": "5", "USD": "-1", "CHF": "12.50"},
    )
    standard = STARTER.cadences["standard"]
    applied = apply_client(standard, hostile, notices)
    assert applied.window == standard.window
    assert applied.approval == standard.approval
    assert applied.time_zone == standard.time_zone
    assert applied.holidays is None
    assert dict(applied.minimum_by_currency) == {"CHF": Decimal("12.50")}
    texts = " | ".join(notice.text for notice in notices)
    for part in ("send window is invalid", "approval mode 'sometimes'", "'GBP': 'ten'", "'EURO'", "'USD'"):
        assert part in texts
    settings = apply_client_settings(ConnectionSettings("1", "Europe/London"), hostile, notices)
    assert settings.time_zone == "Europe/London"
    assert "time zone 'Mars/Olympus' is unknown" in notices[-1].text

"""The demo's careful-by-default numbers (providers/_emulator/demo_truth.py) detect what they count, so the zeros
`nudge demo` reports (tests/integration/test_demo.py) mean something: outbox rows as the executor leaves them (done,
the moment they were recorded) on SQLite and PostgreSQL, against the demo's own rules.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import delete

from connector.domain.policy_parsing import policy_from_dict
from connector.storage import Store
from connector.storage.tables import Action, Customer, LibraryItem, Task
from providers._emulator.demo import RULES
from providers._emulator.demo_truth import careful_numbers

DEMO_RULES = policy_from_dict({**RULES["policies"], "cadences": RULES["cadences"]})
FIRST_DAY = date(2026, 11, 30)
WARNING = {"policy": "monthly_interest", "description": "Interest", "kind": "interest", "applies_from": "2026-12-09"}


def _reminder(
    customer: str, invoice: str, at: datetime, step: str, *, template: str = "firm", warns: bool = False
) -> dict[str, Any]:
    item = {
        "invoice_external_id": invoice,
        "step_id": step,
        "template": template,
        "fee_warning": WARNING if warns else None,
    }
    payload = {
        "local_date": at.date().isoformat(),
        "step_id": step,
        "template": template,
        "invoice_external_ids": [invoice],
        "items": [item],
        "customer_name": customer,
    }
    return {"kind": "remind", "customer": customer, "invoice": invoice, "at": at, "payload": payload}


def _fee(customer: str, invoice: str, assessed: date) -> dict[str, Any]:
    at = datetime.combine(assessed, datetime.min.time(), UTC).replace(hour=15)
    payload = {
        "local_date": assessed.isoformat(),
        "step_id": "late-10",
        "invoice_external_ids": [invoice],
        "fee": {"policy": "monthly_interest", "assessed_on": assessed.isoformat()},
    }
    return {"kind": "late_fee", "customer": customer, "invoice": invoice, "at": at, "payload": payload}


def _connection(store: Store, tenant: str, *, country: str, zone: str) -> int:
    with store.unit_of_work() as uow:
        org = uow.organizations.add(f"Org {tenant}")
        connection = uow.connections.add(org.id, "quickbooks", tenant, f"Ledger {tenant}", next_run_at=None)
        connection.cadence = "standard"
        connection.time_zone = zone
        connection.holiday_country = country
        uow.commit()
        return connection.id


def _done(store: Store, connection_id: int, rows: list[dict[str, Any]]) -> None:
    with store.unit_of_work() as uow:
        for n, row in enumerate(rows):
            uow.session.add(
                Action(
                    key=f"{connection_id}-{n:038d}",
                    connection_id=connection_id,
                    kind=row["kind"],
                    step=row["payload"]["step_id"],
                    invoice_external_id=row["invoice"],
                    customer_external_id=row["customer"],
                    state="done",
                    scheduled_at=row["at"],
                    payload=row["payload"],
                    created_at=row["at"],
                    updated_at=row["at"],
                )
            )
        uow.commit()


def _task(store: Store, connection_id: int, kind: str, state: str) -> None:
    with store.unit_of_work() as uow:
        org = uow.connections.by_id(connection_id)
        assert org is not None
        uow.session.add(
            Task(
                organization_id=org.organization_id,
                connection_id=connection_id,
                kind=kind,
                due_on=FIRST_DAY,
                state=state,
            )
        )
        uow.commit()


def _at(day: date, hour: int = 15) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC).replace(hour=hour)


def test_the_demo_numbers_count_each_careless_act_and_nothing_else(store: Store) -> None:
    london = _connection(store, "gb", country="GB", zone="Europe/London")
    no_country = _connection(store, "us", country="", zone="America/New_York")  # the ledger named no country
    _done(
        store,
        london,
        [
            _reminder("A", "1", _at(date(2026, 12, 2)), "late-3", warns=True),  # warns 8 days ahead of its fee
            _fee("A", "1", date(2026, 12, 10)),
            _reminder("B", "2", _at(date(2026, 12, 5)), "late-3", warns=True),  # only 5 days ahead: not enough
            _fee("B", "2", date(2026, 12, 10)),
            _reminder("C", "3", _at(date(2026, 11, 30)), "late-3"),  # no fee warning at all
            _fee("C", "3", date(2026, 12, 10)),
            _fee("C", "4", FIRST_DAY),  # charged on the first day (and never warned)
            _reminder("D", "5", _at(date(2026, 12, 1)), "final", template="final_notice"),  # a final notice first
            _reminder("E", "6", _at(date(2026, 12, 1)), "late-3"),
            _reminder("E", "6", _at(date(2026, 12, 24)), "final", template="final_notice"),  # final, but not first
            _reminder("F", "7", _at(date(2026, 12, 25)), "late-3"),  # Christmas Day
            _reminder("F", "7", _at(date(2026, 12, 28)), "late-10"),  # Boxing Day (substitute) in England
            _reminder("G", "8", _at(date(2026, 12, 29)), "late-3"),
        ],
    )
    # Thanksgiving in New York, on a connection without a holiday country: the company's real country counts.
    _done(store, no_country, [_reminder("H", "9", _at(date(2026, 11, 26), hour=18), "late-3")])
    _task(store, london, "call", "open")
    _task(store, london, "call", "done")
    _task(store, london, "handoff", "open")
    _task(store, london, "handoff", "open")

    numbers = careful_numbers(store, DEMO_RULES, FIRST_DAY, home_countries={no_country: "US"})

    assert numbers.fees_without_prior_warning == 3  # B (too late), C (never), C's day-one fee
    assert numbers.late_fees_on_day_one == 1
    assert numbers.first_contacts_final == 1  # D only
    assert numbers.reminders_on_public_holidays == 3  # Christmas, the Boxing Day holiday, Thanksgiving
    assert [line.split(" ", 1)[0] for line in numbers.holiday_reminders] == ["2026-12-25", "2026-12-28", "2026-11-26"]
    assert numbers.open_tasks == {"call": 1, "handoff": 2}
    assert numbers.tasks_completed == 1
    assert numbers.as_report()["open_tasks"] == {"call": 1, "handoff": 2}


def test_a_reminder_counts_on_the_customers_local_day(store: Store) -> None:
    """23:00 on Christmas Eve in London is already Christmas Day in Sydney: the customer's own zone decides."""
    london = _connection(store, "gb", country="GB", zone="Europe/London")
    _done(store, london, [_reminder("A", "1", _at(date(2026, 12, 24), hour=23), "late-3")])
    assert careful_numbers(store, DEMO_RULES, FIRST_DAY).reminders_on_public_holidays == 0
    with store.unit_of_work() as uow:
        uow.session.add(Customer(connection_id=london, external_id="A", time_zone="Australia/Sydney"))
        uow.commit()
    assert careful_numbers(store, DEMO_RULES, FIRST_DAY).reminders_on_public_holidays == 1


def test_a_customers_cadence_by_library_id_decides_which_steps_are_final(store: Store) -> None:
    """The demo puts a customer on its `long_overdue` cadence by library id (as the customer page does): that
    cadence's steps name the tone of its reminders, not the client's. A first reminder from a step id the client's
    cadence calls final ("final") is no final notice on a cadence that has no such step; its "hand-over" is."""
    london = _connection(store, "gb", country="GB", zone="Europe/London")
    with store.unit_of_work() as uow:
        connection = uow.connections.by_id(london)
        assert connection is not None
        item = LibraryItem(organization_id=connection.organization_id, kind="cadence", name="long_overdue")
        uow.session.add(item)
        uow.session.flush()
        for external in ("K", "L"):
            uow.session.add(Customer(connection_id=london, external_id=external, cadence_id=item.id))
        uow.commit()
    _done(store, london, [_reminder("K", "1", _at(date(2026, 12, 1)), "final", template="firm")])
    assert careful_numbers(store, DEMO_RULES, FIRST_DAY).first_contacts_final == 0
    with store.unit_of_work() as uow:
        uow.session.execute(delete(Action))
        uow.commit()
    _done(store, london, [_reminder("L", "2", _at(date(2026, 12, 1)), "hand-over", template="firm")])
    assert careful_numbers(store, DEMO_RULES, FIRST_DAY).first_contacts_final == 1

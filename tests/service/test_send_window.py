"""The window at send time (issue 12): a reminder is re-checked against its customer's send window, holidays
and the one-reminder-per-customer-per-day rule when it would go out, not only when it was planned."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from connector.domain.actions import Action, ActionKind
from connector.domain.model import InvoiceSnapshot
from connector.domain.policy_parsing import policy_from_dict
from connector.outbox.codec import action_from_json
from connector.outbox.executor import Executor
from connector.outbox.send_window import WindowGate
from connector.ports import AccountingAdapter
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Activity, Customer
from tests.support.clock import FakeClock
from tests.support.ledger import FakeLedger
from tests.support.outbox import connection_with_invoices, insert_action, invoice_snapshot

DUE = date(2026, 11, 2)  # a Monday
LONDON = ZoneInfo("Europe/London")
FRIDAY_0930 = datetime(2026, 11, 13, 9, 30, tzinfo=UTC)  # GMT in November: London time is UTC
SATURDAY_2330 = datetime(2026, 11, 14, 23, 30, tzinfo=UTC)
MONDAY_0800 = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)
TUESDAY_0800 = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)

RULES = policy_from_dict(
    {
        "cadences": {
            "standard": {"send_time": "09:30", "steps": [{"id": "late", "offset": 7, "remind": "firm"}]},
            "sydney": {
                "time_zone": "Australia/Sydney",
                "send_time": "09:30",
                "steps": [{"id": "late", "offset": 7, "remind": "firm"}],
            },
        },
    }
)


class Outbox:
    """Records which reminder went out at which instant (the executor's clock)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[tuple[str, datetime]] = []

    def send(self, action: Action, invoices: Sequence[InvoiceSnapshot], adapter: AccountingAdapter) -> str:
        self.sent.append((action.key, self.clock.now()))
        return f"<{action.key}@nudge.test>"


def _invoice(n: int, customer: str = "c1") -> InvoiceSnapshot:
    base = invoice_snapshot(n, due=DUE, updated_at=FRIDAY_0930 - timedelta(days=20))
    return replace(base, customer_external_id=customer, customer_name=f"Cust {customer}")


def _setup(store: Store, invoices: list[InvoiceSnapshot], **fields: object) -> int:
    fields.setdefault("time_zone", "Europe/London")
    return connection_with_invoices(store, invoices, first_seen_at=FRIDAY_0930 - timedelta(days=20), **fields)


def _reminder(cid: int, key: str, invoice: InvoiceSnapshot, scheduled_at: datetime) -> Action:
    return Action(
        key=key,
        kind=ActionKind.REMIND,
        connection_id=str(cid),
        customer_external_id=invoice.customer_external_id,
        invoice_external_ids=(invoice.external_id,),
        scheduled_at=scheduled_at,
        local_date=scheduled_at.astimezone(LONDON).date(),
        step_id="late",
        rule="cadence 'standard' step 'late'",
        template="firm",
        due_date=DUE,
        customer_name=invoice.customer_name,
        recipients=invoice.emails,
    )


def _executor(store: Store, ledger: FakeLedger, outbox: Outbox, clock: FakeClock, owner: str = "w1") -> Executor:
    return Executor(store, ledger, outbox, clock.now, owner, gate=WindowGate(store, RULES))


def _row(store: Store, key: str) -> ActionRow:
    with store.unit_of_work() as uow:
        row = uow.session.scalars(select(ActionRow).where(ActionRow.key == key)).one()
        uow.session.expunge(row)
        return row


def _deferrals(store: Store) -> list[Activity]:
    with store.unit_of_work() as uow:
        rows = list(uow.session.scalars(select(Activity).where(Activity.kind == "action.deferred")))
        uow.session.expunge_all()
        return rows


def test_a_stale_reminder_waits_for_monday_morning_instead_of_going_out_on_saturday_night(store: Store) -> None:
    invoice = _invoice(1)
    cid = _setup(store, [invoice], cadence="standard")
    insert_action(store, cid, _reminder(cid, "r1", invoice, FRIDAY_0930))
    clock = FakeClock(SATURDAY_2330)  # the worker comes back after a day and a half away
    outbox = Outbox(clock)
    executor = _executor(store, FakeLedger([invoice]), outbox, clock)
    report = executor.run_due(cid)
    assert report.deferred == ["r1"]
    assert outbox.sent == []
    row = _row(store, "r1")
    assert (row.state, row.attempts, row.scheduled_at) == ("planned", 0, MONDAY_0800)  # the window opens at 08:00
    assert row.lease_owner == ""
    assert "not a send day" in row.error
    [deferral] = _deferrals(store)
    assert deferral.subject == "r1"
    assert deferral.detail["until"] == MONDAY_0800.isoformat()
    assert "Saturday 2026-11-14 23:30 Europe/London" in deferral.detail["reason"]
    clock.moment = MONDAY_0800 - timedelta(minutes=1)
    assert executor.run_due(cid).deferred == []  # not due yet: not even claimed
    clock.moment = MONDAY_0800
    assert executor.run_due(cid).done == ["r1"]
    assert outbox.sent == [("r1", MONDAY_0800)]
    done = _row(store, "r1")
    assert done.attempts == 1  # the deferral was not an attempt
    assert action_from_json(done.payload).local_date == date(2026, 11, 16)  # told on Monday, not on Friday


def test_a_public_holiday_of_the_ledgers_country_defers_to_the_next_send_day(store: Store) -> None:
    invoice = _invoice(1)
    cid = _setup(store, [invoice], cadence="standard", holiday_country="GB")
    christmas = datetime(2026, 12, 25, 10, 0, tzinfo=UTC)  # a Friday
    insert_action(store, cid, _reminder(cid, "r1", invoice, christmas - timedelta(days=1)))
    clock = FakeClock(christmas)
    outbox = Outbox(clock)
    assert _executor(store, FakeLedger([invoice]), outbox, clock).run_due(cid).deferred == ["r1"]
    # Saturday, Sunday, then Monday the 28th is Boxing Day (observed): Tuesday the 29th at 08:00
    assert _row(store, "r1").scheduled_at == datetime(2026, 12, 29, 8, 0, tzinfo=UTC)
    assert "public holiday (Christmas Day)" in _deferrals(store)[0].detail["reason"]
    assert outbox.sent == []


def test_the_customers_own_zone_and_calendar_win_over_the_connections(store: Store) -> None:
    invoice = _invoice(1)
    cid = _setup(store, [invoice], cadence="standard", holiday_country="GB")
    with store.unit_of_work() as uow:
        uow.session.add(Customer(connection_id=cid, external_id="c1", name="Cust c1", time_zone="Australia/Sydney"))
        uow.commit()
    insert_action(store, cid, _reminder(cid, "r1", invoice, FRIDAY_0930))
    clock = FakeClock(MONDAY_0800 + timedelta(hours=2))  # 10:00 in London, 21:00 in Sydney
    outbox = Outbox(clock)
    executor = _executor(store, FakeLedger([invoice]), outbox, clock)
    assert executor.run_due(cid).deferred == ["r1"]
    sydney_tuesday_0800 = datetime(2026, 11, 17, 8, 0, tzinfo=ZoneInfo("Australia/Sydney"))
    assert _row(store, "r1").scheduled_at == sydney_tuesday_0800
    assert "21:00 Australia/Sydney is outside the send window (08:00-18:00)" in _deferrals(store)[0].detail["reason"]
    with (
        store.unit_of_work() as uow
    ):  # a bad zone stored on the customer falls back to the cadence's, then the ledger's
        customer = uow.session.scalars(select(Customer).where(Customer.external_id == "c1")).one()
        customer.time_zone = "Mars/Olympus_Mons"
        customer.cadence = "sydney"
        uow.commit()
    gate = WindowGate(store, RULES)
    with store.unit_of_work() as uow:
        calendar = gate.calendar(uow, cid, "c1")
    assert calendar is not None
    assert calendar.zone_name == "Australia/Sydney"  # the customer's cadence's zone


def test_one_reminder_per_customer_per_local_day_even_when_several_stale_ones_are_due(store: Store) -> None:
    first, second, other = _invoice(1), _invoice(2), _invoice(3, customer="c2")
    cid = _setup(store, [first, second, other], cadence="standard")
    insert_action(store, cid, _reminder(cid, "r1", first, FRIDAY_0930))
    insert_action(store, cid, _reminder(cid, "r2", second, FRIDAY_0930 + timedelta(days=1)))
    insert_action(store, cid, _reminder(cid, "r3", other, FRIDAY_0930 + timedelta(days=1)))
    clock = FakeClock(MONDAY_0800 + timedelta(hours=1))
    outbox = Outbox(clock)
    executor = _executor(store, FakeLedger([first, second, other]), outbox, clock)
    report = executor.run_due(cid)
    assert sorted(report.done) == ["r1", "r3"]  # one for each customer
    assert report.deferred == ["r2"]
    assert _row(store, "r2").scheduled_at == TUESDAY_0800  # the next send day's window opening
    assert "one per customer per day" in _deferrals(store)[0].detail["reason"]
    clock.moment = TUESDAY_0800
    assert executor.run_due(cid).done == ["r2"]
    assert [key for key, _ in outbox.sent] == ["r1", "r3", "r2"]


def test_an_uncertain_email_counts_on_the_day_it_was_handed_over_not_the_day_it_was_recovered(store: Store) -> None:
    first, second = _invoice(1), _invoice(2)
    cid = _setup(store, [first, second], cadence="standard")
    sending_id = insert_action(store, cid, _reminder(cid, "r1", first, MONDAY_0800))
    clock = FakeClock(MONDAY_0800 + timedelta(hours=2))
    executor = _executor(store, FakeLedger([first, second]), Outbox(clock), clock)
    claimed = executor._claim(sending_id)  # the worker claims it, hands it to SMTP and dies
    assert claimed is not None
    executor._mark_sending(sending_id)
    insert_action(store, cid, _reminder(cid, "r2", second, MONDAY_0800 + timedelta(hours=1)))
    monday = executor.run_due(cid)
    assert monday.deferred == ["r2"]  # an email maybe on its way today counts as today's
    clock.moment = TUESDAY_0800  # the lease expired overnight: recovered as uncertain on Tuesday
    outbox = Outbox(clock)
    tuesday = _executor(store, FakeLedger([first, second]), outbox, clock, owner="w2").run_due(cid)
    assert tuesday.uncertain == ["r1"]
    assert tuesday.done == ["r2"]  # Monday's uncertain email does not block Tuesday's reminder
    uncertain = _row(store, "r1")
    assert uncertain.state == "uncertain"
    assert uncertain.updated_at == MONDAY_0800 + timedelta(hours=2)


def test_a_worker_back_after_a_weekend_outage_sends_inside_the_window_at_most_once_a_day(store: Store) -> None:
    """Stopped on Friday evening, restarted every hour from Saturday on: nothing outside the window, and
    each customer gets at most one reminder per local day however many stale ones were due."""
    invoices = [_invoice(n, customer=f"c{n % 3}") for n in range(1, 10)]
    cid = _setup(store, invoices, cadence="standard")
    for n, invoice in enumerate(invoices, start=1):
        insert_action(store, cid, _reminder(cid, f"r{n}", invoice, FRIDAY_0930 + timedelta(hours=n)))
    clock = FakeClock(FRIDAY_0930 + timedelta(hours=20))  # 20 hours later: Saturday 05:30
    outbox = Outbox(clock)
    ledger = FakeLedger(invoices)
    while clock.moment < datetime(2026, 11, 20, 18, 0, tzinfo=UTC):
        _executor(store, ledger, outbox, clock).run_due(cid)
        clock.advance(timedelta(minutes=30))
    assert sorted(key for key, _ in outbox.sent) == sorted(f"r{n}" for n in range(1, 10))  # all went out in the end
    per_day: dict[tuple[str, date], int] = {}
    for key, at in outbox.sent:
        local = at.astimezone(LONDON)
        assert local.weekday() < 5
        assert 8 <= local.hour < 18
        customer = _row(store, key).customer_external_id
        per_day[(customer, local.date())] = per_day.get((customer, local.date()), 0) + 1
    assert set(per_day.values()) == {1}
    assert min(at for _, at in outbox.sent) == MONDAY_0800

"""The demo's "careful by default" numbers (issue 12), each computed from what really happened.

Nothing here trusts the planner's own bookkeeping: the counts are read from the outbox rows that were
carried out (state `done`, the moment they were recorded), the customers' stored overrides, the
configured rules and the `tasks` table, and checked against an independent reading of the rules:

- `fees_without_prior_warning`: done late fees for which no done reminder listing the invoice and
  carrying a fee warning for it (item `fee_warning`) went out at least the policy's `warning_days`
  before the fee's assessment date;
- `reminders_on_public_holidays`: done reminders that went out on a public holiday of the customer's
  calendar (customer override > cadence `holidays` > the connection's `holiday_country/subdiv`, and
  the company's real country when the connection names none, so a connection that lost its country
  shows up here instead of hiding the holiday);
- `late_fees_on_day_one`: late fees assessed on the run's first day;
- `first_contacts_final`: customers whose first done reminder came from a final-tone step
  (`connector.domain.policy.tone_of`);
- tasks opened for people (open / done, by kind) from the `tasks` table.

A customer's cadence is theirs (by library id, else their legacy name), else their client's (by library id in
the client settings, else the connection's legacy name), else `default_cadence`, else the rules' first, read by
name from `rules` (the demo never edits its library, so the starter rules are its bodies).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from connector.domain.calendar import Calendars, HolidayCalendar, is_time_zone, zone
from connector.domain.policy import Cadence, PolicySet, Tone, tone_of
from connector.library.resolve import CADENCE
from connector.storage import Store
from connector.storage.tables import Action, ClientSettings, Connection, Customer, LibraryItem, Task

DEFAULT_WARNING_DAYS = 7


@dataclass(frozen=True)
class CustomerPlace:
    """Where a customer is contacted: its zone name and holiday calendar, resolved as Nudge resolves them."""

    zone_name: str
    holidays: HolidayCalendar


@dataclass(frozen=True)
class CarefulNumbers:
    """The issue-12 acceptance numbers of a run (every one but the task counts must be 0)."""

    fees_without_prior_warning: int
    reminders_on_public_holidays: int
    late_fees_on_day_one: int
    first_contacts_final: int
    open_tasks: dict[str, int]  # kind (call | handoff) -> open tasks
    tasks_completed: int
    holiday_reminders: tuple[str, ...] = ()  # "<date> <holiday> (<customer>)" for each reminder on a holiday

    def as_report(self) -> dict[str, Any]:
        """The summary.json keys."""
        return {
            "fees_without_prior_warning": self.fees_without_prior_warning,
            "reminders_on_public_holidays": self.reminders_on_public_holidays,
            "late_fees_on_day_one": self.late_fees_on_day_one,
            "first_contacts_final": self.first_contacts_final,
            "open_tasks": {"call": self.open_tasks.get("call", 0), "handoff": self.open_tasks.get("handoff", 0)},
            "tasks_completed": self.tasks_completed,
        }


def careful_numbers(
    store: Store,
    rules: PolicySet,
    first_day: date,
    *,
    home_countries: Mapping[int, str] | None = None,
    default_cadence: str = "",
) -> CarefulNumbers:
    """The numbers for every connection in `store`; `first_day` is the run's first (UTC) date, `home_countries`
    the real country of each connection's company (the last fallback of its holiday calendar)."""
    calendars = Calendars()
    with store.unit_of_work() as uow:
        done = list(uow.session.scalars(select(Action).where(Action.state == "done").order_by(Action.id)))
        connections = {c.id: c for c in uow.session.scalars(select(Connection))}
        customers = {(c.connection_id, c.external_id): c for c in uow.session.scalars(select(Customer))}
        tasks = list(uow.session.scalars(select(Task)))
        names = _CadenceNames(
            dict(
                uow.session.execute(select(LibraryItem.id, LibraryItem.name).where(LibraryItem.kind == CADENCE)).all()
            ),
            {row.connection_id: row.cadence_id for row in uow.session.scalars(select(ClientSettings))},
            default_cadence,
        )
        places = {
            (row.connection_id, row.customer_external_id): _place(
                connections[row.connection_id],
                customers.get((row.connection_id, row.customer_external_id)),
                rules,
                calendars,
                (home_countries or {}).get(row.connection_id, ""),
                names,
            )
            for row in done
            if row.connection_id in connections
        }
    reminders = [row for row in done if row.kind == "remind"]
    fees = [row for row in done if row.kind == "late_fee"]
    sent_on = {row.id: _sent_on(row, places.get((row.connection_id, row.customer_external_id))) for row in reminders}
    holiday_reminders = tuple(_on_holidays(reminders, sent_on, places))
    open_tasks = Counter(task.kind for task in tasks if task.state == "open")
    return CarefulNumbers(
        fees_without_prior_warning=sum(1 for fee in fees if not _warned(fee, reminders, sent_on, rules)),
        reminders_on_public_holidays=len(holiday_reminders),
        late_fees_on_day_one=sum(1 for fee in fees if _assessed_on(fee) <= first_day),
        first_contacts_final=_first_contacts_final(reminders, connections, customers, rules, names),
        open_tasks=dict(open_tasks),
        tasks_completed=sum(1 for task in tasks if task.state == "done"),
        holiday_reminders=holiday_reminders,
    )


# -- fees and their warnings ---------------------------------------------------------------------------


def _assessed_on(fee: Action) -> date:
    detail = fee.payload.get("fee") or {}
    return date.fromisoformat(detail.get("assessed_on") or fee.payload["local_date"])


def _warning_days(fee: Action, rules: PolicySet) -> int:
    policy = rules.late_fees.get((fee.payload.get("fee") or {}).get("policy") or "")
    return policy.warning_days if policy is not None else DEFAULT_WARNING_DAYS


def _warned(fee: Action, reminders: list[Action], sent_on: Mapping[int, date], rules: PolicySet) -> bool:
    """Every invoice of the fee had a done reminder with a fee warning for it at least warning_days before."""
    latest = _assessed_on(fee) - timedelta(days=_warning_days(fee, rules))
    invoices = fee.payload.get("invoice_external_ids") or [fee.invoice_external_id]
    return all(
        any(
            row.connection_id == fee.connection_id and sent_on[row.id] <= latest and _warns(row, invoice)
            for row in reminders
        )
        for invoice in invoices
    )


def _warns(reminder: Action, invoice: str) -> bool:
    """The reminder lists `invoice` with a fee warning for it."""
    return any(
        item.get("invoice_external_id") == invoice and item.get("fee_warning")
        for item in reminder.payload.get("items") or []
    )


# -- when and where a reminder went out ----------------------------------------------------------------


def _place(
    connection: Connection,
    customer: Customer | None,
    rules: PolicySet,
    calendars: Calendars,
    home_country: str,
    names: _CadenceNames,
) -> CustomerPlace:
    cadence = _cadence(connection, customer, rules, names)
    zones = [customer.time_zone if customer else "", cadence.time_zone if cadence else "", connection.time_zone]
    zone_name = next((name for name in zones if name and is_time_zone(name)), "UTC")
    choices: list[tuple[str | None, str | None]] = []
    if customer is not None and customer.holiday_calendar:
        code, _, region = customer.holiday_calendar.partition("-")  # stored CC or CC-SUBDIV
        choices.append((code or None, region or None))
    if cadence is not None and cadence.holidays is not None:
        choices.append((cadence.holidays.country, cadence.holidays.subdiv))
    if connection.holiday_country:
        choices.append((connection.holiday_country, connection.holiday_subdiv or None))
    if home_country:
        choices.append((home_country, None))
    for country, subdiv in choices:
        try:
            return CustomerPlace(zone_name, calendars.get(country, subdiv))
        except ValueError:
            continue
    return CustomerPlace(zone_name, calendars.get(None))


@dataclass(frozen=True)
class _CadenceNames:
    """What names a cadence: library cadence names by item id, each client's cadence id, the default name."""

    by_id: Mapping[int, str]
    client_ids: Mapping[int, int | None]  # connection id -> ClientSettings.cadence_id
    default: str


def _cadence(
    connection: Connection, customer: Customer | None, rules: PolicySet, names: _CadenceNames
) -> Cadence | None:
    override = ""
    if customer is not None:
        override = names.by_id.get(customer.cadence_id or 0, "") or customer.cadence
    client = names.by_id.get(names.client_ids.get(connection.id) or 0, "")
    name = client or connection.cadence or names.default or next(iter(rules.cadences), "")
    return rules.cadences.get(override) or rules.cadences.get(name)


def _instant(row: Action) -> datetime:
    """When the row was last changed (for a done reminder: when it was recorded sent), aware UTC."""
    moment = row.updated_at or row.scheduled_at
    # SQLite hands instants back naive; they are stored in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _sent_on(row: Action, place: CustomerPlace | None) -> date:
    """The customer's local date of the moment the reminder was recorded sent (its planned date without a place)."""
    if place is None:
        return date.fromisoformat(row.payload["local_date"])
    return _instant(row).astimezone(zone(place.zone_name)).date()


def _on_holidays(
    reminders: Iterable[Action], sent_on: Mapping[int, date], places: Mapping[tuple[int, str], CustomerPlace]
) -> Iterable[str]:
    for row in reminders:
        place = places.get((row.connection_id, row.customer_external_id))
        if place is None:
            continue
        day = sent_on[row.id]
        holiday = place.holidays.holiday_name(day)
        if holiday:
            yield f"{day.isoformat()} {holiday} ({row.payload.get('customer_name') or row.customer_external_id})"


# -- first contacts ------------------------------------------------------------------------------------


def _first_contacts_final(
    reminders: list[Action],
    connections: Mapping[int, Connection],
    customers: Mapping[tuple[int, str], Customer],
    rules: PolicySet,
    names: _CadenceNames,
) -> int:
    """Customers whose first done reminder came from a final-tone step of their cadence (or a final template)."""
    first: dict[tuple[int, str], Action] = {}
    for row in sorted(reminders, key=lambda r: (_instant(r), r.id)):
        first.setdefault((row.connection_id, row.customer_external_id), row)
    final = 0
    for (connection_id, customer_id), row in first.items():
        connection = connections.get(connection_id)
        cadence = (
            _cadence(connection, customers.get((connection_id, customer_id)), rules, names)
            if connection is not None
            else None
        )
        steps = {step.id: step for step in cadence.steps} if cadence is not None else {}
        step_ids = {row.payload.get("step_id") or row.step} | {
            item.get("step_id") or "" for item in row.payload.get("items") or []
        }
        templates = {row.payload.get("template") or ""} | {
            item.get("template") or "" for item in row.payload.get("items") or []
        }
        tones = {tone_of(steps[step_id]) for step_id in step_ids if step_id in steps}
        if Tone.FINAL in tones or "final_notice" in templates:
            final += 1
    return final

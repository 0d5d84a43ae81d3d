"""The window at send time: may this reminder reach its customer now? (docs/design.md "Exactly-once effects").

The planner places every reminder inside the send window, but a worker that comes back after hours of
downtime finds reminders whose moment has passed: sending them blindly would mail a customer at 23:30
on a Saturday, or several times on one day. The executor therefore asks a `SendGate` just before
sending. `WindowGate` answers from the synced state, resolving the customer's calendar exactly as the
planner does (connector.outbox.planning.load_states, connector.domain.cadence):

- cadence: the customer's (by library id, else legacy name), else the client's (connector.outbox.client: the
  client settings' cadence id, the legacy name, the organization's default, the config's default, the first),
  from the organization's library, with the client's settings applied (zone, holidays, send window);
- zone: the customer's override, else the client's, else the cadence's, else the connection's `time_zone`;
- holidays: the customer's override, else the client's, else the cadence's, else the connection's own
  `holiday_country` / `holiday_subdiv`.

A reminder may go out when now is inside the cadence's send window on a send day (a window weekday
that is not a public holiday) in that zone and calendar, and no other reminder to the same customer was
sent (done, sending or uncertain) on the same local day. Otherwise the verdict names the next allowed
moment: the next window opening, or the next send day's opening when the customer was already reminded
today. An invalid zone or holiday code stored on a row falls back to the next level, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

from sqlalchemy import select

from connector.domain.actions import Action, ActionKind
from connector.domain.cadence import ConnectionSettings
from connector.domain.calendar import Calendars, HolidayCalendar, Schedule, SendWindow, local_to_utc, zone
from connector.domain.model import ActionState
from connector.domain.policy import Cadence, PolicySet
from connector.library.resolve import library_for
from connector.outbox.client import client_planning
from connector.outbox.planning import connection_settings
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Customer

# A reminder in these states reached (or may have reached) the customer.
SENT_STATES = (ActionState.DONE.value, ActionState.SENDING.value, ActionState.UNCERTAIN.value)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True, slots=True)
class SendVerdict:
    """The gate's answer for one reminder at one instant.

    `allowed`: it may go out now; otherwise `not_before` (aware UTC) is the next allowed moment and
    `reason` says why it waits, in words a user understands. `local_today` is the customer's local date
    at the instant asked about (the day the reminder counts for when it goes out).
    """

    allowed: bool
    local_today: date
    not_before: datetime | None = None
    reason: str = ""


class SendGate(Protocol):
    """Decides, just before sending, whether a reminder may reach its customer now."""

    def check(self, action: Action, connection_id: int, action_id: int, now: datetime) -> SendVerdict:
        """The verdict for reminder `action` (outbox row `action_id` of `connection_id`) at instant `now`."""
        ...


@dataclass(frozen=True, slots=True)
class CustomerCalendar:
    """Where and when one customer may be contacted: the resolved schedule and how it was named."""

    schedule: Schedule
    zone_name: str
    holidays: HolidayCalendar


class WindowGate:
    """A `SendGate` over the store and the configured rules (send window, holidays, one reminder a day)."""

    def __init__(
        self, store: Store, rules: PolicySet, *, default_cadence: str = "", calendars: Calendars | None = None
    ) -> None:
        self.store = store
        self.rules = rules
        self.default_cadence = default_cadence
        self.calendars = calendars or Calendars()

    def check(self, action: Action, connection_id: int, action_id: int, now: datetime) -> SendVerdict:
        """Allowed now, or deferred to the next window opening (outside it) or the next send day (reminded today)."""
        with self.store.unit_of_work() as uow:
            calendar = self.calendar(uow, connection_id, action.customer_external_id)
            if calendar is None:  # no cadence at all: nothing to check against (the planner holds such customers)
                return SendVerdict(True, now.astimezone(UTC).date())
            schedule = calendar.schedule
            today = schedule.local_date(now)
            opening = schedule.next_allowed(now)
            if opening > now:
                return SendVerdict(False, today, opening, self._outside(calendar, now))
            day_start = local_to_utc(today, time(0, 0), schedule.tz)
            day_end = local_to_utc(today + timedelta(days=1), time(0, 0), schedule.tz)
            already = uow.session.scalars(
                select(ActionRow.key)
                .where(
                    ActionRow.connection_id == connection_id,
                    ActionRow.kind == ActionKind.REMIND.value,
                    ActionRow.customer_external_id == action.customer_external_id,
                    ActionRow.id != action_id,
                    ActionRow.state.in_(SENT_STATES),
                    ActionRow.updated_at >= day_start,
                    ActionRow.updated_at < day_end,
                )
                .limit(1)
            ).first()
        if already is None:
            return SendVerdict(True, today)
        tomorrow = schedule.next_allowed(day_end)
        reason = (
            f"{action.customer_name or action.customer_external_id} already had a reminder on "
            f"{today.isoformat()} ({calendar.zone_name}): one per customer per day"
        )
        return SendVerdict(False, today, tomorrow, reason)

    # -- resolving the customer's calendar, as the planner does ---------------------------------------
    def calendar(self, uow: UnitOfWork, connection_id: int, customer_external_id: str) -> CustomerCalendar | None:
        """The customer's schedule: cadence, zone and holidays by override, client settings, cadence, then ledger."""
        connection = uow.connections.by_id(connection_id)
        if connection is None:
            return None
        library = library_for(uow, connection.organization_id, self.rules)
        client = client_planning(
            uow, connection, connection_settings(connection), library, default_cadence=self.default_cadence
        )
        customer = uow.session.scalars(
            select(Customer).where(
                Customer.connection_id == connection_id, Customer.external_id == customer_external_id
            )
        ).first()
        name = client.cadence_name
        if customer is not None and (customer.cadence_id is not None or customer.cadence):
            name = client.customer_cadence(customer.external_id, customer.cadence_id, customer.cadence or "")
        cadence = client.cadence(name)
        if cadence is None:
            return None
        zone_name = _first_zone(
            customer.time_zone if customer is not None else "", cadence.time_zone or "", client.settings.time_zone
        )
        holidays = self._holidays(client.settings, customer, cadence)
        schedule = Schedule(
            tz=zone(zone_name),
            window=cadence.window,
            send_time=cadence.send_time,
            holidays=holidays,
            business_weekdays=cadence.business_weekdays,
        )
        return CustomerCalendar(schedule, zone_name, holidays)

    def _holidays(self, settings: ConnectionSettings, customer: Customer | None, cadence: Cadence) -> HolidayCalendar:
        choices: list[tuple[str | None, str | None]] = []
        if customer is not None and customer.holiday_calendar:
            code, _, region = customer.holiday_calendar.partition("-")  # written CC or CC-SUBDIV
            choices.append((code or None, region or None))
        if cadence.holidays is not None:
            choices.append((cadence.holidays.country, cadence.holidays.subdiv))
        if settings.holiday_country:
            choices.append((settings.holiday_country, settings.holiday_subdiv or None))
        for country, subdiv in choices:
            try:
                return self.calendars.get(country, subdiv)
            except ValueError:  # an unknown code stored on a row: the next level decides
                continue
        return self.calendars.get(None)

    @staticmethod
    def _outside(calendar: CustomerCalendar, now: datetime) -> str:
        schedule = calendar.schedule
        local = now.astimezone(schedule.tz)
        day = local.date()
        when = f"{_WEEKDAYS[day.weekday()]} {day.isoformat()} {local:%H:%M} {calendar.zone_name}"
        holiday = calendar.holidays.holiday_name(day)
        if holiday:
            return f"{when} is a public holiday ({holiday}): no reminders go out"
        if day.weekday() not in schedule.window.weekdays:
            return f"{when} is not a send day of the cadence's window"
        return f"{when} is outside the send window ({_window_text(schedule.window)})"


def _window_text(window: SendWindow) -> str:
    return f"{window.start:%H:%M}-{window.end:%H:%M}"


def _first_zone(*names: str) -> str:
    """The first of `names` that is a known IANA zone (UTC when none is)."""
    for name in names:
        if not name:
            continue
        try:
            zone(name)
        except ValueError:  # an unknown zone stored on a row: the next level decides
            continue
        return name
    return "UTC"

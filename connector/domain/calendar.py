"""Local calendars: public holidays (the `holidays` package), business days, send windows, DST-safe times.

Every function here works in ONE named IANA time zone, given explicitly: dates are local calendar
dates in that zone, instants are aware datetimes returned in UTC. Nothing reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

WEEKDAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MONDAY_TO_FRIDAY: frozenset[int] = frozenset(range(5))
_ONE_DAY = timedelta(days=1)


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name` (e.g. "Europe/London"); raises ValueError when the zone is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as Europe/London)") from exc


def is_time_zone(name: str) -> bool:
    """True when `name` is an IANA time zone known to this system."""
    if not isinstance(name, str) or not name:
        return False
    try:
        zone(name)
    except ValueError:
        return False
    return True


def local_to_utc(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `at` on local `day` in `tz`, DST-safe.

    A wall time that does not exist (the spring-forward gap, e.g. 01:30 in Europe/London on the last
    Sunday of March) moves forward by the gap (02:30 BST); an ambiguous one (autumn fall-back) is the
    first occurrence (fold=0, still summer time).
    """
    return datetime.combine(day, at).replace(tzinfo=tz).astimezone(UTC)


def holiday_subdivision(country: str, value: object) -> str:
    """`value` (a ledger's region: a code or a name) as a subdivision code the `holidays` package knows for
    `country`; "" when it knows none by that name (e.g. a county in a British address)."""
    text = " ".join(str(value or "").split())
    supported = holidays.list_supported_countries()
    if not text or country not in supported:
        return ""
    known = {code.upper(): code for code in supported[country]}
    if text.upper() in known:
        return str(known[text.upper()])
    aliases = getattr(holidays.country_holidays(country), "subdivisions_aliases", {}) or {}
    for alias, code in aliases.items():
        if str(alias).upper() == text.upper() and str(code).upper() in known:
            return str(known[str(code).upper()])
    return ""


class HolidayCalendar:
    """Public holidays of one country and optional subdivision; dates are local calendar dates.

    Backed by `holidays.country_holidays(country, subdiv=..., years=year)`, loaded once per year and
    kept on this object (deterministic: the package's data is static). `country=None` has no holidays.
    """

    __slots__ = ("_years", "country", "subdiv")

    def __init__(self, country: str | None = None, subdiv: str | None = None) -> None:
        self.country = country.upper() if country else None
        self.subdiv = subdiv.upper() if subdiv else None
        if self.country is None and self.subdiv is not None:
            raise ValueError("a holiday subdivision needs a country")
        if self.country is not None:
            supported = holidays.list_supported_countries()
            if self.country not in supported:
                raise ValueError(f"unknown holiday country {country!r} (expected an ISO code such as GB)")
            if self.subdiv is not None and self.subdiv not in {s.upper() for s in supported[self.country]}:
                raise ValueError(
                    f"unknown subdivision {subdiv!r} of {self.country} "
                    f"(known: {', '.join(supported[self.country]) or 'none'})"
                )
        self._years: dict[int, dict[date, str]] = {}

    def _year(self, year: int) -> dict[date, str]:
        found = self._years.get(year)
        if found is None:
            if self.country is None:
                found = {}
            else:
                data = holidays.country_holidays(self.country, subdiv=self.subdiv, years=year)
                found = {day: str(name) for day, name in data.items()}
            self._years[year] = found
        return found

    def is_holiday(self, day: date) -> bool:
        """True when local `day` is a public holiday of this calendar."""
        return day in self._year(day.year)

    def holiday_name(self, day: date) -> str | None:
        """The holiday's name on local `day`, or None."""
        return self._year(day.year).get(day)

    def __repr__(self) -> str:
        return f"HolidayCalendar({self.country!r}, {self.subdiv!r})"


class Calendars:
    """A registry of HolidayCalendar objects by (country, subdivision), created on first use.

    Pass one instance to many `plan` calls (e.g. a whole `preview`) to load each year's holidays once.
    """

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[tuple[str | None, str | None], HolidayCalendar] = {}

    def get(self, country: str | None, subdiv: str | None = None) -> HolidayCalendar:
        """The calendar of `country`/`subdiv` (None: no holidays)."""
        key = (country.upper() if country else None, subdiv.upper() if subdiv else None)
        found = self._by_key.get(key)
        if found is None:
            found = HolidayCalendar(*key)
            self._by_key[key] = found
        return found


@dataclass(frozen=True, slots=True)
class SendWindow:
    """When customer-facing actions may go out, in the customer's local time: weekdays and [start, end)."""

    weekdays: frozenset[int] = MONDAY_TO_FRIDAY  # 0 = Monday ... 6 = Sunday
    start: time = time(8, 0)
    end: time = time(18, 0)

    def __post_init__(self) -> None:
        if not self.weekdays or not all(0 <= day <= 6 for day in self.weekdays):
            raise ValueError("send window weekdays must be a non-empty set of 0 (Monday) .. 6 (Sunday)")
        if not self.start < self.end:
            raise ValueError(f"send window start {self.start} must be before its end {self.end}")


@dataclass(slots=True)
class Schedule:
    """Send-time arithmetic for one time zone, send window, business week and holiday calendar.

    Dates are local to `tz`; returned instants are UTC. Results are memoised on the object (a pure
    cache: the same inputs always give the same answers).
    """

    tz: ZoneInfo
    window: SendWindow
    send_time: time
    holidays: HolidayCalendar
    business_weekdays: frozenset[int] = MONDAY_TO_FRIDAY
    _allowed: dict[date, bool] = field(default_factory=dict, repr=False)
    _fire: dict[date, datetime] = field(default_factory=dict, repr=False)
    _business: dict[tuple[date, int], date] = field(default_factory=dict, repr=False)
    _local: dict[datetime, date] = field(default_factory=dict, repr=False)

    def is_send_day(self, day: date) -> bool:
        """True when local `day` is a window weekday and not a public holiday."""
        found = self._allowed.get(day)
        if found is None:
            found = day.weekday() in self.window.weekdays and not self.holidays.is_holiday(day)
            self._allowed[day] = found
        return found

    def is_business_day(self, day: date) -> bool:
        """True when local `day` is a business weekday (default Monday-Friday) and not a holiday."""
        return day.weekday() in self.business_weekdays and not self.holidays.is_holiday(day)

    def next_send_day(self, day: date) -> date:
        """The first send day on or after local `day` (at most ~2 years ahead; else ValueError)."""
        for _ in range(800):
            if self.is_send_day(day):
                return day
            day += _ONE_DAY
        raise ValueError("the send window and holiday calendar leave no day to send on")

    def add_business_days(self, day: date, count: int) -> date:
        """Local `day` moved by `count` business days (0: `day` itself; negative: backwards)."""
        key = (day, count)
        found = self._business.get(key)
        if found is None:
            step = _ONE_DAY if count >= 0 else -_ONE_DAY
            remaining = abs(count)
            current = day
            while remaining:
                current += step
                if self.is_business_day(current):
                    remaining -= 1
            found = current
            self._business[key] = found
        return found

    def fire_at(self, nominal: date) -> datetime:
        """UTC instant a step nominally on local `nominal` goes out: send time on the next send day."""
        found = self._fire.get(nominal)
        if found is None:
            found = local_to_utc(self.next_send_day(nominal), self.send_time, self.tz)
            self._fire[nominal] = found
        return found

    def local_date(self, instant: datetime) -> date:
        """The local calendar date of a UTC instant in this zone."""
        found = self._local.get(instant)  # equal instants are equal keys whatever their tzinfo: same local date
        if found is None:
            found = instant.astimezone(self.tz).date()
            self._local[instant] = found
        return found

    def next_window_close(self, instant: datetime) -> datetime:
        """The end of the send window of the first send day whose window has not closed at `instant` (UTC)."""
        local = instant.astimezone(self.tz)
        day = local.date()
        if not (self.is_send_day(day) and local.time().replace(tzinfo=None) < self.window.end):
            day = self.next_send_day(day + _ONE_DAY)
        return local_to_utc(day, self.window.end, self.tz)

    def next_allowed(self, instant: datetime) -> datetime:
        """The first moment at or after `instant` that is inside the send window on a send day (UTC)."""
        local = instant.astimezone(self.tz)
        day = local.date()
        if self.is_send_day(day):
            wall = local.time().replace(tzinfo=None)
            if wall < self.window.start:
                return local_to_utc(day, self.window.start, self.tz)
            if wall < self.window.end:
                return instant.astimezone(UTC)
        return local_to_utc(self.next_send_day(day + _ONE_DAY), self.window.start, self.tz)


def add_months(day: date, months: int) -> date:
    """`day` moved by whole calendar months, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    last = 31 if month == 12 else (date(year, month + 1, 1) - _ONE_DAY).day
    return date(year, month, min(day.day, last))

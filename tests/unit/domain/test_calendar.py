"""Calendar arithmetic: DST-safe local times, holidays, business days, send windows, month ends."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from connector.domain.calendar import (
    Calendars,
    HolidayCalendar,
    Schedule,
    SendWindow,
    add_months,
    is_time_zone,
    local_to_utc,
    zone,
)


@pytest.mark.parametrize(
    ("tz", "day", "at", "expected"),
    [
        # Europe/London: GMT until 31 Mar 2024 01:00 UTC, BST until 27 Oct 2024 01:00 UTC
        ("Europe/London", date(2024, 3, 29), time(9), datetime(2024, 3, 29, 9, tzinfo=UTC)),
        ("Europe/London", date(2024, 4, 2), time(9), datetime(2024, 4, 2, 8, tzinfo=UTC)),
        ("Europe/London", date(2024, 3, 31), time(1, 30), datetime(2024, 3, 31, 1, 30, tzinfo=UTC)),  # gap
        ("Europe/London", date(2024, 10, 27), time(1, 30), datetime(2024, 10, 27, 0, 30, tzinfo=UTC)),  # fold
        ("Europe/London", date(2024, 10, 28), time(9), datetime(2024, 10, 28, 9, tzinfo=UTC)),
        # America/New_York: EDT from 10 Mar 2024 02:00, EST from 3 Nov 2024 02:00
        ("America/New_York", date(2024, 3, 8), time(9), datetime(2024, 3, 8, 14, tzinfo=UTC)),
        ("America/New_York", date(2024, 3, 11), time(9), datetime(2024, 3, 11, 13, tzinfo=UTC)),
        ("America/New_York", date(2024, 3, 10), time(2, 30), datetime(2024, 3, 10, 7, 30, tzinfo=UTC)),
        ("America/New_York", date(2024, 11, 3), time(1, 30), datetime(2024, 11, 3, 5, 30, tzinfo=UTC)),
        ("America/New_York", date(2024, 11, 4), time(9), datetime(2024, 11, 4, 14, tzinfo=UTC)),
        # Australia/Sydney: AEDT (+11) until 7 Apr 2024 03:00, AEST (+10) until 6 Oct 2024 02:00
        ("Australia/Sydney", date(2024, 4, 5), time(9), datetime(2024, 4, 4, 22, tzinfo=UTC)),
        ("Australia/Sydney", date(2024, 4, 8), time(9), datetime(2024, 4, 7, 23, tzinfo=UTC)),
        ("Australia/Sydney", date(2024, 10, 6), time(2, 30), datetime(2024, 10, 5, 16, 30, tzinfo=UTC)),
        ("Australia/Sydney", date(2024, 10, 7), time(9), datetime(2024, 10, 6, 22, tzinfo=UTC)),
    ],
)
def test_local_to_utc_is_dst_safe(tz: str, day: date, at: time, expected: datetime) -> None:
    result = local_to_utc(day, at, zone(tz))
    assert result == expected
    assert result.tzinfo is UTC


def test_gap_time_moves_forward_to_a_real_wall_time() -> None:
    moment = local_to_utc(date(2024, 3, 31), time(1, 30), zone("Europe/London"))
    assert moment.astimezone(zone("Europe/London")).time() == time(2, 30)


@pytest.mark.parametrize(
    ("country", "subdiv", "day", "holiday"),
    [
        ("GB", "ENG", date(2024, 4, 1), True),  # Easter Monday
        ("GB", "ENG", date(2024, 3, 29), True),  # Good Friday
        ("GB", "ENG", date(2024, 1, 2), False),
        ("GB", "SCT", date(2024, 1, 2), True),  # 2 January is a Scottish bank holiday
        ("US", None, date(2024, 11, 28), True),  # Thanksgiving
        ("AU", "NSW", date(2024, 1, 26), True),  # Australia Day
        ("AU", "NSW", date(2024, 2, 29), False),
    ],
)
def test_holiday_calendar(country: str, subdiv: str | None, day: date, holiday: bool) -> None:
    assert HolidayCalendar(country, subdiv).is_holiday(day) is holiday


def test_holiday_calendar_rejects_unknown_codes() -> None:
    with pytest.raises(ValueError, match="unknown holiday country"):
        HolidayCalendar("XX")
    with pytest.raises(ValueError, match="unknown subdivision"):
        HolidayCalendar("GB", "ZZZ")
    with pytest.raises(ValueError, match="needs a country"):
        HolidayCalendar(None, "ENG")
    assert HolidayCalendar().is_holiday(date(2024, 12, 25)) is False
    assert HolidayCalendar("GB", "ENG").holiday_name(date(2024, 12, 25)) == "Christmas Day"


def test_calendars_registry_reuses_instances() -> None:
    calendars = Calendars()
    assert calendars.get("gb", "eng") is calendars.get("GB", "ENG")
    assert calendars.get(None) is not calendars.get("GB")


def england(tz: str = "Europe/London", window: SendWindow | None = None) -> Schedule:
    return Schedule(zone(tz), window or SendWindow(), time(9), HolidayCalendar("GB", "ENG"))


def test_business_days_skip_weekends_and_holidays() -> None:
    schedule = england()
    # Thu 28 Mar 2024 + 1 business day: Good Friday, the weekend and Easter Monday are skipped.
    assert schedule.add_business_days(date(2024, 3, 28), 1) == date(2024, 4, 2)
    assert schedule.add_business_days(date(2024, 4, 2), -1) == date(2024, 3, 28)
    assert schedule.add_business_days(date(2024, 3, 1), 0) == date(2024, 3, 1)
    assert schedule.add_business_days(date(2024, 2, 28), 2) == date(2024, 3, 1)  # via 29 Feb
    assert schedule.add_business_days(date(2024, 3, 1), 5) == date(2024, 3, 8)


def test_fire_at_moves_weekends_and_holidays_to_the_next_send_day() -> None:
    schedule = england()
    assert schedule.fire_at(date(2024, 3, 29)) == datetime(2024, 4, 2, 8, tzinfo=UTC)  # Good Friday -> Tue, BST
    assert schedule.fire_at(date(2024, 3, 2)) == datetime(2024, 3, 4, 9, tzinfo=UTC)  # Saturday -> Monday
    assert schedule.fire_at(date(2024, 2, 29)) == datetime(2024, 2, 29, 9, tzinfo=UTC)
    assert schedule.fire_at(date(2024, 12, 25)) == datetime(2024, 12, 27, 9, tzinfo=UTC)  # Xmas, Boxing Day


def test_next_allowed_respects_the_window_in_local_time() -> None:
    schedule = england("America/New_York", SendWindow(start=time(8), end=time(18)))
    schedule.holidays = HolidayCalendar("US")
    # Friday 1 Mar 2024 19:00 EST -> Monday 4 Mar 08:00 EST
    assert schedule.next_allowed(datetime(2024, 3, 2, 0, tzinfo=UTC)) == datetime(2024, 3, 4, 13, tzinfo=UTC)
    # inside the window: unchanged
    inside = datetime(2024, 3, 4, 15, 17, tzinfo=UTC)
    assert schedule.next_allowed(inside) == inside
    # before the window on a send day: the window's start, across the DST change (EDT from 10 Mar)
    assert schedule.next_allowed(datetime(2024, 3, 11, 5, tzinfo=UTC)) == datetime(2024, 3, 11, 12, tzinfo=UTC)
    # Thanksgiving (Thu 28 Nov 2024) is skipped
    assert schedule.next_allowed(datetime(2024, 11, 28, 15, tzinfo=UTC)) == datetime(2024, 11, 29, 13, tzinfo=UTC)


def test_weekend_send_window() -> None:
    schedule = Schedule(zone("Australia/Sydney"), SendWindow(weekdays=frozenset({5, 6})), time(10), HolidayCalendar())
    assert schedule.next_send_day(date(2024, 3, 4)) == date(2024, 3, 9)
    assert schedule.is_send_day(date(2024, 3, 10))


def test_window_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="weekdays must be a non-empty set"):
        SendWindow(weekdays=frozenset())
    with pytest.raises(ValueError, match="must be before its end"):
        SendWindow(start=time(18), end=time(8))


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2024, 12, 15), 1, date(2025, 1, 15)),
        (date(2024, 3, 31), -1, date(2024, 2, 29)),
        (date(2024, 8, 31), 1, date(2024, 9, 30)),
    ],
)
def test_add_months_clamps_to_month_end(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_time_zone_names() -> None:
    assert is_time_zone("Europe/London")
    assert not is_time_zone("Mars/Olympus")
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("Mars/Olympus")

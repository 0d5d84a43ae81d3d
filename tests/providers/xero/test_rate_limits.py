"""The Xero limiter's daily block lifts at its reset instant, and no wait holds a thread past `max_wait`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.errors import RateLimited
from providers.xero.client import RateLimiter

DAY_429 = {"X-Rate-Limit-Problem": "day", "Retry-After": "66975"}


class Wall:
    """A movable wall clock."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def _limiter(wall: Wall, slept: list[float], **kwargs: float) -> RateLimiter:
    return RateLimiter(sleep=slept.append, wall=wall, **kwargs)  # type: ignore[arg-type]


def test_a_day_429_blocks_until_retry_after_then_lifts() -> None:
    wall = Wall(datetime(2026, 3, 1, 5, 0, tzinfo=UTC))
    slept: list[float] = []
    limiter = _limiter(wall, slept)
    with pytest.raises(RateLimited) as info:
        limiter.on_429(DAY_429)
    assert info.value.limit == "day"
    assert info.value.retry_after == pytest.approx(66975)
    assert "daily API limit" in info.value.user_message
    wall.moment += timedelta(seconds=66000)
    with pytest.raises(RateLimited) as later:
        limiter.admit()  # refused without calling Xero: still inside the window
    assert later.value.retry_after == pytest.approx(975)
    wall.moment += timedelta(seconds=976)
    limiter.admit()  # the window has passed: calls go through again
    assert slept == []


def test_day_limit_remaining_zero_blocks_until_the_next_utc_midnight() -> None:
    wall = Wall(datetime(2026, 3, 1, 22, 0, tzinfo=UTC))
    limiter = _limiter(wall, [])
    limiter.observe({"X-DayLimit-Remaining": "0"})
    with pytest.raises(RateLimited) as info:
        limiter.admit()
    assert info.value.limit == "day"
    assert info.value.retry_after == pytest.approx(2 * 3600)
    wall.moment = datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC)
    limiter.admit()
    assert limiter.day_remaining is None


def test_a_minute_wait_longer_than_max_wait_is_handed_to_the_scheduler() -> None:
    wall = Wall(datetime(2026, 3, 1, tzinfo=UTC))
    slept: list[float] = []
    limiter = _limiter(wall, slept, max_wait=5)
    with pytest.raises(RateLimited) as info:
        limiter.on_429({"X-Rate-Limit-Problem": "minute", "Retry-After": "40"})
    assert info.value.limit == "minute"
    assert info.value.retry_after == pytest.approx(40)
    assert limiter.on_429({"X-Rate-Limit-Problem": "minute", "Retry-After": "2"}) == pytest.approx(2)
    assert slept == []


def test_the_default_max_wait_is_a_few_seconds() -> None:
    assert RateLimiter().max_wait <= 5


def test_minute_remaining_zero_never_sleeps_past_max_wait() -> None:
    ticks = [1000.0]
    slept: list[float] = []
    limiter = RateLimiter(sleep=slept.append, monotonic=lambda: ticks[0], max_wait=5)
    limiter.admit()
    limiter.observe({"X-MinLimit-Remaining": "0"})
    with pytest.raises(RateLimited) as info:
        limiter.admit()  # the minute frees in ~60 s: rescheduled, not slept
    assert info.value.retry_after > 5
    assert slept == []

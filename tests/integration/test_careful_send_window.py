"""Issue 12 acceptance, on both emulators (real HTTP, the real SDKs, SQLite, a real SMTP server): the window is
checked at send time.

A London business chases on weekdays 09:00-17:00 (Europe/London, GB holidays). Its worker plans Friday's reminders
at 09:35 and stops before sending them; it comes back 20 simulated hours later, early on Saturday, and runs through
Tuesday. Every email reaches the SMTP server inside a customer's window on a send day (never on the weekend, never
at night), and no customer gets more than one email on a local day, although Friday's stale reminders and
Monday's own fall due together. (SQLite for both providers; PostgreSQL, whose instants come back aware, once.)
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pytest

from tests.support.careful import FEES, STEPS, TEMPLATES, address, done, mails, seed_backlog, set_now, watch_handover
from tests.support.pipeline import Pipeline, pipeline

LONDON = ZoneInfo("Europe/London")
OPENS, CLOSES = time(9, 0), time(17, 0)
RULES = {
    "cadences": {
        "rs": {
            "time_zone": "Europe/London",
            "holidays": {"country": "GB", "subdiv": "ENG"},
            "send_time": "09:30",
            "window": {"weekdays": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"},
            "catch_up": "latest",
            "steps": STEPS,
        }
    },
    "policies": {"templates": TEMPLATES, "late_fees": FEES},
}
THURSDAY = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)  # London is on UTC in December
FRIDAY_PLAN = datetime(2026, 12, 4, 9, 35, tzinfo=UTC)  # Friday's reminders are planned, then the worker stops
DOWNTIME = timedelta(hours=20)  # back at 05:35 on Saturday
UNTIL = datetime(2026, 12, 8, 18, 0, tzinfo=UTC)  # Tuesday evening
CUSTOMERS = 8
# Each customer: an invoice 20 days late (first contact Thursday) and one due on Monday (courtesy on Friday,
# due-day reminder on Monday, the day Friday's stale courtesy reminder also waits for).
DAYS_LATE = (20, -4)


def _turns(world: Pipeline, connection: int, start: datetime, end: datetime) -> None:
    """The worker's turns from `start` to `end`: hourly by day, every three hours at night."""
    moment = start
    while moment <= end:
        if 8 <= moment.astimezone(LONDON).hour <= 18 or moment.hour % 3 == 0:
            set_now(world, moment)
            world.turn(connection)
        moment += timedelta(hours=1)


@pytest.mark.parametrize(
    ("provider", "database"), [("quickbooks", "sqlite"), ("xero", "sqlite"), ("quickbooks", "postgresql")]
)
def test_a_worker_back_after_a_weekend_outage_sends_only_inside_the_window(
    provider: str, database: str, tmp_path: Path
) -> None:
    with pipeline(provider, tmp_path, RULES, start=THURSDAY, database=database) as world:
        set_now(world, THURSDAY)
        stamps = watch_handover(world)
        tenant = world.kit.add_company("London Joinery Ltd")
        seed_backlog(world, tenant, customers=CUSTOMERS, per_customer=2, today=THURSDAY.date(), days_late=DAYS_LATE)
        connection = world.connect(tenant)

        _turns(world, connection, THURSDAY, FRIDAY_PLAN - timedelta(hours=1))
        set_now(world, FRIDAY_PLAN)
        world.sync_and_plan(connection)  # ... and the worker stops before carrying anything out
        stale = [row.key for row in world.actions(connection) if row.kind == "remind" and row.state == "planned"]
        assert len(stale) == CUSTOMERS  # Friday's courtesy reminders wait in the outbox
        _turns(world, connection, FRIDAY_PLAN + DOWNTIME, UNTIL)

        sent = mails(world, stamps)
        assert len(sent) == len(done(world, connection, "remind"))
        english = holidays.country_holidays("GB", subdiv="ENG", years=2026)
        for mail in sent:
            local = mail.sent_at.astimezone(LONDON)
            assert local.weekday() < 5, (mail.to, local)
            assert OPENS <= local.time() < CLOSES, (mail.to, local)
            assert local.date() not in english, (mail.to, local)
        per_day = Counter((address(mail), mail.sent_at.astimezone(LONDON).date()) for mail in sent)
        assert max(per_day.values()) == 1  # at most one email per customer per local day
        monday = FRIDAY_PLAN.date() + timedelta(days=3)
        assert sum(1 for (_, day) in per_day if day == monday) == CUSTOMERS  # the stale ones went out on Monday
        assert world.activities("action.deferred")  # held back by the send-time check, not lost
        assert {row.state for row in world.actions(connection) if row.key in stale} == {"done"}

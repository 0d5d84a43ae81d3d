"""RS-28: a 09:00 org-local cadence across DST transitions, with the system clock stepped back an hour."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.support.pipeline import pipeline, rules
from tests.support.workers import customer_email

ZONE = "America/New_York"
NEW_YORK = ZoneInfo(ZONE)
# One reminder a day on each of the four days after the due date, at 09:00 New York time.
STEPS = [{"id": f"day{n}", "offset": n, "remind": "firm"} for n in range(1, 5)]
RULES = rules(STEPS, time_zone=ZONE, send_time="09:00")
TRANSITIONS = {
    "spring_forward": date(2026, 3, 7),  # 2026-03-08 02:00 EST -> 03:00 EDT
    "fall_back": date(2026, 10, 31),  # 2026-11-01 02:00 EDT -> 01:00 EST
}


@pytest.mark.parametrize("transition", list(TRANSITIONS))
def test_rs28_nine_oclock_cadence_sends_once_a_day_across_dst_and_clock_steps_back(
    transition: str, tmp_path: Path
) -> None:
    """Expected: a 09:00 org-local cadence sends exactly once per day; no duplicates after the clock jump.

    Nudge's clock (a FakeClock) and the emulator's are moved together hour by hour over the four days
    around the transition; after every turn at 10:xx local the clock is stepped back one hour and
    another turn runs. The pipeline is QuickBooks' (the cadence engine is the provider-neutral part).
    """
    due = TRANSITIONS[transition]
    start = datetime(due.year, due.month, due.day, 12, 30, tzinfo=NEW_YORK).astimezone(UTC)
    with pipeline("quickbooks", tmp_path, RULES, start=start) as world:
        kit = world.kit
        kit.set_now(start)
        tenant = kit.add_company("Eastern Co")
        customer = kit.add_customer(tenant, "Late Payer", customer_email("Late Payer"))
        kit.add_invoice(tenant, customer, "DST-1", Decimal("300.00"), "", due - timedelta(days=30), due)
        connection = world.connect(tenant, time_zone=ZONE)

        steps_back = 0
        moment = start
        while moment < start + timedelta(days=4, hours=23):
            world.clock.moment = moment
            kit.set_now(moment)
            world.turn(connection)
            if moment.astimezone(NEW_YORK).hour == 10:  # the system clock is stepped back 1 h, then on again
                world.clock.moment = moment - timedelta(hours=1)
                kit.set_now(world.clock.moment)
                world.turn(connection)
                steps_back += 1
            moment += timedelta(hours=1)

        reminders = [row for row in world.actions(connection) if row.kind == "remind"]
        assert steps_back >= 4
        assert [row.state for row in reminders] == ["done"] * 4, [(r.step, r.state, r.error) for r in reminders]
        local = [row.scheduled_at.replace(tzinfo=UTC).astimezone(NEW_YORK) for row in reminders]
        assert [t.hour for t in local] == [9] * 4  # the first turn at or after 09:00 local (turns run at :30)
        per_day = Counter(t.date() for t in local)
        assert sorted(per_day) == [due + timedelta(days=n) for n in range(1, 5)]
        assert set(per_day.values()) == {1}
        received = world.sink.message_ids()
        assert len(received) == len(set(received)) == 4
        assert sorted(received) == sorted(row.external_ref for row in reminders)

"""RS-06: the cadence engine re-run on the same day, and `nudge run` invoked twice at once.

Three overdue QuickBooks invoices (the emulator) of three customers are due a reminder and a late fee.
Two `nudge run` processes start at the same moment; then `nudge run --connection` runs twice more the
same day. The intent key (connection, invoice, rule, period) is the outbox's unique key, so the plan
is the same rows every time and each effect happens once.
"""

from __future__ import annotations

from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from connector.storage.tables import Action
from providers.quickbooks.emulator.kit import QuickBooksKit
from tests.support.pipeline import rules
from tests.support.workers import (
    actions,
    add_overdue_customers,
    connect,
    nudge,
    nudge_database,
    organization,
    quickbooks_writes,
    services_for,
    smtp_sink,
    write_config,
)

CUSTOMERS = 3
RULES = rules(
    [{"id": "late", "offset": 3, "remind": "firm", "late_fee": "flat25"}],
    cadence="daily",
    catch_up=None,
    late_fees={"flat25": {"kind": "flat", "amount": 25, "warning_required": False}},
)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_rs06_rerun_twice_and_concurrent_nudge_run_make_no_second_reminder_or_fee(
    tmp_path: Path, database: str
) -> None:
    """RS-06: no second reminder and no second fee; the intent key is unique in the DB."""
    with QuickBooksKit() as emulator, smtp_sink() as sink, nudge_database(database, tmp_path) as url:
        realm = emulator.add_company("Rerun Co", "USD")
        add_overdue_customers(emulator, realm, CUSTOMERS, number="R", amount="300.00", days_late=9)
        config = write_config(
            tmp_path, url, emulator, sink.port, RULES, scheduler={"lease_seconds": 60, "concurrency": 1}
        )
        services = services_for(config)
        try:
            cid = connect(services, emulator, realm, organization(services), "daily")
            both = [nudge(config, "run"), nudge(config, "run")]  # invoked concurrently
            for process in both:
                _, err = process.communicate(timeout=180)
                assert "Traceback" not in err, err[-2000:]
                assert "database is locked" not in err
            for _ in range(2):  # the engine re-run twice the same day (clock unchanged: same date)
                again = nudge(config, "run", "--connection", str(cid))
                _, err = again.communicate(timeout=180)
                assert again.returncode == 0, err[-2000:]

            rows = actions(services)
            assert Counter((row.kind, row.state) for row in rows) == {
                ("remind", "done"): CUSTOMERS,
                ("late_fee", "done"): CUSTOMERS,
            }
            recipients = Counter(str(message_from_bytes(m, policy=policy.default)["To"]) for m in sink.received)
            assert len(recipients) == CUSTOMERS
            assert set(recipients.values()) == {1}  # no second reminder
            fees = quickbooks_writes(emulator, realm).fee_doc_numbers
            assert len(fees) == len(set(fees)) == CUSTOMERS  # no second fee

            duplicate = rows[0]
            with services.store.unit_of_work() as uow:
                uow.session.add(
                    Action(
                        key=duplicate.key,
                        connection_id=duplicate.connection_id,
                        kind=duplicate.kind,
                        scheduled_at=duplicate.scheduled_at,
                    )
                )
                with pytest.raises(IntegrityError):
                    uow.session.flush()  # the intent key is unique in the database itself
        finally:
            services.store.dispose()

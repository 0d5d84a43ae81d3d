"""The overview's and the client screen's read models (issue 15), on SQLite and PostgreSQL: figures that agree with
the reports of the API, DSO 30 days earlier rebuilt from payments, what waits and what needs a person, health in
words, totals per currency never mixed, sorting and filtering; DSO week by week, collected per week, the next
days and the recent activity in words."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from connector.domain.actions import ActionKind, HoldReason
from connector.domain.money import Money
from connector.domain.policy import PolicySet
from connector.receivables import client_figures, reports
from connector.receivables.overview import OverviewQuery, arrange, currencies, overview, totals
from connector.storage import Store
from connector.storage.tables import Activity, Connection, SyncRun
from tests.support import receivables as seed

NOW = datetime(2026, 11, 30, 11, 30, tzinfo=UTC)  # 30 November in London, already 1 December in Auckland
TODAY = NOW.date()


def _line(store: Store, org_id: int, connection_id: int) -> object:
    return next(row for row in overview(store, org_id, NOW) if row.connection_id == connection_id)


def test_aging_and_dso_agree_with_the_reports_in_every_zone(store: Store) -> None:
    org = seed.organization(store, "Practice")
    rng = random.Random(15)
    zones = ("UTC", "Pacific/Auckland", "America/Los_Angeles")
    clients = [seed.client(store, org, f"Client {n}", time_zone=zones[n % 3]) for n in range(6)]
    for cid in clients:
        for n in range(40):  # due dates around every bucket edge, some paid, some in euros
            due = TODAY - timedelta(days=rng.choice([-5, -1, 0, 1, 29, 30, 31, 60, 61, 90, 91, 200]))
            status = rng.choice(["open", "open", "paid", "voided"])
            seed.invoice(
                store,
                cid,
                str(n),
                due=due,
                issued=due - timedelta(days=rng.randint(0, 40)),
                balance="0.00" if status == "paid" else f"{rng.randint(1, 9999)}.{rng.randint(0, 99):02d}",
                total=f"{rng.randint(100, 20000)}.00",
                currency=rng.choice(["GBP", "GBP", "EUR"]),
                status=status,
            )
    lines = {row.connection_id: row for row in overview(store, org, NOW)}
    for row in reports.aging(store, org, NOW):
        figures = lines[row.connection_id].figures_in(row.currency)
        assert figures is not None
        assert figures.buckets == tuple(bucket.balance for bucket in row.buckets), (row.client, row.currency)
        assert figures.receivables == row.total
        assert figures.invoices == row.count
        assert figures.overdue == Money.of(sum((b.balance.amount for b in row.buckets[1:]), Decimal(0)), row.currency)
    for row in reports.dso(store, org, NOW):
        dso = lines[row.connection_id].dso
        assert dso.currency == row.currency == "GBP"
        assert dso.days == (row.dso if row.sales and row.sales.amount > 0 else None)
    assert lines[clients[1]].as_of == date(2026, 12, 1)  # Auckland's own date


def test_dso_thirty_days_earlier_is_rebuilt_from_the_payments_since(store: Store) -> None:
    org = seed.organization(store, "Practice")
    cid = seed.client(store, org, "Alpha")
    then = TODAY - timedelta(days=30)
    # Issued in the 60 days before `then`: 3000 of sales then. Still open: 1000. Paid after then: 2000 (in two
    # payments, one of them voided and not counted). An invoice issued after then was not owed then.
    seed.invoice(store, cid, "1", due=then, issued=then - timedelta(days=10), balance="1000.00")
    seed.invoice(store, cid, "2", due=then, issued=then - timedelta(days=20), balance="0", total="2000", status="paid")
    seed.payment(store, cid, "P1", "2", "1500.00", then + timedelta(days=3))
    seed.payment(store, cid, "P2", "2", "500.00", then + timedelta(days=4), kind="credit")
    seed.payment(store, cid, "P0", "2", "999.00", then - timedelta(days=1))  # before then: already paid then
    seed.invoice(store, cid, "3", due=TODAY, issued=then + timedelta(days=1), balance="0", total="600", status="paid")
    seed.payment(store, cid, "P3", "3", "600.00", TODAY - timedelta(days=2))
    with store.unit_of_work() as uow:
        from connector.storage.tables import Payment

        uow.session.add(
            Payment(
                connection_id=cid,
                kind="payment",
                external_id="VOID",
                invoice_external_id="2",
                customer_external_id="c1",
                amount=Decimal("7000"),
                currency="GBP",
                paid_on=then + timedelta(days=5),
                voided=True,
            )
        )
        uow.commit()
    line = _line(store, org, cid)
    # then: owed 1000 + 2000 = 3000 over sales of 3000 in 60 days -> 60.0 days
    assert line.dso.before == Decimal("60.0")
    # now: owed 1000 over sales of 2000 + 1000 + 600 (issued in the 60 days ending today) -> 16.7 days
    assert line.dso.days == Decimal("16.7")
    assert line.dso.trend == "down"
    assert line.dso.trend_words == "down 43.3 days from 30 days ago"
    trend = client_figures.dso_trend(store, org, cid, "GBP", TODAY)
    assert len(trend) == 13
    assert trend[-1].day == TODAY
    assert trend[-1].days == line.dso.days
    assert next(point for point in trend if point.day == TODAY - timedelta(days=28)).days is not None


def test_what_waits_and_what_needs_a_person(store: Store) -> None:
    org = seed.organization(store, "Practice")
    cid = seed.client(store, org, "Alpha")
    review = seed.client(store, org, "New one", chasing="review")
    dead = seed.client(store, org, "Dead", status="needs_reauth", last_error="Xero no longer accepts the grant")
    for n, (state, days) in enumerate(
        [("planned", 1), ("planned", 6), ("planned", 8), ("awaiting_approval", 2), ("failed", -3), ("uncertain", -1)]
    ):
        seed.action(store, cid, f"k{n}" + "0" * 38, state=state, at=NOW + timedelta(days=days))
    seed.action(store, cid, "hold" + "0" * 36, kind=ActionKind.HOLD, state="planned", hold=HoldReason.DISPUTE, at=NOW)
    seed.action(store, cid, "done" + "0" * 36, state="done", at=NOW - timedelta(days=1))
    seed.action(store, review, "rev" + "0" * 37, state="awaiting_approval", at=NOW)
    seed.task(store, org, cid, due_on=TODAY)
    seed.task(store, org, cid, due_on=TODAY, state="done")
    lines = {row.connection_id: row for row in overview(store, org, NOW)}
    alpha = lines[cid]
    assert alpha.next_days == 3  # two planned within 7 days and one awaiting approval; not the one in 8 days
    assert (alpha.exceptions.failed, alpha.exceptions.uncertain, alpha.exceptions.tasks) == (1, 1, 1)
    assert alpha.exceptions.approvals == 1
    assert alpha.exceptions.total == 4
    assert alpha.exceptions.words == (
        "1 failed action",
        "1 email that may not have gone out",
        "1 open task",
        "1 action waiting for approval",
    )
    assert lines[review].exceptions.total == 1  # the review is one decision, however many actions wait
    assert lines[review].exceptions.words == ("First plan waiting for review",)
    assert lines[dead].exceptions.reconnect
    assert lines[dead].health.words == "Reconnect needed"
    assert lines[dead].health.detail == "Xero no longer accepts the grant"
    assert lines[dead].needs_reconnect


def test_health_in_words(store: Store) -> None:
    org = seed.organization(store, "Practice")
    other = seed.organization(store, "Smith & Co")
    ok = seed.client(store, org, "Synced")
    new = seed.client(store, org, "Never synced")
    limited = seed.client(store, org, "Limited")
    failing = seed.client(store, org, "Failing")
    elsewhere = seed.client(store, org, "Elsewhere", chasing="managed_elsewhere")
    review = seed.client(store, org, "Review", chasing="review")
    gone = seed.client(store, org, "Gone", status="disconnected")
    with store.unit_of_work() as uow:
        for cid, outcome, minutes in ((ok, "ok", 3), (ok, "failed", 1), (review, "ok", 60)):
            uow.session.add(
                SyncRun(
                    connection_id=cid,
                    started_at=NOW - timedelta(minutes=minutes + 1),
                    finished_at=NOW - timedelta(minutes=minutes),
                    outcome=outcome,
                )
            )
        uow.session.execute(
            update(Connection)
            .where(Connection.id == limited)
            .values(
                last_error="Xero daily API limit reached, resumes at 2026-11-30 14:00 UTC (...)",
                next_run_at=datetime(2026, 11, 30, 14, 0, tzinfo=UTC),
            )
        )
        uow.session.execute(
            update(Connection).where(Connection.id == failing).values(failures=3, last_error="the ledger timed out")
        )
        uow.session.execute(
            update(Connection).where(Connection.id == elsewhere).values(managed_by_organization_id=other)
        )
        uow.commit()
    lines = {row.connection_id: row.health for row in overview(store, org, NOW)}
    assert (lines[ok].state, lines[ok].words, lines[ok].at) == ("ok", "Last synced", NOW - timedelta(minutes=3))
    assert lines[new].words == "Not synced yet"
    assert lines[limited].words == "Daily API limit reached, resumes 14:00 UTC"
    assert lines[limited].tone == "warn"
    assert (lines[failing].words, lines[failing].detail) == ("Sync failing", "the ledger timed out")
    assert lines[elsewhere].words == "Chased by Smith & Co"
    assert (lines[review].words, lines[review].at) == ("Waiting for your review", NOW - timedelta(minutes=60))
    assert lines[gone].words == "Disconnected"


def test_totals_per_currency_sorting_and_filtering(store: Store) -> None:
    org = seed.organization(store, "Practice")
    a = seed.client(store, org, "alpha books")
    b = seed.client(store, org, "Beta Ltd", home_currency="EUR")
    seed.client(store, org, "Gamma & Sons")
    seed.invoice(store, a, "1", due=TODAY - timedelta(days=10), balance="100.00")
    seed.invoice(store, a, "2", due=TODAY - timedelta(days=10), balance="30.00", currency="USD")
    seed.invoice(store, b, "1", due=TODAY - timedelta(days=40), balance="500.00", currency="EUR")
    seed.invoice(store, b, "2", due=TODAY + timedelta(days=4), balance="50.00")
    rows = overview(store, org, NOW)
    assert [figures.currency for figures in rows[0].money] == ["GBP", "USD"]  # its home currency first
    assert [figures.currency for figures in rows[1].money] == ["EUR", "GBP"]
    assert rows[2].money == ()  # nothing open
    summed = {total.currency: total for total in totals(rows)}
    assert summed["GBP"].receivables == Money.of("150.00", "GBP")
    assert summed["GBP"].overdue == Money.of("100.00", "GBP")
    assert summed["GBP"].clients == 2
    assert summed["EUR"].bucket("31-60") == Money.of("500.00", "EUR")
    assert summed["USD"].receivables == Money.of("30.00", "USD")  # never added to pounds
    assert currencies(rows) == ("EUR", "GBP", "USD")

    def names(**query: object) -> list[str]:
        return [row.name for row in arrange(rows, OverviewQuery(**query))]  # type: ignore[arg-type]

    assert names() == ["alpha books", "Beta Ltd", "Gamma & Sons"]  # by name, any case
    assert names(descending=True) == ["Gamma & Sons", "Beta Ltd", "alpha books"]
    assert names(sort="overdue", descending=True) == ["Beta Ltd", "alpha books", "Gamma & Sons"]  # nothing open last
    assert names(sort="overdue") == ["alpha books", "Beta Ltd", "Gamma & Sons"]
    assert names(sort="overdue", currency="GBP", descending=True) == ["alpha books", "Beta Ltd"]
    assert names(search="  BETA ") == ["Beta Ltd"]
    assert len(names(health="ok")) == 3  # none synced yet: that is normal for a new client
    assert names(health="attention") == []
    assert len(names(sort="no such column")) == 3
    assert [row.name for row in overview(store, org, NOW, connection_ids={b})] == ["Beta Ltd"]
    assert overview(store, org, NOW, connection_ids=set()) == []
    assert overview(store, seed.organization(store, "Empty"), NOW) == []


def test_collected_per_week_counts_customer_money_only(store: Store) -> None:
    org = seed.organization(store, "Practice")
    cid = seed.client(store, org, "Alpha")
    monday = TODAY - timedelta(days=TODAY.weekday())  # this week's
    last = monday - timedelta(days=7)
    seed.payment(store, cid, "P1", "1", "100.00", last)
    seed.payment(store, cid, "P2", "2", "50.00", last + timedelta(days=6))  # its Sunday
    seed.payment(store, cid, "P3", "3", "70.00", last - timedelta(days=1))  # the Sunday before: the week before
    seed.payment(store, cid, "C1", "4", "999.00", last, kind="credit")  # a credit is no money received
    seed.payment(store, cid, "E1", "5", "20.00", monday, currency="EUR")
    seed.payment(store, cid, "OLD", "6", "5.00", monday - timedelta(weeks=12))  # before the 12 weeks
    series = client_figures.collected_per_week(store, org, cid, TODAY, currencies=["GBP"])
    assert [s.currency for s in series] == ["GBP", "EUR"]
    gbp = series[0]
    assert len(gbp.weeks) == 12
    assert gbp.weeks[-1].week == monday
    assert gbp.weeks[-1].amount == Money.of("0", "GBP")
    assert gbp.weeks[-2].amount == Money.of("150.00", "GBP")
    assert gbp.weeks[-3].amount == Money.of("70.00", "GBP")
    assert gbp.total == Money.of("220.00", "GBP")
    assert series[1].total == Money.of("20.00", "EUR")
    quiet = client_figures.collected_per_week(store, org, seed.client(store, org, "Quiet"), TODAY, currencies=["GBP"])
    assert [s.total for s in quiet] == [Money.of("0", "GBP")]  # the client's own currency, even when quiet


def test_upcoming_queued_actions_in_words(store: Store) -> None:
    org = seed.organization(store, "Practice")
    cid = seed.client(store, org, "Alpha")
    seed.invoice(store, cid, "1", due=TODAY - timedelta(days=5), number="INV-1001")
    seed.invoice(store, cid, "2", due=TODAY - timedelta(days=5), number="INV-1002")
    seed.action(store, cid, "r" * 40, at=NOW + timedelta(days=1), invoices=("1", "2"), grouped=True)
    seed.action(
        store, cid, "f" * 40, kind=ActionKind.LATE_FEE, at=NOW + timedelta(days=2), amount=Money.of("25", "GBP")
    )
    seed.action(store, cid, "a" * 40, state="awaiting_approval", at=NOW + timedelta(days=3), invoices=("9",))
    seed.action(store, cid, "x" * 40, at=NOW + timedelta(days=9))  # beyond the 7 days
    upcoming = client_figures.upcoming(store, org, cid, NOW, PolicySet())
    assert [(item.what, item.customer, item.invoices) for item in upcoming.queued] == [
        ("Reminder (firm)", "Cust One", ("INV-1001", "INV-1002")),
        ("Late fee", "Cust One", ("INV-1001",)),
        ("Reminder (firm)", "Cust One", ("9",)),  # an invoice Nudge does not hold: the ledger's id
    ]
    assert [item.waits_for_approval for item in upcoming.queued] == [False, False, True]
    assert upcoming.queued[1].amount == Money.of("25.00", "GBP")
    assert upcoming.counts == (("Reminder", 2), ("Late fee", 1))
    gone = seed.client(store, org, "Gone", status="needs_reauth")
    assert "reconnected" in client_figures.upcoming(store, org, gone, NOW, PolicySet()).forecast_note


def test_recent_activity_in_words_without_the_workers_turns(store: Store) -> None:
    org = seed.organization(store, "Practice")
    cid = seed.client(store, org, "Alpha")
    seed.invoice(store, cid, "1", due=TODAY, number="INV-1001")
    seed.action(store, cid, "r" * 40, state="done", at=NOW - timedelta(hours=2), invoices=("1",), grouped=True)
    with store.unit_of_work() as uow:
        for minutes, kind, subject, detail in (
            (130, "action.remind", "r" * 40, {"kind": "remind", "invoice": "1"}),
            (120, "connection.turn_started", "Alpha", {}),
            (110, "connection.error", "Alpha", {"error": "the ledger timed out"}),
            (100, "task.completed", "Call Cust One", {"outcome": "Promised Friday"}),
            (90, "action.failed", "gone" * 10, {"kind": "late_fee", "invoice": "1", "error": "refused"}),
        ):
            uow.session.add(
                Activity(
                    organization_id=org,
                    connection_id=cid,
                    kind=kind,
                    subject=subject,
                    detail=detail,
                    at=NOW - timedelta(minutes=minutes),
                )
            )
        uow.commit()
    lines = client_figures.recent_activity(store, org, cid)
    assert [(line.title, line.detail) for line in lines] == [
        ("Failed: late fee", "INV-1001 — refused"),
        ("Task completed: Call Cust One", "Promised Friday"),
        ("Sync failed", "the ledger timed out"),
        ("Reminder sent (firm) to Cust One", "INV-1"),
    ]
    with pytest.raises(Exception, match="no client"):
        client_figures.recent_activity(store, org, cid, connection_ids=set())

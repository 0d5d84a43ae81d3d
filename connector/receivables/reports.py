"""Reports: aging buckets per client and currency, DSO per client (home currency), recovery per cadence step.

Totals are never added across currencies: aging has one row per client and currency; DSO counts only the
client's home-currency invoices (and says how many others it left out); recovery keeps an amount per currency.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from connector.domain.dso import DEFAULT_PERIOD_DAYS, days_sales_outstanding, sales_in_period
from connector.domain.model import InvoiceStatus
from connector.domain.money import Money
from connector.errors import InvalidInput
from connector.outbox.attribution import recovery_by_step
from connector.receivables.common import check_day, client_zones, local_today, visible_connections
from connector.receivables.invoices import BUCKETS, bucket_of, days_past_due
from connector.storage import Store
from connector.storage.tables import Invoice

_SALES_STATUSES = (InvoiceStatus.OPEN.value, InvoiceStatus.PAID.value)
MAX_PERIOD_DAYS = 3660


@dataclass(frozen=True)
class AgingBucket:
    """One aging bucket of one client in one currency: how many open invoices, how much is owed."""

    bucket: str
    count: int
    balance: Money


@dataclass(frozen=True)
class AgingRow:
    """One client's open receivables in one currency, by aging bucket (every bucket listed, empty ones too)."""

    connection_id: int
    client: str
    currency: str
    as_of: date  # the client's local date the ages are counted on
    buckets: tuple[AgingBucket, ...]
    total: Money
    count: int


@dataclass(frozen=True)
class DsoRow:
    """One client's days sales outstanding, in its home currency ("" and None while that is not known)."""

    connection_id: int
    client: str
    currency: str
    period_days: int
    period_end: date
    receivables: Money | None
    sales: Money | None
    dso: Decimal | None
    other_currency_invoices: int  # invoices in other currencies left out of both figures
    note: str = ""


@dataclass(frozen=True)
class StepRow:
    """One cadence step's results over the period: reminders sent, invoices paid within 7 days, amounts."""

    step: str
    reminders_sent: int
    paid_within_7_days: int
    payments: int
    recovered: tuple[Money, ...]  # one per currency


def aging(
    store: Store,
    org_id: int,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
    connection_id: int | None = None,
) -> list[AgingRow]:
    """Open receivables per client per currency in the aging buckets, days counted on each client's calendar."""
    with store.unit_of_work() as uow:
        connections = visible_connections(uow, org_id, connection_ids, connection_id)
        zones = client_zones(uow, connections)
        ids = [connection.id for connection in connections]
        rows = (
            uow.session.execute(
                select(Invoice.connection_id, Invoice.currency, Invoice.due_date, Invoice.balance).where(
                    Invoice.connection_id.in_(ids),
                    Invoice.status == InvoiceStatus.OPEN.value,
                    Invoice.balance > 0,
                )
            ).all()
            if ids
            else []
        )
    today = {connection.id: local_today(now, zones[connection.id]) for connection in connections}
    sums: dict[tuple[int, str], dict[str, tuple[int, Decimal]]] = defaultdict(dict)
    for cid, currency, due, balance in rows:
        bucket = bucket_of(days_past_due(due, today[cid]))
        count, amount = sums[(cid, currency)].get(bucket, (0, Decimal(0)))
        sums[(cid, currency)][bucket] = (count + 1, amount + balance)
    result = []
    for connection in connections:
        for (cid, currency), buckets in sorted(sums.items()):
            if cid != connection.id:
                continue
            lines = tuple(
                AgingBucket(
                    name,
                    buckets.get(name, (0, Decimal(0)))[0],
                    Money.of(buckets.get(name, (0, Decimal(0)))[1], currency),
                )
                for name in BUCKETS
            )
            result.append(
                AgingRow(
                    connection_id=cid,
                    client=connection.name,
                    currency=currency,
                    as_of=today[cid],
                    buckets=lines,
                    total=Money.of(sum((line.balance.amount for line in lines), Decimal(0)), currency),
                    count=sum(line.count for line in lines),
                )
            )
    return result


def dso(
    store: Store,
    org_id: int,
    now: datetime,
    *,
    connection_ids: Collection[int] | None = None,
    connection_id: int | None = None,
    period_days: int = DEFAULT_PERIOD_DAYS,
) -> list[DsoRow]:
    """DSO per client over the `period_days` local days ending today, in the client's home currency."""
    if isinstance(period_days, bool) or not isinstance(period_days, int) or not 1 <= period_days <= MAX_PERIOD_DAYS:
        raise InvalidInput(f"period_days must be a whole number from 1 to {MAX_PERIOD_DAYS}", "period_days")
    result = []
    with store.unit_of_work() as uow:
        connections = visible_connections(uow, org_id, connection_ids, connection_id)
        zones = client_zones(uow, connections)
        for connection in connections:
            end = local_today(now, zones[connection.id])
            currency = connection.home_currency
            others = uow.session.scalar(
                select(func.count(Invoice.id)).where(
                    Invoice.connection_id == connection.id,
                    Invoice.currency != currency,
                    Invoice.status.in_(_SALES_STATUSES),
                )
            )
            if not currency:
                result.append(
                    DsoRow(
                        connection.id,
                        connection.name,
                        "",
                        period_days,
                        end,
                        None,
                        None,
                        None,
                        int(others or 0),
                        note="the ledger's home currency is not known yet (it is read at the next sync)",
                    )
                )
                continue
            receivables = uow.session.scalar(
                select(func.coalesce(func.sum(Invoice.balance), 0)).where(
                    Invoice.connection_id == connection.id,
                    Invoice.currency == currency,
                    Invoice.status == InvoiceStatus.OPEN.value,
                )
            )
            issued = uow.session.execute(
                select(Invoice.issue_date, Invoice.total).where(
                    Invoice.connection_id == connection.id,
                    Invoice.currency == currency,
                    Invoice.status.in_(_SALES_STATUSES),
                    Invoice.issue_date > end - timedelta(days=period_days),
                    Invoice.issue_date <= end,
                )
            ).all()
            sales = sales_in_period(
                ((on, amount) for on, amount in issued if on is not None), period_end=end, period_days=period_days
            )
            owed = Decimal(receivables or 0)
            result.append(
                DsoRow(
                    connection_id=connection.id,
                    client=connection.name,
                    currency=currency,
                    period_days=period_days,
                    period_end=end,
                    receivables=Money.of(owed, currency),
                    sales=Money.of(sales, currency),
                    dso=days_sales_outstanding(owed, sales, period_days),
                    other_currency_invoices=int(others or 0),
                    note="" if sales > 0 else "no sales in the period: DSO is undefined and shown as 0",
                )
            )
    return result


def recovery(
    store: Store,
    org_id: int,
    since: date,
    *,
    connection_ids: Collection[int] | None = None,
    connection_id: int | None = None,
) -> list[StepRow]:
    """Per cadence step, since `since`: reminders sent, invoices paid within 7 days after one, amount recovered."""
    check_day(since, "since")
    with store.unit_of_work() as uow:
        ids = [connection.id for connection in visible_connections(uow, org_id, connection_ids, connection_id)]
        steps = recovery_by_step(uow, ids, since) if ids else []
    return [
        StepRow(
            step=step.step_id,
            reminders_sent=step.reminders_sent,
            paid_within_7_days=step.paid_within_7_days,
            payments=step.payments,
            recovered=tuple(Money.of(amount, currency) for currency, amount in sorted(step.recovered.items())),
        )
        for step in steps
    ]

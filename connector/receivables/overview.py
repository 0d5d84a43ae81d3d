"""The overview: every client a member may see in one table, in a fixed handful of statements however many there are.

Per client: open receivables and the overdue part per currency in the aging buckets (days past due on the
client's own calendar, as `connector.receivables.invoices.bucket_of` counts them), days sales outstanding (DSO)
now and 30 days earlier, how many actions wait in the outbox for the next 7 days, what needs a person (failed and
uncertain actions, open tasks, approvals or an onboarding review, a dead grant) and the health of its sync in
words. Totals are kept per currency, never added across currencies.

DSO is computed as `connector.receivables.reports.dso` does (60 days, the client's home currency; while the home
currency is not known yet, the currency most of its invoices are in). The figure 30 days earlier is rebuilt from
what is stored now: the open balance then is today's balance of the invoices issued by then plus the money
applied to them since (payments and credits, voided ones aside), and sales are the invoices issued in the 60 days
that ended then. Seven statements, grouped by client and currency in SQL (the aging buckets as columns): the
clients themselves, open invoices per bucket, sales and open balances, money applied since the earlier date,
actions, tasks and sync runs. The clients' local dates differ by a day at most across the world's zones: each
statement over invoices has an arm per local date (UNION ALL), so every comparison is with a constant date.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import ColumnElement, Integer, and_, any_, case, false, func, literal, or_, select, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased

from connector.domain.actions import ActionKind
from connector.domain.calendar import zone
from connector.domain.dso import DEFAULT_PERIOD_DAYS, days_sales_outstanding
from connector.domain.model import ActionState, ConnectionStatus, InvoiceStatus
from connector.domain.money import Money
from connector.receivables.invoices import BUCKETS
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import ClientSettings, Connection, Invoice, Organization, Payment, SyncRun, Task

TREND_DAYS = 30  # DSO is compared with its value this many days earlier
NEXT_DAYS = 7  # "what goes out": actions waiting in the outbox for the next 7 days
TREND_THRESHOLD = Decimal("0.5")  # a change of less than half a day is "no change"
_SALES = (InvoiceStatus.OPEN.value, InvoiceStatus.PAID.value)
_WAITING = (ActionState.PLANNED.value, ActionState.AWAITING_APPROVAL.value)
_NEEDS_PERSON = (ActionState.FAILED.value, ActionState.UNCERTAIN.value)
DAILY_LIMIT = "daily api limit reached"  # connector.worker.scheduler.rate_limit_message writes these words
RATE_LIMIT = "api rate limit reached"

# Health states a filter may ask for, grouped as people look for them.
HEALTH_FILTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "attention": ("Needs attention", ("reconnect", "disconnected", "failing", "limited")),
    "review": ("Waiting for your review", ("review",)),
    "ok": ("Syncing normally", ("ok", "new")),
    "elsewhere": ("Chased by another organization", ("elsewhere",)),
}
SORTS = ("name", "receivables", "overdue", "dso", "next", "exceptions", "health")
# Worst first when sorting by health.
_HEALTH_RANK = {"disconnected": 0, "reconnect": 1, "failing": 2, "limited": 3, "review": 4, "new": 5, "elsewhere": 6}


@dataclass(frozen=True)
class CurrencyFigures:
    """One client's (or the totals') open receivables in one currency: how much, how much overdue, per bucket."""

    currency: str
    receivables: Money
    overdue: Money
    buckets: tuple[Money, ...]  # in BUCKETS order: current, 1-30, 31-60, 61-90, 90+
    invoices: int  # open invoices with something left to pay
    overdue_invoices: int
    clients: int = 1  # in a totals row: how many clients have receivables in this currency

    def bucket(self, name: str) -> Money:
        """The amount in aging bucket `name`."""
        return self.buckets[BUCKETS.index(name)]


@dataclass(frozen=True)
class Dso:
    """Days sales outstanding now and `TREND_DAYS` earlier, in `currency` (None: no sales in the period)."""

    currency: str
    days: Decimal | None
    before: Decimal | None
    period_days: int = DEFAULT_PERIOD_DAYS

    @property
    def trend(self) -> str:
        """ "up" (more days: worse), "down" (better), "flat", or "" when either figure is missing."""
        if self.days is None or self.before is None:
            return ""
        change = self.days - self.before
        if change > TREND_THRESHOLD:
            return "up"
        if change < -TREND_THRESHOLD:
            return "down"
        return "flat"

    @property
    def trend_words(self) -> str:
        """The trend in words, e.g. "up 4.5 days from 30 days ago"."""
        if not self.trend or self.days is None or self.before is None:
            return "no earlier figure to compare with" if self.days is not None else ""
        if self.trend == "flat":
            return f"about the same as {TREND_DAYS} days ago"
        return f"{self.trend} {abs(self.days - self.before)} days from {TREND_DAYS} days ago"


@dataclass(frozen=True)
class Exceptions:
    """What needs a person for one client."""

    failed: int = 0
    uncertain: int = 0
    tasks: int = 0
    approvals: int = 0  # actions waiting for approval (outside an onboarding review)
    review: bool = False  # the first plan waits for its review
    reconnect: bool = False  # the grant is dead or the file disconnected

    @property
    def total(self) -> int:
        """How many things: each failed or uncertain action, task and approval; a review and a reconnect count one."""
        return self.failed + self.uncertain + self.tasks + self.approvals + int(self.review) + int(self.reconnect)

    @property
    def words(self) -> tuple[str, ...]:
        """Each kind of thing in words ("2 failed actions", "Reconnect needed", ...)."""
        found = []
        if self.reconnect:
            found.append("Reconnect needed")
        if self.review:
            found.append("First plan waiting for review")
        for count, one, many in (
            (self.failed, "failed action", "failed actions"),
            (self.uncertain, "email that may not have gone out", "emails that may not have gone out"),
            (self.tasks, "open task", "open tasks"),
            (self.approvals, "action waiting for approval", "actions waiting for approval"),
        ):
            if count:
                found.append(f"{count} {one if count == 1 else many}")
        return tuple(found)


@dataclass(frozen=True)
class Health:
    """The state of a client's sync in words: `state` (a key for filters), `words`, a tone for its badge, and
    the instant `words` refer to ("Last synced" + `at`), if any; `detail` is the last error, in the user's words."""

    state: str
    words: str
    tone: str
    at: datetime | None = None
    detail: str = ""


@dataclass(frozen=True)
class ClientOverview:
    """One client's line of the overview."""

    connection_id: int
    name: str
    provider: str  # the provider's key
    status: str
    chasing: str
    managed_by: str
    home_currency: str
    money: tuple[CurrencyFigures, ...]  # one per currency with something open: the DSO currency first
    dso: Dso
    next_days: int  # actions waiting in the outbox for the next NEXT_DAYS days
    exceptions: Exceptions
    health: Health
    last_synced_at: datetime | None
    as_of: date  # the client's local date the ages are counted on

    @property
    def needs_reconnect(self) -> bool:
        """Whether the client shows a Reconnect button (a dead grant, or disconnected)."""
        return self.status in (ConnectionStatus.NEEDS_REAUTH.value, ConnectionStatus.DISCONNECTED.value)

    def figures_in(self, currency: str) -> CurrencyFigures | None:
        """This client's figures in `currency`, if it has anything open in it."""
        return next((figures for figures in self.money if figures.currency == currency), None)


@dataclass(frozen=True)
class OverviewQuery:
    """How the overview is narrowed and ordered (every field optional)."""

    search: str = ""  # part of the client's name, any case
    health: str = ""  # a key of HEALTH_FILTERS
    currency: str = ""  # clients with something open in this currency
    sort: str = "name"  # one of SORTS
    descending: bool = False


@dataclass(frozen=True)
class _Client:
    id: int
    name: str
    provider: str
    status: str
    chasing: str
    home_currency: str
    time_zone: str
    next_run_at: datetime | None
    failures: int
    last_error: str
    managed_by: str
    today: date = field(default=date.min)


@dataclass
class _Sums:
    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    amounts: list[Decimal] = field(default_factory=lambda: [Decimal(0)] * len(BUCKETS))
    open_all: Decimal = Decimal(0)
    sales_now: Decimal = Decimal(0)
    sales_then: Decimal = Decimal(0)
    open_then: Decimal = Decimal(0)
    invoices: int = 0


def overview(
    store: Store, org_id: int, now: datetime, *, connection_ids: Collection[int] | None = None
) -> list[ClientOverview]:
    """Every client of the organization the member may see (`connection_ids`; None: all), by id."""
    with store.unit_of_work() as uow:
        clients = _clients(uow.session, org_id, connection_ids, now)
        if not clients:
            return []
        ids = sorted(clients)
        days = _by_day(clients.values(), lambda client: client.today)
        pg = uow.session.get_bind().dialect.name == "postgresql"
        sums = _invoice_sums(uow.session, days, pg)
        actions = _action_counts(uow.session, ids, now, pg)
        tasks = dict(
            uow.session.execute(
                select(Task.connection_id, func.count())
                .where(among(Task.connection_id, ids, pg), Task.state == "open")
                .group_by(Task.connection_id)
            ).all()
        )
        synced = dict(
            uow.session.execute(
                select(SyncRun.connection_id, func.max(SyncRun.finished_at))
                .where(among(SyncRun.connection_id, ids, pg), SyncRun.outcome == "ok")
                .group_by(SyncRun.connection_id)
            ).all()
        )
    return [
        _client_line(
            clients[cid],
            sums.get(cid, {}),
            actions.get(cid, {}),
            int(tasks.get(cid, 0)),
            synced.get(cid),
            now,
        )
        for cid in ids
    ]


def _clients(session: Any, org_id: int, connection_ids: Collection[int] | None, now: datetime) -> dict[int, _Client]:
    manager = aliased(Organization)
    query = (
        select(
            Connection.id,
            Connection.name,
            Connection.tenant_id,
            Connection.provider,
            Connection.status,
            Connection.chasing,
            Connection.home_currency,
            Connection.time_zone,
            Connection.next_run_at,
            Connection.failures,
            Connection.last_error,
            ClientSettings.time_zone,
            manager.name,
        )
        .outerjoin(ClientSettings, ClientSettings.connection_id == Connection.id)
        .outerjoin(manager, manager.id == Connection.managed_by_organization_id)
        .where(Connection.organization_id == org_id)
    )
    if connection_ids is not None:
        query = query.where(Connection.id.in_(sorted(connection_ids)) if connection_ids else false())
    found = {}
    for row in session.execute(query):
        (cid, name, tenant, provider, status, chasing, home, ledger_zone, next_run, failures, error, own_zone, boss) = (
            row
        )
        found[cid] = _Client(
            id=cid,
            name=name or tenant,
            provider=provider,
            status=status,
            chasing=chasing,
            home_currency=home or "",
            time_zone=own_zone or ledger_zone or "UTC",
            next_run_at=next_run,
            failures=failures or 0,
            last_error=error or "",
            managed_by=boss or "",
            today=_local_today(now, own_zone or ledger_zone or "UTC"),
        )
    return found


def _local_today(now: datetime, name: str) -> date:
    try:
        return now.astimezone(zone(name)).date()
    except ValueError:  # a zone this system does not know: UTC rather than no answer
        return now.astimezone(UTC).date()


def _by_day(clients: Iterable[_Client], day_of: Callable[[_Client], date]) -> dict[date, list[int]]:
    """Client ids by their local date (at most three at any instant: the zones span 26 hours)."""
    days: dict[date, list[int]] = defaultdict(list)
    for client in clients:
        days[day_of(client)].append(client.id)
    return dict(days)


def among(column: Any, ids: list[int], postgres: bool) -> ColumnElement[bool]:
    """`column` is one of `ids`: on PostgreSQL `= ANY(array)`, one parameter however many clients (an IN list of
    200 is 200 parameters to send and parse, in every statement and arm); elsewhere an IN list."""
    if postgres:
        return cast(ColumnElement[bool], column == any_(literal(ids, type_=ARRAY(Integer))))
    return cast(ColumnElement[bool], column.in_(ids))


def _decimal(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _bucket_conditions(due: Any, today: date) -> list[ColumnElement[bool]]:
    """For each of BUCKETS, the condition "`due` puts an invoice in it" on `today` (no due date: current)."""
    edges = [today - timedelta(days=back) for back in (0, 30, 60, 90)]  # the earliest due date of each bucket
    return [
        or_(due.is_(None), due >= edges[0]),
        and_(due < edges[0], due >= edges[1]),
        and_(due < edges[1], due >= edges[2]),
        and_(due < edges[2], due >= edges[3]),
        due < edges[3],
    ]


def _union(arms: list[Any]) -> Any:
    return arms[0] if len(arms) == 1 else union_all(*arms)


def _invoice_sums(session: Any, days: dict[date, list[int]], pg: bool) -> dict[int, dict[str, _Sums]]:
    """Per client and currency: open invoices and amounts per aging bucket, the open balance now and that of the
    invoices issued by 30 days ago, sales in the periods ending today and then, and the money applied since then
    (to add to what was owed then). Three statements, each with an arm per local date (the clients sharing it),
    grouped by client and currency: the open invoices, the invoices issued in the last 90 days, the payments since
    30 days ago; none reads the paid history before that."""
    sums: dict[int, dict[str, _Sums]] = defaultdict(dict)

    def found(cid: int, currency: str) -> _Sums:
        return sums[cid].setdefault(currency, _Sums())

    for row in session.execute(_union([_open_arm(today, ids, pg) for today, ids in sorted(days.items())])).mappings():
        entry = found(row["cid"], row["currency"])
        entry.counts = [int(row[f"n{index}"] or 0) for index in range(len(BUCKETS))]
        entry.amounts = [_decimal(row[f"a{index}"]) for index in range(len(BUCKETS))]
        entry.open_all = _decimal(row["open_all"])
        entry.open_then += _decimal(row["open_then"])
        entry.invoices += int(row["invoices"] or 0)
    for row in session.execute(_union([_sales_arm(today, ids, pg) for today, ids in sorted(days.items())])).mappings():
        entry = found(row["cid"], row["currency"])
        entry.sales_now = _decimal(row["sales_now"])
        entry.sales_then = _decimal(row["sales_then"])
        entry.invoices += int(row["invoices"] or 0)
    for row in session.execute(
        _union([_applied_arm(today, ids, pg) for today, ids in sorted(days.items())])
    ).mappings():
        found(row["cid"], row["currency"]).open_then += _decimal(row["applied"])
    return sums


def _open_arm(today: date, ids: list[int], pg: bool) -> Any:
    """The open invoices of the clients whose local date is `today`: those with something to pay per aging bucket
    (as columns), the open balance, and the open balance of those issued by 30 days ago."""
    then = today - timedelta(days=TREND_DAYS)
    owing = Invoice.balance > 0
    columns: list[Any] = [Invoice.connection_id.label("cid"), Invoice.currency.label("currency")]
    for index, condition in enumerate(_bucket_conditions(Invoice.due_date, today)):
        columns.append(func.count().filter(owing, condition).label(f"n{index}"))
        columns.append(func.sum(Invoice.balance).filter(owing, condition).label(f"a{index}"))
    columns += [
        func.sum(Invoice.balance).label("open_all"),
        func.sum(Invoice.balance)
        .filter(or_(Invoice.issue_date.is_(None), Invoice.issue_date <= then))
        .label("open_then"),
        func.count().label("invoices"),
    ]
    return (
        select(*columns)
        .where(among(Invoice.connection_id, ids, pg), Invoice.status == InvoiceStatus.OPEN.value)
        .group_by(Invoice.connection_id, Invoice.currency)
    )


def _sales_arm(today: date, ids: list[int], pg: bool) -> Any:
    """Sales (invoices issued, open or paid) in the period ending today and in the one ending 30 days ago."""
    period = timedelta(days=DEFAULT_PERIOD_DAYS)
    then = today - timedelta(days=TREND_DAYS)
    return (
        select(
            Invoice.connection_id.label("cid"),
            Invoice.currency.label("currency"),
            func.sum(Invoice.total)
            .filter(Invoice.issue_date > today - period, Invoice.issue_date <= today)
            .label("sales_now"),
            func.sum(Invoice.total).filter(Invoice.issue_date <= then).label("sales_then"),
            func.count().filter(Invoice.status != InvoiceStatus.OPEN.value).label("invoices"),
        )
        .where(
            among(Invoice.connection_id, ids, pg),
            Invoice.status.in_(_SALES),
            Invoice.issue_date > then - period,
        )
        .group_by(Invoice.connection_id, Invoice.currency)
    )


def _applied_arm(today: date, ids: list[int], pg: bool) -> Any:
    """Money applied after the date 30 days back to invoices issued by then, per client and currency: every payment
    or credit since then (voided ones aside) but those to an invoice issued after then. Said that way, the join
    reads only the invoices issued in the last 30 days, not the whole history. (A payment to an invoice Nudge does
    not hold counts: the sync holds every invoice open or closed lately, which is where money since then went; a
    ledger voids an invoice only once its payments are removed.)"""
    then = today - timedelta(days=TREND_DAYS)
    later = aliased(Invoice)
    return (
        select(
            Payment.connection_id.label("cid"),
            Payment.currency.label("currency"),
            func.sum(Payment.amount).label("applied"),
        )
        .outerjoin(
            later,
            and_(
                later.connection_id == Payment.connection_id,
                later.external_id == Payment.invoice_external_id,
                among(later.connection_id, ids, pg),  # said again: PostgreSQL does not carry it across the join
                later.issue_date > then,
            ),
        )
        .where(
            among(Payment.connection_id, ids, pg),
            Payment.voided.is_(False),
            Payment.invoice_external_id != "",
            Payment.paid_on > then,
            later.id.is_(None),
        )
        .group_by(Payment.connection_id, Payment.currency)
    )


def _action_counts(session: Any, ids: list[int], now: datetime, pg: bool) -> dict[int, dict[str, tuple[int, int]]]:
    """Per client and state (waiting or needing a person): (all such actions, those due within NEXT_DAYS)."""
    horizon = now + timedelta(days=NEXT_DAYS)
    rows = session.execute(
        select(
            ActionRow.connection_id,
            ActionRow.state,
            func.count(),
            func.count(case((ActionRow.scheduled_at < horizon, 1))),
        )
        .where(
            among(ActionRow.connection_id, ids, pg),
            ActionRow.state.in_(_WAITING + _NEEDS_PERSON),
            ActionRow.kind != ActionKind.HOLD.value,
        )
        .group_by(ActionRow.connection_id, ActionRow.state)
    )
    counts: dict[int, dict[str, tuple[int, int]]] = defaultdict(dict)
    for cid, state, total, soon in rows:
        counts[cid][state] = (int(total or 0), int(soon or 0))
    return counts


def _client_line(
    client: _Client,
    sums: dict[str, _Sums],
    actions: dict[str, tuple[int, int]],
    tasks: int,
    last_ok: datetime | None,
    now: datetime,
) -> ClientOverview:
    dso_currency = client.home_currency or _main_currency(sums)
    money = [_figures(currency, found) for currency, found in sums.items() if sum(found.counts)]
    money.sort(key=lambda figures: (figures.currency != dso_currency, figures.currency))
    awaiting = actions.get(ActionState.AWAITING_APPROVAL.value, (0, 0))[0]
    in_review = client.chasing == "review"
    exceptions = Exceptions(
        failed=actions.get(ActionState.FAILED.value, (0, 0))[0],
        uncertain=actions.get(ActionState.UNCERTAIN.value, (0, 0))[0],
        tasks=tasks,
        approvals=0 if in_review else awaiting,
        review=in_review,
        reconnect=client.status != ConnectionStatus.ACTIVE.value,
    )
    next_days = sum(actions.get(state, (0, 0))[1] for state in _WAITING)
    return ClientOverview(
        connection_id=client.id,
        name=client.name,
        provider=client.provider,
        status=client.status,
        chasing=client.chasing,
        managed_by=client.managed_by,
        home_currency=client.home_currency,
        money=tuple(money),
        dso=_dso(dso_currency, sums.get(dso_currency)),
        next_days=next_days,
        exceptions=exceptions,
        health=health(client, last_ok, now),
        last_synced_at=last_ok,
        as_of=client.today,
    )


def _main_currency(sums: dict[str, _Sums]) -> str:
    """The currency most of a client's invoices are in ("" for none): DSO's while the home currency is unknown."""
    if not sums:
        return ""
    return min(sums, key=lambda currency: (-sums[currency].invoices, currency))


def _figures(currency: str, found: _Sums) -> CurrencyFigures:
    buckets = tuple(Money.of(amount, currency) for amount in found.amounts)
    overdue = sum(found.amounts[1:], Decimal(0))
    return CurrencyFigures(
        currency=currency,
        receivables=Money.of(sum(found.amounts, Decimal(0)), currency),
        overdue=Money.of(overdue, currency),
        buckets=buckets,
        invoices=sum(found.counts),
        overdue_invoices=sum(found.counts[1:]),
    )


def _dso(currency: str, found: _Sums | None) -> Dso:
    if not currency or found is None:
        return Dso(currency, None, None)
    period = DEFAULT_PERIOD_DAYS
    now = days_sales_outstanding(found.open_all, found.sales_now, period) if found.sales_now > 0 else None
    before = days_sales_outstanding(found.open_then, found.sales_then, period) if found.sales_then > 0 else None
    return Dso(currency, now, before, period)


def health(client: Any, last_synced_at: datetime | None, now: datetime) -> Health:
    """A client's sync health in words, the most pressing first (`client` carries status, chasing, managed_by,
    last_error, failures and next_run_at, as a connection row does)."""
    error = client.last_error or ""
    if client.status == ConnectionStatus.DISCONNECTED.value:
        return Health("disconnected", "Disconnected", "danger", detail=error)
    if client.status == ConnectionStatus.NEEDS_REAUTH.value:
        return Health("reconnect", "Reconnect needed", "danger", detail=error)
    if client.chasing == "managed_elsewhere":
        return Health("elsewhere", f"Chased by {client.managed_by or 'another Nudge organization'}", "info")
    limit = error.lower()
    if (DAILY_LIMIT in limit or RATE_LIMIT in limit) and client.next_run_at is not None and client.next_run_at > now:
        what = "Daily API limit reached" if DAILY_LIMIT in limit else "API rate limit reached"
        return Health("limited", f"{what}, resumes {_resumes(client.next_run_at, now)}", "warn", detail=error)
    if client.failures and error:
        return Health("failing", "Sync failing", "danger", at=last_synced_at, detail=error)
    if client.chasing == "review":
        return Health("review", "Waiting for your review", "warn", at=last_synced_at)
    if last_synced_at is None:
        return Health("new", "Not synced yet", "info")
    return Health("ok", "Last synced", "ok", at=last_synced_at)


def _resumes(at: datetime, now: datetime) -> str:
    """When a limit lifts, in UTC: "14:00 UTC" today, else "Tue 14:00 UTC"."""
    moment, today = at.astimezone(UTC), now.astimezone(UTC)
    if moment.date() == today.date():
        return f"{moment:%H:%M} UTC"
    return f"{moment:%a %H:%M} UTC"


def totals(rows: Iterable[ClientOverview]) -> tuple[CurrencyFigures, ...]:
    """The rows' receivables added up per currency (one line per currency, by code; never across currencies)."""
    by_currency: dict[str, list[CurrencyFigures]] = defaultdict(list)
    for row in rows:
        for figures in row.money:
            by_currency[figures.currency].append(figures)
    result = []
    for currency, lines in sorted(by_currency.items()):
        result.append(
            CurrencyFigures(
                currency=currency,
                receivables=Money.of(sum((line.receivables.amount for line in lines), Decimal(0)), currency),
                overdue=Money.of(sum((line.overdue.amount for line in lines), Decimal(0)), currency),
                buckets=tuple(
                    Money.of(sum((line.buckets[index].amount for line in lines), Decimal(0)), currency)
                    for index in range(len(BUCKETS))
                ),
                invoices=sum(line.invoices for line in lines),
                overdue_invoices=sum(line.overdue_invoices for line in lines),
                clients=len(lines),
            )
        )
    return tuple(result)


def currencies(rows: Iterable[ClientOverview]) -> tuple[str, ...]:
    """Every currency the rows have something open in, by code (the currency filter's choices)."""
    return tuple(sorted({figures.currency for row in rows for figures in row.money}))


def arrange(rows: Sequence[ClientOverview], query: OverviewQuery) -> list[ClientOverview]:
    """The rows `query` asks for, in its order. Money sorts by the amount in the currency filtered on, else in
    each client's first currency (its DSO currency); clients with nothing open come last either way."""
    found = list(rows)
    needle = query.search.strip().casefold()
    if needle:
        found = [row for row in found if needle in row.name.casefold()]
    if query.health in HEALTH_FILTERS:
        states = HEALTH_FILTERS[query.health][1]
        found = [row for row in found if row.health.state in states]
    if query.currency:
        found = [row for row in found if row.figures_in(query.currency) is not None]
    found.sort(key=lambda row: (row.name.casefold(), row.connection_id))  # ties keep the name order
    sort = query.sort if query.sort in SORTS else "name"
    if sort == "name":
        return list(reversed(found)) if query.descending else found

    def money_of(row: ClientOverview, pick: Callable[[CurrencyFigures], Money]) -> Decimal | None:
        figures = row.figures_in(query.currency) if query.currency else (row.money[0] if row.money else None)
        return pick(figures).amount if figures is not None else None

    keys: dict[str, Callable[[ClientOverview], Any]] = {
        "receivables": lambda row: money_of(row, lambda f: f.receivables),
        "overdue": lambda row: money_of(row, lambda f: f.overdue),
        "dso": lambda row: row.dso.days,
        "next": lambda row: row.next_days,
        "exceptions": lambda row: row.exceptions.total,
        "health": lambda row: _HEALTH_RANK.get(row.health.state, 9),
    }
    key = keys[sort]
    present = [row for row in found if key(row) is not None]
    missing = [row for row in found if key(row) is None]
    present.sort(key=key, reverse=query.descending)
    return present + missing

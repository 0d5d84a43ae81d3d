"""The inbox: everything that waits for a person, grouped, with counts (the web's Inbox screen and its nav count).

Groups, in the order shown (`GROUPS`); each item says what it is, why it waits and what to do, in words:

- `reviews`: clients newly connected whose first plan waits for a person (`Connection.chasing == "review"`);
  one item per client (approving the whole plan starts chasing it);
- `approvals`: actions awaiting approval (approval mode, or a review's first plan), holds aside (they only inform);
- `uncertain`: emails whose delivery is unknown (the mail server may have taken them): mark sent or send again;
- `failed`: actions that failed, with the reason: retry (same key, so the ledger never gets a write twice);
- `reconnect`: clients whose ledger no longer accepts Nudge (`needs_reauth`) or that are disconnected;
- `unreadable`: records the sync could not read (activity `sync.quarantined`), the latest per record, counted
  from the client's last full reconcile on (a record still wrong is quarantined again by every full reconcile,
  so one older than the last full reconcile was fixed, closed or deleted since);
- `calls` and `handoffs`: open call tasks and escalations (hand-overs), completed with a note.

- `requests`: what customers asked or told on their page (issue 17, connector.receivables.customer_page): a
  payment plan to approve (as asked or edited) or decline, a dispute to look into, a payment they say they made
  (listed while the invoice is still open in the ledger: it goes on its own once the payment is synced).

- `replies`: customers' replies written by a person (issue 17, connector.replies): the trimmed text, who wrote,
  about which customer; marked handled by a person. Automatic replies (out of office) never open an item.

Every query is scoped to the organization and, for a
client-limited member, to `connection_ids`; `open_count` is the same definitions summed in one statement.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.sql.elements import SQLCoreOperations

from connector.domain.actions import Action, ActionKind
from connector.domain.model import ActionState, ConnectionStatus
from connector.domain.money import Money
from connector.errors import ChangeRefused, UnknownRecord
from connector.mail.rendering import DEFAULT_LOCALE, format_money
from connector.outbox.planning import Chasing
from connector.receivables import customer_page as requests
from connector.receivables.common import visible, visible_connections
from connector.receivables.views import decoded, invoice_ids_of
from connector.replies.intake import HUMAN as HUMAN_REPLY
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import (
    Activity,
    Connection,
    Customer,
    CustomerRequest,
    InboundMessage,
    Invoice,
    SyncCursor,
    Task,
    User,
)
from connector.sync.invoices import INVOICE_ENTITY
from connector.tasks.service import CALL, HANDOFF, OPEN

REVIEWS = "reviews"
APPROVALS = "approvals"
UNCERTAIN = "uncertain"
FAILED = "failed"
RECONNECT = "reconnect"
UNREADABLE = "unreadable"
CALLS = "calls"
HANDOFFS = "handoffs"
REPLIES = "replies"
REQUESTS = "requests"
GROUPS = (REVIEWS, REQUESTS, REPLIES, APPROVALS, UNCERTAIN, FAILED, RECONNECT, UNREADABLE, CALLS, HANDOFFS)
TITLES = {
    REVIEWS: "New clients to review",
    REQUESTS: "Customer requests",
    REPLIES: "Customer replies",
    APPROVALS: "Waiting for your approval",
    UNCERTAIN: "Emails that may not have been sent",
    FAILED: "Failed actions",
    RECONNECT: "Reconnect needed",
    UNREADABLE: "Records Nudge could not read",
    CALLS: "Calls to make",
    HANDOFFS: "Debts to take over",
}
INTROS = {
    REQUESTS: (
        "Customers used the page their reminders link to: approve, change or decline a payment plan; look into a "
        "dispute or a payment they say they made, then mark it handled."
    ),
    REPLIES: (
        "Customers answered a reminder. Automatic reminders to each of them are paused for a few days: "
        "read the reply, act on it, then mark it handled."
    ),
    REVIEWS: "A newly connected client's first plan waits for a person before anything goes out.",
    APPROVALS: (
        "Held for your approval (approval mode, or a new client's first plan). "
        "Tick what may go out, then approve or skip it."
    ),
    UNCERTAIN: "The mail server may or may not have taken these emails: Nudge never sends them again on its own.",
    FAILED: "These stopped with an error and wait for you: fix the cause, then retry.",
    RECONNECT: "Nothing is synced, sent or written for these clients until someone reconnects them.",
    UNREADABLE: (
        "Nudge skips a record it cannot read and chases everything else. "
        "Correct the field in the ledger: the next sync reads it again."
    ),
    CALLS: "Phone the customer, then complete the task with what was said: it goes into the invoice's timeline.",
    HANDOFFS: (
        "The cadence has run its course and no more reminders go out. "
        "Hand the debt over (or deal with it yourself), then complete the task with a note."
    ),
}
GROUP_LIMIT = 100  # items listed per group (the count says how many there are in all)
QUARANTINED = "sync.quarantined"
_NEEDS_RECONNECT = (ConnectionStatus.NEEDS_REAUTH.value, ConnectionStatus.DISCONNECTED.value)
_KIND_WORDS = {
    ActionKind.REMIND.value: ("reminder", "reminders"),
    ActionKind.NOTE.value: ("ledger note", "ledger notes"),
    ActionKind.LATE_FEE.value: ("late fee", "late fees"),
    ActionKind.FEE_REVERSAL.value: ("fee reversal", "fee reversals"),
    ActionKind.DISCOUNT_OFFER.value: ("discount offer", "discount offers"),
    ActionKind.DISCOUNT_CREDIT.value: ("discount credit", "discount credits"),
    ActionKind.CALL_TASK.value: ("call task", "call tasks"),
    ActionKind.ESCALATE.value: ("hand-over", "hand-overs"),
    ActionKind.PLAN_BROKEN.value: ("broken-plan notice", "broken-plan notices"),
}
_LEDGER_WRITES = (
    ActionKind.NOTE.value,
    ActionKind.LATE_FEE.value,
    ActionKind.FEE_REVERSAL.value,
    ActionKind.DISCOUNT_CREDIT.value,
)

Scope = Callable[[SQLCoreOperations[int]], ColumnElement[bool]]


@dataclass(frozen=True)
class InvoiceRef:
    """An invoice an item is about: the ledger's id, its number, and Nudge's row id (None: not synced)."""

    external_id: str
    number: str
    id: int | None = None


@dataclass(frozen=True)
class InboxItem:
    """One thing waiting for a person: what it is, why it waits, what to do, and what it is about.

    `id` is what the item's buttons act on: an action id (reviews: the connection id; reconnect: the
    connection id; unreadable: the activity id; calls and handoffs: the task id).
    """

    group: str
    id: int
    connection_id: int
    client: str
    headline: str  # what, in one line ("Email to Acme Ltd about INV-1001 may not have been sent")
    reason: str = ""  # why it waits, in words (an error, a field's problem)
    advice: str = ""  # what to do next
    kind: str = ""  # the action's or task's kind, the connection's status, the unreadable record's entity
    when: datetime | None = None  # when it happened (handed over, failed, read) or is scheduled
    due_on: date | None = None  # a task's due date; an action's local date
    customer_name: str = ""
    customer_external_id: str = ""
    customer_id: int | None = None  # Nudge's customer row id (the customer page), None when not synced
    invoices: tuple[InvoiceRef, ...] = ()
    amount: Money | None = None
    field: str = ""  # an unreadable record's field
    record_id: str = ""  # an unreadable record's id in the ledger
    assignee: str = ""  # a task's assignee (email)
    detail: str = ""  # a task's own words; an action's rule
    waiting: int = 0  # a review: how many actions wait
    waiting_words: str = ""  # a review: "12 reminders, 3 late fees"
    provider: str = ""  # the client's provider key
    note_to_ledger: bool = False  # a task whose note is also written to the ledger
    installments: tuple[tuple[str, str], ...] = ()  # a plan request: (due date ISO, amount) as the customer asked

    @property
    def sentence(self) -> str:
        """The item in one paragraph: headline, reason, advice."""
        first = f"{self.headline}: {self.reason}" if self.reason else self.headline
        return " ".join(part for part in (_end(first), self.advice) if part)


@dataclass(frozen=True)
class InboxGroup:
    """One kind of work: its items (at most GROUP_LIMIT) and how many there are in all."""

    key: str
    count: int
    items: tuple[InboxItem, ...]

    @property
    def title(self) -> str:
        """The group's heading."""
        return TITLES[self.key]

    @property
    def intro(self) -> str:
        """What the group is and what people do about it, in a sentence or two."""
        return INTROS[self.key]

    @property
    def more(self) -> int:
        """How many are not listed."""
        return max(self.count - len(self.items), 0)


@dataclass(frozen=True)
class Inbox:
    """The member's inbox: every group (empty ones too, in GROUPS order) and the clients it can be filtered by."""

    groups: tuple[InboxGroup, ...]
    clients: tuple[tuple[int, str], ...]  # (connection id, name) of every client the member sees
    connection_id: int | None = None  # the client it is filtered to

    @property
    def total(self) -> int:
        """Open items in all groups."""
        return sum(group.count for group in self.groups)

    def group(self, key: str) -> InboxGroup:
        """The group `key`."""
        return next(group for group in self.groups if group.key == key)


@dataclass
class _Lookups:
    """Invoice and customer rows the items name, fetched in one statement each."""

    invoices: dict[tuple[int, str], tuple[int, str]] = field(default_factory=dict)  # → (row id, number)
    customers: dict[tuple[int, str], tuple[int, str]] = field(default_factory=dict)  # → (row id, name)


def inbox(
    store: Store,
    org_id: int,
    *,
    connection_ids: Collection[int] | None = None,
    connection_id: int | None = None,
    locale: str = DEFAULT_LOCALE,
    provider_names: Mapping[str, str] | None = None,
    limit: int = GROUP_LIMIT,
) -> Inbox:
    """The inbox of a member who sees `connection_ids` (None: every client), narrowed to one client if asked.

    UnknownRecord when `connection_id` is not a client the member sees. `provider_names` maps provider keys
    to display names ("QuickBooks Online"); `locale` formats amounts.
    """
    names = dict(provider_names or {})
    with store.unit_of_work() as uow:
        everyone = visible_connections(uow, org_id, connection_ids)
        if connection_id is not None:
            chosen = visible_connections(uow, org_id, connection_ids, only=connection_id)
        else:
            chosen = everyone
        clients = tuple((c.id, c.name or c.tenant_id) for c in everyone)
        if not chosen:
            return Inbox(tuple(InboxGroup(key, 0, ()) for key in GROUPS), clients, connection_id)
        by_id = {c.id: c for c in chosen}
        ids = sorted(by_id)

        def scope(column: SQLCoreOperations[int]) -> ColumnElement[bool]:
            return column.in_(ids)

        counts = dict(zip(GROUPS, uow.session.execute(select(*_counts(org_id, scope))).one(), strict=True))
        reviews = [c for c in chosen if c.chasing == Chasing.REVIEW.value]
        reconnect = [c for c in chosen if c.status in _NEEDS_RECONNECT]
        waiting_rows = _actions(uow, scope, ActionState.AWAITING_APPROVAL, order_by_schedule=True, limit=limit)
        uncertain_rows = _actions(uow, scope, ActionState.UNCERTAIN, order_by_schedule=False, limit=limit)
        failed_rows = _actions(uow, scope, ActionState.FAILED, order_by_schedule=False, limit=limit)
        tasks = {
            kind: list(
                uow.session.execute(
                    select(Task, User.email)
                    .outerjoin(User, User.id == Task.assignee_user_id)
                    .where(
                        Task.organization_id == org_id, Task.state == OPEN, Task.kind == kind, scope(Task.connection_id)
                    )
                    .order_by(Task.due_on, Task.id)
                    .limit(limit)
                ).all()
            )
            for kind in (CALL, HANDOFF)
        }
        unreadable = list(
            uow.session.scalars(
                select(Activity)
                .where(Activity.id.in_(_open_quarantine_ids(org_id, scope)))
                .order_by(Activity.at.desc(), Activity.id.desc())
                .limit(limit)
            )
        )
        replies = list(
            uow.session.scalars(
                select(InboundMessage)
                .where(*_open_replies(org_id, scope))
                .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
                .limit(limit)
            )
        )
        customer_requests = list(
            uow.session.scalars(
                select(CustomerRequest)
                .where(*_open_requests(org_id, scope))
                .order_by(CustomerRequest.created_at, CustomerRequest.id)
                .limit(limit)
            )
        )
        waiting_kinds = _waiting_kinds(uow, [c.id for c in reviews])
        decoded_rows = [(row, decoded(row)) for row in (*waiting_rows, *uncertain_rows, *failed_rows)]
        wanted_invoices = {(row.connection_id, i) for row, action in decoded_rows for i in invoice_ids_of(row, action)}
        wanted_invoices |= {
            (t.connection_id, str(i)) for rows in tasks.values() for t, _ in rows for i in t.invoice_external_ids or ()
        }
        wanted_invoices |= {(a.connection_id or 0, a.subject) for a in unreadable}
        wanted_customers = {(row.connection_id, row.customer_external_id) for row, _ in decoded_rows}
        wanted_customers |= {(r.connection_id or 0, r.customer_external_id) for r in replies}
        wanted_customers |= {(r.connection_id, r.customer_external_id) for r in customer_requests}
        wanted_invoices |= {(r.connection_id, r.invoice_external_id) for r in customer_requests}
        wanted_customers |= {(t.connection_id, t.customer_external_id) for rows in tasks.values() for t, _ in rows}
        lookups = _lookups(uow, wanted_invoices, wanted_customers)

        groups = {
            REVIEWS: [_review_item(c, waiting_kinds.get(c.id, {})) for c in reviews[:limit]],
            REQUESTS: [_request_item(r, by_id, lookups, locale) for r in customer_requests],
            REPLIES: [_reply_item(r, by_id, lookups) for r in replies if r.connection_id in by_id],
            APPROVALS: [
                _action_item(APPROVALS, row, action, by_id, lookups, locale)
                for row, action in decoded_rows[: len(waiting_rows)]
            ],
            UNCERTAIN: [
                _action_item(UNCERTAIN, row, action, by_id, lookups, locale)
                for row, action in decoded_rows[len(waiting_rows) : len(waiting_rows) + len(uncertain_rows)]
            ],
            FAILED: [
                _action_item(FAILED, row, action, by_id, lookups, locale)
                for row, action in decoded_rows[len(waiting_rows) + len(uncertain_rows) :]
            ],
            RECONNECT: [
                _reconnect_item(c, names) for c in sorted(reconnect, key=lambda c: (c.name.lower(), c.id))[:limit]
            ],
            UNREADABLE: [_unreadable_item(a, by_id, lookups, names) for a in unreadable],
            CALLS: [_task_item(CALLS, t, email, by_id, lookups) for t, email in tasks[CALL]],
            HANDOFFS: [_task_item(HANDOFFS, t, email, by_id, lookups) for t, email in tasks[HANDOFF]],
        }
    return Inbox(
        tuple(InboxGroup(key, int(counts[key] or 0), tuple(groups[key])) for key in GROUPS),
        clients,
        connection_id,
    )


def open_count(uow: UnitOfWork, org_id: int, connection_ids: Collection[int] | None = None) -> int:
    """How many items the member's inbox holds in all (the navigation's count): one statement."""

    def scope(column: SQLCoreOperations[int]) -> ColumnElement[bool]:
        return visible(column, org_id, connection_ids)

    parts = [part.scalar_subquery() for part in _count_queries(org_id, scope)]
    total = parts[0]
    for part in parts[1:]:
        total = total + part  # type: ignore[assignment]
    return int(uow.session.scalar(select(total)) or 0)


# -- counting ----------------------------------------------------------------------------------------------


def _count_queries(org_id: int, scope: Scope) -> list[Select[int]]:
    """One count per group, in GROUPS order (the definitions the listing and the navigation share)."""
    connections = select(func.count(Connection.id)).where(Connection.organization_id == org_id, scope(Connection.id))

    def actions(state: ActionState) -> Select[int]:
        query = select(func.count(ActionRow.id)).where(ActionRow.state == state.value, scope(ActionRow.connection_id))
        return query.where(ActionRow.kind != ActionKind.HOLD.value) if state is ActionState.AWAITING_APPROVAL else query

    def tasks(kind: str) -> Select[int]:
        return select(func.count(Task.id)).where(
            Task.organization_id == org_id, Task.state == OPEN, Task.kind == kind, scope(Task.connection_id)
        )

    quarantined = _open_quarantine_ids(org_id, scope).subquery()
    return [
        connections.where(Connection.chasing == Chasing.REVIEW.value),
        select(func.count(CustomerRequest.id)).where(*_open_requests(org_id, scope)),
        select(func.count(InboundMessage.id)).where(*_open_replies(org_id, scope)),
        actions(ActionState.AWAITING_APPROVAL),
        actions(ActionState.UNCERTAIN),
        actions(ActionState.FAILED),
        connections.where(Connection.status.in_(_NEEDS_RECONNECT)),
        select(func.count()).select_from(quarantined),
        tasks(CALL),
        tasks(HANDOFF),
    ]


def _open_replies(org_id: int, scope: Scope) -> tuple[ColumnElement[bool], ...]:
    """A person's reply nobody has marked handled yet (connector.replies.intake stores them)."""
    return (
        InboundMessage.organization_id == org_id,
        InboundMessage.kind == HUMAN_REPLY,
        InboundMessage.handled.is_(False),
        scope(InboundMessage.connection_id),  # type: ignore[arg-type]
    )


def _open_requests(org_id: int, scope: Scope) -> tuple[ColumnElement[bool], ...]:
    """A customer's request nobody has decided or handled yet; a payment the customer reported only while the
    invoice is still open in the ledger (once the payment is synced there is nothing left to look into)."""
    still_open = (
        select(Invoice.id)
        .where(
            Invoice.connection_id == CustomerRequest.connection_id,
            Invoice.external_id == CustomerRequest.invoice_external_id,
            Invoice.status == "open",
            Invoice.balance > 0,
        )
        .exists()
    )
    return (
        CustomerRequest.organization_id == org_id,
        CustomerRequest.state == requests.OPEN,
        scope(CustomerRequest.connection_id),
        or_(CustomerRequest.kind != requests.PAID, still_open),
    )


def _counts(org_id: int, scope: Scope) -> list[ColumnElement[int]]:
    return [
        query.scalar_subquery().label(key) for key, query in zip(GROUPS, _count_queries(org_id, scope), strict=True)
    ]


def _open_quarantine_ids(org_id: int, scope: Scope) -> Select[int]:
    """The latest `sync.quarantined` activity per (client, record) since the client's last full reconcile."""
    return (
        select(func.max(Activity.id))
        .outerjoin(
            SyncCursor,
            and_(SyncCursor.connection_id == Activity.connection_id, SyncCursor.entity == INVOICE_ENTITY),
        )
        .where(
            Activity.organization_id == org_id,
            Activity.kind == QUARANTINED,
            Activity.connection_id.is_not(None),
            scope(Activity.connection_id),  # type: ignore[arg-type]
            or_(SyncCursor.full_reconciled_at.is_(None), Activity.at >= SyncCursor.full_reconciled_at),
        )
        .group_by(Activity.connection_id, Activity.subject)
    )


# -- loading -----------------------------------------------------------------------------------------------


def _actions(
    uow: UnitOfWork, scope: Scope, state: ActionState, *, order_by_schedule: bool, limit: int
) -> list[ActionRow]:
    query = select(ActionRow).where(ActionRow.state == state.value, scope(ActionRow.connection_id))
    if state is ActionState.AWAITING_APPROVAL:
        query = query.where(ActionRow.kind != ActionKind.HOLD.value)
    order = (
        (ActionRow.scheduled_at, ActionRow.id)
        if order_by_schedule
        else (ActionRow.updated_at.desc(), ActionRow.id.desc())
    )
    return list(uow.session.scalars(query.order_by(*order).limit(limit)))


def _waiting_kinds(uow: UnitOfWork, connection_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per client in review: how many actions of each kind wait for approval."""
    if not connection_ids:
        return {}
    found: dict[int, dict[str, int]] = {}
    rows = uow.session.execute(
        select(ActionRow.connection_id, ActionRow.kind, func.count(ActionRow.id))
        .where(
            ActionRow.connection_id.in_(connection_ids),
            ActionRow.state == ActionState.AWAITING_APPROVAL.value,
            ActionRow.kind != ActionKind.HOLD.value,
        )
        .group_by(ActionRow.connection_id, ActionRow.kind)
    )
    for connection_id, kind, count in rows:
        found.setdefault(connection_id, {})[kind] = int(count)
    return found


def _lookups(uow: UnitOfWork, invoices: set[tuple[int, str]], customers: set[tuple[int, str]]) -> _Lookups:
    found = _Lookups()
    invoices = {pair for pair in invoices if pair[1]}
    customers = {pair for pair in customers if pair[1]}
    if invoices:
        rows = uow.session.execute(
            select(Invoice.id, Invoice.connection_id, Invoice.external_id, Invoice.number).where(
                Invoice.connection_id.in_(sorted({c for c, _ in invoices})),
                Invoice.external_id.in_(sorted({e for _, e in invoices})),
            )
        )
        found.invoices = {(c, e): (i, n) for i, c, e, n in rows if (c, e) in invoices}
    if customers:
        rows = uow.session.execute(
            select(Customer.id, Customer.connection_id, Customer.external_id, Customer.name).where(
                Customer.connection_id.in_(sorted({c for c, _ in customers})),
                Customer.external_id.in_(sorted({e for _, e in customers})),
            )
        )
        found.customers = {(c, e): (i, n) for i, c, e, n in rows if (c, e) in customers}
    return found


# -- shaping -----------------------------------------------------------------------------------------------


def _review_item(connection: Connection, kinds: Mapping[str, int]) -> InboxItem:
    waiting = sum(kinds.values())
    words = _counted(kinds)
    if waiting:
        reason = f"{_count(waiting, 'action')} of its first plan wait ({words})"
        advice = (
            "Look them over under “Waiting for your approval”, then approve the whole plan to start chasing, "
            "or decide one by one: the review ends when nothing is left."
        )
    else:
        reason = "nothing of its first plan is due yet"
        advice = "Approve the plan to start chasing: what falls due later goes out on its own."
    return InboxItem(
        group=REVIEWS,
        id=connection.id,
        connection_id=connection.id,
        client=_client(connection),
        headline=f"{_client(connection)} is newly connected: nothing goes out until you approve its first plan",
        reason=reason,
        advice=advice,
        kind=connection.chasing,
        when=connection.created_at,
        waiting=waiting,
        waiting_words=words,
        provider=connection.provider,
    )


def _action_item(
    group: str,
    row: ActionRow,
    payload: Action | None,
    connections: Mapping[int, Connection],
    lookups: _Lookups,
    locale: str,
) -> InboxItem:
    connection = connections[row.connection_id]
    invoices = _invoices(row.connection_id, invoice_ids_of(row, payload), lookups)
    customer_row = lookups.customers.get((row.connection_id, row.customer_external_id))
    customer = (payload.customer_name if payload else "") or (customer_row[1] if customer_row else "")
    customer = customer or row.customer_external_id or "the customer"
    amount = payload.amount if payload is not None else None
    what = _what(row.kind, customer, invoices, amount, locale)
    numbers = _numbers(invoices)
    if group == UNCERTAIN:
        about = f" about {numbers}" if numbers else ""
        headline = f"Email to {customer}{about} may not have been sent"
        reason = _reason(row.error) or "Nudge stopped while handing it to the mail server"
        advice = "Check your Sent folder, then mark it sent or send it again."
    elif group == FAILED:
        headline = f"{_capital(what)} failed"
        reason = _reason(row.error) or "the attempt was refused"
        if row.kind in _LEDGER_WRITES:
            advice = (
                "Fix the cause in the ledger, then retry: Nudge uses the same key, so the ledger never gets it twice."
            )
        elif row.kind == ActionKind.REMIND.value:
            advice = "Fix the cause (for example the customer's email address), then retry."
        else:
            advice = "Fix the cause, then retry."
    else:
        headline = _capital(what)
        reason = ""
        local = payload.local_date if payload is not None else None
        advice = f"Planned for {local.isoformat()}; approve it or skip it." if local else "Approve it or skip it."
    return InboxItem(
        group=group,
        id=row.id,
        connection_id=row.connection_id,
        client=_client(connection),
        headline=headline,
        reason=reason,
        advice=advice,
        kind=row.kind,
        when=row.updated_at if group != APPROVALS else row.scheduled_at,
        due_on=payload.local_date if payload is not None else None,
        customer_name=customer,
        customer_external_id=row.customer_external_id,
        customer_id=customer_row[0] if customer_row else None,
        invoices=invoices,
        amount=amount,
        detail=payload.rule if payload is not None else "",
        provider=connection.provider,
    )


def _reconnect_item(connection: Connection, provider_names: Mapping[str, str]) -> InboxItem:
    provider = provider_names.get(connection.provider, connection.provider.title())
    client = _client(connection)
    if connection.status == ConnectionStatus.DISCONNECTED.value:
        headline = f"{client} is disconnected from {provider}"
        reason = "nothing is synced, sent or written to its ledger"
    else:
        headline = f"{client}: reconnect needed"
        reason = f"{provider} no longer accepts Nudge's access, so nothing is synced, sent or written to its ledger"
    error = _reason(connection.last_error)
    return InboxItem(
        group=RECONNECT,
        id=connection.id,
        connection_id=connection.id,
        client=client,
        headline=headline,
        reason=reason,
        advice=f"Reconnect it: you will sign in to {provider} and allow Nudge again.",
        kind=connection.status,
        when=connection.updated_at,
        detail=f"Last error: {error}." if error else "",
        provider=connection.provider,
    )


def _unreadable_item(
    activity: Activity, connections: Mapping[int, Connection], lookups: _Lookups, provider_names: Mapping[str, str]
) -> InboxItem:
    connection = connections[activity.connection_id or 0]
    provider = provider_names.get(connection.provider, connection.provider.title())
    detail = activity.detail or {}
    raw_field = str(detail.get("field") or "")
    entity, _, rest = raw_field.partition(".")
    if rest and entity[:1].isupper():  # QuickBooks names other records' fields "Customer.DisplayName", "Payment.…"
        what, field_name = _entity_words(entity), rest
    else:
        what, field_name = "invoice", raw_field
    found = lookups.invoices.get((connection.id, activity.subject)) if what == "invoice" else None
    invoices = (InvoiceRef(activity.subject, found[1] or activity.subject, found[0]),) if found else ()
    label = f"{what} {invoices[0].number}" if invoices else f"{what} {activity.subject} (the ledger's id)"
    reason = _reason(str(detail.get("reason") or "")) or "its value could not be read"
    if field_name:
        reason += f" (field {field_name})"
    return InboxItem(
        group=UNREADABLE,
        id=activity.id,
        connection_id=connection.id,
        client=_client(connection),
        headline=f"{_capital(label)} of {_client(connection)} could not be read from {provider}",
        reason=reason,
        advice=(
            f"Correct it in {provider}; the next sync reads it again. Until then Nudge does not chase it."
            if what == "invoice"
            else f"Correct it in {provider}; the next sync reads it again."
        ),
        kind=what,
        when=activity.at,
        invoices=invoices,
        field=field_name,
        record_id=activity.subject,
        provider=connection.provider,
    )


def _reply_item(reply: InboundMessage, connections: Mapping[int, Connection], lookups: _Lookups) -> InboxItem:
    connection_id = reply.connection_id or 0
    customer_row = lookups.customers.get((connection_id, reply.customer_external_id))
    customer = (customer_row[1] if customer_row else "") or reply.customer_external_id
    sender = reply.from_name or reply.from_address or "someone"
    paused = f"reminders to them are paused until {reply.paused_until.isoformat()}" if reply.paused_until else ""
    return InboxItem(
        group=REPLIES,
        id=reply.id,
        connection_id=connection_id,
        client=_client(connections[connection_id]),
        headline=f"{customer} replied" + (f": “{reply.subject}”" if reply.subject else ""),
        reason=paused,
        advice="Read what they wrote and act on it, then mark the reply handled.",
        kind="reply",
        when=reply.received_at,
        customer_name=customer,
        customer_external_id=reply.customer_external_id,
        customer_id=customer_row[0] if customer_row else None,
        detail=reply.text,
        assignee=sender,  # who wrote it (shown as "from")
        provider=connections[connection_id].provider,
    )


_REQUEST_HEADLINES = {
    requests.PLAN: "{customer} asks for a payment plan on {number}",
    requests.DISPUTE: "{customer} disputes {number}",
    requests.PAID: "{customer} says {number} is paid",
}
_REQUEST_ADVICE = {
    requests.PLAN: "Approve the installments as asked or change them first, or decline: the customer is told by email.",
    requests.DISPUTE: (
        "No reminders and no fees go out for this invoice while it is in dispute. Sort it out with the customer, "
        "end the dispute on the invoice's page when it is settled, then mark this handled."
    ),
    requests.PAID: (
        "Reminders about it are paused meanwhile. This goes on its own once the payment reaches the ledger; if it "
        "does not, check with the customer, then mark this handled."
    ),
}


def _request_item(
    row: CustomerRequest, connections: Mapping[int, Connection], lookups: _Lookups, locale: str
) -> InboxItem:
    connection = connections[row.connection_id]
    customer_row = lookups.customers.get((row.connection_id, row.customer_external_id))
    customer = (customer_row[1] if customer_row else "") or row.customer_external_id
    invoices = _invoices(row.connection_id, [row.invoice_external_id], lookups) if row.invoice_external_id else ()
    detail = dict(row.detail or {})
    currency = str(detail.get("currency") or "")
    installments = tuple(
        (str(item.get("due_date", "")), str(item.get("amount", "")))
        for item in detail.get("installments") or []
        if isinstance(item, Mapping)
    )
    if row.kind == requests.DISPUTE:
        said = str(detail.get("reason") or "")
    elif row.kind == requests.PAID:
        said = f"Paid on {detail.get('paid_on', '?')}, reference {detail.get('reference', '')}"
    else:
        said = "; ".join(
            f"{day}: {format_money(Money.of(amount, currency), locale) if currency else amount}"
            for day, amount in installments
        )
    reason = (
        f"reminders hold until {row.hold_until.isoformat()}" if row.kind == requests.PAID and row.hold_until else ""
    )
    return InboxItem(
        group=REQUESTS,
        id=row.id,
        connection_id=row.connection_id,
        client=_client(connection),
        headline=_REQUEST_HEADLINES.get(row.kind, "{customer}: {number}").format(
            customer=customer, number=_numbers(invoices) or "their invoices"
        ),
        reason=reason,
        advice=_REQUEST_ADVICE.get(row.kind, ""),
        kind=row.kind,
        when=row.created_at,
        customer_name=customer,
        customer_external_id=row.customer_external_id,
        customer_id=customer_row[0] if customer_row else None,
        invoices=invoices,
        detail=said,
        provider=connection.provider,
        installments=installments,
    )


def mark_reply_handled(
    store: Store, org_id: int, reply_id: int, actor: str, now: datetime, *, connection_ids: Collection[int] | None
) -> InboundMessage:
    """Close a reply's inbox item. UnknownRecord when it is not a reply the member sees; ChangeRefused when it
    was handled already."""
    with store.unit_of_work() as uow:
        row = uow.session.scalars(
            select(InboundMessage).where(
                InboundMessage.id == reply_id,
                InboundMessage.organization_id == org_id,
                InboundMessage.kind == HUMAN_REPLY,
                visible(InboundMessage.connection_id, org_id, connection_ids),
            )
        ).first()
        if row is None:
            raise UnknownRecord(f"no customer reply with id {reply_id}", "reply_id")
        if row.handled:
            raise ChangeRefused(f"{actor_or(row.handled_by)} marked this reply handled already")
        row.handled, row.handled_at, row.handled_by = True, now, actor[:200]
        uow.commit()
        uow.session.expunge(row)
        return row


def actor_or(actor: str) -> str:
    """Who did it, or "someone"."""
    return actor or "someone"


def _task_item(
    group: str, task: Task, email: str | None, connections: Mapping[int, Connection], lookups: _Lookups
) -> InboxItem:
    connection = connections[task.connection_id]
    invoices = _invoices(task.connection_id, tuple(str(i) for i in task.invoice_external_ids or ()), lookups)
    customer_row = lookups.customers.get((task.connection_id, task.customer_external_id))
    customer = task.customer_name or (customer_row[1] if customer_row else "") or task.customer_external_id
    numbers = _numbers(invoices)
    if task.kind == HANDOFF:
        headline = f"Take over {customer}'s debt" + (f": {numbers}" if numbers else "")
        advice = "Hand it to collections or deal with it yourself; no more reminders go out. Complete it with a note."
    else:
        headline = f"Call {customer}" + (f" about {numbers}" if numbers else "")
        advice = "Phone the customer, then complete the task with what was said."
    if task.record_in_ledger and invoices:
        advice += " The note is also written to the ledger."
    return InboxItem(
        group=group,
        id=task.id,
        connection_id=task.connection_id,
        client=_client(connection),
        headline=headline,
        advice=advice,
        kind=task.kind,
        when=task.created_at,
        due_on=task.due_on,
        customer_name=customer,
        customer_external_id=task.customer_external_id,
        customer_id=customer_row[0] if customer_row else None,
        invoices=invoices,
        assignee=email or "",
        detail=task.detail,
        provider=connection.provider,
        note_to_ledger=bool(task.record_in_ledger and invoices),
    )


def _what(kind: str, customer: str, invoices: Sequence[InvoiceRef], amount: Money | None, locale: str) -> str:
    """An action in words: "reminder email to Acme Ltd about INV-1001", "late fee of $25.00 on INV-1001"."""
    numbers = _numbers(invoices) or "its invoices"
    money = f" of {format_money(amount, locale)}" if amount is not None else ""
    if kind == ActionKind.REMIND.value:
        return f"reminder email to {customer} about {numbers}"
    if kind == ActionKind.NOTE.value:
        return f"note in the ledger on {numbers} ({customer})"
    if kind == ActionKind.LATE_FEE.value:
        return f"late fee{money} on {numbers} ({customer})"
    if kind == ActionKind.FEE_REVERSAL.value:
        return f"reversal of the late fee{money} on {numbers} ({customer})"
    if kind == ActionKind.DISCOUNT_OFFER.value:
        return f"early-payment discount offer to {customer} about {numbers}"
    if kind == ActionKind.DISCOUNT_CREDIT.value:
        return f"discount credit{money} on {numbers} ({customer})"
    if kind == ActionKind.CALL_TASK.value:
        return f"call task: phone {customer} about {numbers}"
    if kind == ActionKind.ESCALATE.value:
        return f"hand-over of {customer}'s debt ({numbers})"
    if kind == ActionKind.PLAN_BROKEN.value:
        return f"broken payment plan notice on {numbers} ({customer})"
    return f"{kind.replace('_', ' ')} on {numbers} ({customer})"


def _invoices(connection_id: int, external_ids: Iterable[str], lookups: _Lookups) -> tuple[InvoiceRef, ...]:
    refs = []
    for external_id in external_ids:
        found = lookups.invoices.get((connection_id, external_id))
        refs.append(InvoiceRef(external_id, (found[1] if found else "") or external_id, found[0] if found else None))
    return tuple(refs)


def _numbers(invoices: Sequence[InvoiceRef]) -> str:
    """ "INV-1", "INV-1 and INV-2", "INV-1, INV-2 and 3 more"."""
    numbers = [ref.number for ref in invoices]
    if len(numbers) <= 1:
        return "".join(numbers)
    if len(numbers) <= 3:
        return ", ".join(numbers[:-1]) + " and " + numbers[-1]
    return f"{', '.join(numbers[:2])} and {len(numbers) - 2} more"


def _counted(kinds: Mapping[str, int]) -> str:
    """ "12 reminders, 3 late fees" in the order of _KIND_WORDS."""
    parts = []
    for kind, (one, many) in _KIND_WORDS.items():
        count = kinds.get(kind, 0)
        if count:
            parts.append(f"{count} {one if count == 1 else many}")
    return ", ".join(parts)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _entity_words(entity: str) -> str:
    words = {"Customer": "customer", "Payment": "payment", "CreditMemo": "credit note", "Invoice": "invoice"}
    return words.get(entity, entity.lower())


def _client(connection: Connection) -> str:
    return connection.name or connection.tenant_id


def _reason(text: str | None) -> str:
    """An error as the end of a sentence: on one line, without its final full stop."""
    return " ".join((text or "").split()).rstrip(".")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _end(text: str) -> str:
    return text if not text or text.endswith((".", "!", "?")) else text + "."

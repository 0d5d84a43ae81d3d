"""Impact preview of a library change (issue 14): before a cadence or policy is saved, what changes over the next
days for every client that uses it: reminders added or removed, late fees added, removed or changed, per client and
in total.

`impact_of_change` builds the proposed library in memory (connector.library.resolve.assemble over the current
entries with the item's body replaced, added or removed: InvalidInput naming the field when the proposal does not
parse or does not fit together), finds the clients that use the item under the current or the proposed library, and
runs the planner forward for each of them twice, with the current and with the proposed library, exactly as
`preview_connection` does (the same states, the same day-by-day `preview`), keeping the actions themselves so the
diff (connector.domain.impact, pure) can name each reminder's step. Nothing is written: the change, when saved,
applies from the next plan.

Who uses an item:
- a cadence: clients whose own cadence it is (by id, legacy name or the organization's default, as
  connector.outbox.client resolves it), or with a customer whose cadence it is;
- a late-fee or discount policy: clients one of whose cadences (their own, their customers') has a step naming it;
- a payment-plan policy: clients with an active payment plan under it.
Deleting a cadence that clients use is refused (InUse, naming them), as the library refuses it; a deleted policy
that a cadence still names makes the proposal invalid. A renamed late-fee or discount policy is renamed in the
cadences' steps too (as the library's rename rewrites them), so a rename alone changes nothing.

This lives in `outbox` (not `library`): it runs the planner, and `library` sits below `outbox` in the layers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select

from connector.domain.actions import Action
from connector.domain.cadence import ConnectionSettings
from connector.domain.fees import ReferenceRates
from connector.domain.impact import ActionsDiff, combine, diff_actions
from connector.domain.model import ConnectionStatus
from connector.domain.policy import PolicySet
from connector.domain.preview import preview
from connector.errors import ChangeRefused, InUse, InvalidInput, UnknownRecord
from connector.library.resolve import (
    CADENCE,
    DISCOUNT,
    LATE_FEE,
    PAYMENT_PLAN,
    LibraryEntry,
    OrgLibrary,
    assemble,
    library_for,
)
from connector.outbox.client import ClientPlanning, client_planning
from connector.outbox.planning import Chasing, client_states, connection_settings
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Connection, Customer
from connector.storage.tables import PaymentPlan as PlanRow

DEFAULT_DAYS = 14
MAX_DAYS = 62
KINDS = (CADENCE, LATE_FEE, DISCOUNT, PAYMENT_PLAN)
NAME_LENGTH = 100
NEW_ITEM_ID = 0  # the proposed new item's id in memory (real ids start at 1)
CREATE, UPDATE, DELETE = "create", "update", "delete"
STEP_FIELDS = {LATE_FEE: "late_fee", DISCOUNT: "discount"}  # the step field naming a policy of that kind


@dataclass(frozen=True)
class ClientImpact:
    """What the change does to one client (connection) over the preview's days."""

    connection_id: int
    name: str
    diff: ActionsDiff


@dataclass(frozen=True)
class Impact:
    """What a proposed library change does over `days` days from `start`: per client that uses the item (unchanged
    ones included) and in total."""

    organization_id: int
    kind: str
    item_id: int | None  # None: a new item
    name: str
    change: str  # create | update | delete
    start: datetime
    days: int
    clients: tuple[ClientImpact, ...]
    total: ActionsDiff


def impact_of_change(
    store: Store,
    organization_id: int,
    starter_rules: PolicySet,
    kind: str,
    item_id: int | None,
    new_body: Mapping[str, Any] | None,
    now: datetime,
    days: int = DEFAULT_DAYS,
    *,
    name: str | None = None,
    rates: ReferenceRates | None = None,
    default_cadence: str = "",
    connection_ids: Collection[int] | None = None,
) -> Impact:
    """The impact of saving `new_body` as item `item_id` of `kind` (None: a new item named `name`; `new_body` None:
    deleting it) over `days` days from `now`; `connection_ids` limits the clients looked at (a client-limited member).
    InvalidInput / UnknownRecord / InUse name the field at fault; nothing is written."""
    _check_request(kind, item_id, new_body, now, days)
    with store.unit_of_work() as uow:
        current = library_for(uow, organization_id, starter_rules)
        proposal = _proposal(organization_id, current, kind, item_id, new_body, name)
        users = _users(uow, organization_id, current, proposal, rates, default_cadence, connection_ids)
        names = {connection.id: connection.name or connection.tenant_id for connection in users}
    if proposal.change == DELETE and kind == CADENCE and users:
        clients = ", ".join(sorted(names.values()))
        raise InUse(f"cadence {proposal.name!r} is used by {clients}: give them another cadence first", field="item_id")
    impacts = []
    for connection_id in sorted(names):
        before = _preview(store, connection_id, starter_rules, now, days, current, rates, default_cadence)
        after = _preview(store, connection_id, starter_rules, now, days, proposal.library, rates, default_cadence)
        impacts.append(ClientImpact(connection_id, names[connection_id], diff_actions(before, after)))
    return Impact(
        organization_id,
        kind,
        item_id,
        proposal.name,
        proposal.change,
        now,
        days,
        tuple(impacts),
        combine(impact.diff for impact in impacts),
    )


def _check_request(
    kind: str, item_id: int | None, new_body: Mapping[str, Any] | None, now: datetime, days: int
) -> None:
    if kind not in KINDS:
        raise InvalidInput(f"expected one of {', '.join(KINDS)} (templates change wording, not what goes out)", "kind")
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"expected a number of days from 1 to {MAX_DAYS}", "days")
    if new_body is None and item_id is None:
        raise InvalidInput("a deletion names the item to delete", "item_id")
    if new_body is not None and not isinstance(new_body, Mapping):
        raise InvalidInput("expected an object: the item's definition in the config file's format", "body")


@dataclass(frozen=True)
class _Proposal:
    library: OrgLibrary
    kind: str
    change: str
    name: str
    old_name: str | None  # the item's current name (None: a new item)


def _proposal(
    organization_id: int,
    current: OrgLibrary,
    kind: str,
    item_id: int | None,
    new_body: Mapping[str, Any] | None,
    name: str | None,
) -> _Proposal:
    """The proposed library: the current entries with the item's body replaced, added or removed."""
    if not current.seeded:
        raise ChangeRefused(
            "the organization's library is not stored yet (it follows the install's starter rules): "
            "save an item of the library first",
            field="item_id",
        )
    entry = current.entry(item_id) if item_id is not None else None
    if item_id is not None and (entry is None or entry.kind != kind):
        raise UnknownRecord(f"there is no {kind} with id {item_id} in this library", field="item_id")
    others = tuple(e for e in current.entries if e.item_id != item_id)
    if new_body is None:
        assert entry is not None  # _check_request: a deletion names its item
        return _Proposal(_assemble(organization_id, others), kind, DELETE, entry.name, entry.name)
    proposed_name = _checked_name(name if name is not None else entry.name if entry is not None else "", kind, others)
    if entry is None:
        added = LibraryEntry(NEW_ITEM_ID, kind, proposed_name, NEW_ITEM_ID, 0, dict(new_body))
        return _Proposal(_assemble(organization_id, (*others, added)), kind, CREATE, proposed_name, None)
    changed = LibraryEntry(
        entry.item_id, kind, proposed_name, entry.version_id, entry.version_number + 1, dict(new_body)
    )
    if proposed_name != entry.name and kind in STEP_FIELDS:  # a renamed policy: its cadences follow, as on save
        others = tuple(_renamed_in(e, STEP_FIELDS[kind], entry.name, proposed_name) for e in others)
    return _Proposal(_assemble(organization_id, (*others, changed)), kind, UPDATE, proposed_name, entry.name)


def _renamed_in(entry: LibraryEntry, field: str, old: str, new: str) -> LibraryEntry:
    """`entry` with its cadence steps that name policy `old` (in `field`) naming `new` instead."""
    steps = entry.body.get("steps") if entry.kind == CADENCE else None
    if not isinstance(steps, list) or not any(isinstance(s, Mapping) and s.get(field) == old for s in steps):
        return entry
    renamed = [{**s, field: new} if isinstance(s, Mapping) and s.get(field) == old else s for s in steps]
    return replace(entry, body={**entry.body, "steps": renamed})


def _checked_name(name: str, kind: str, others: tuple[LibraryEntry, ...]) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise InvalidInput("a new item needs a name", "name")
    if len(name) > NAME_LENGTH:
        raise InvalidInput(f"at most {NAME_LENGTH} characters", "name")
    if any(e.kind == kind and e.name == name for e in others):
        raise InvalidInput(f"another {kind} is already named {name!r}", "name")
    return name


def _assemble(organization_id: int, entries: tuple[LibraryEntry, ...]) -> OrgLibrary:
    try:
        return assemble(organization_id, entries)
    except InvalidInput as exc:
        raise InvalidInput(str(exc), f"body.{exc.field}" if exc.field else "body") from None


def _users(
    uow: UnitOfWork,
    organization_id: int,
    current: OrgLibrary,
    proposal: _Proposal,
    rates: ReferenceRates | None,
    default_cadence: str,
    connection_ids: Collection[int] | None,
) -> list[Connection]:
    """The organization's clients (chased here, not disconnected) that use the item now or would with the change."""
    query = select(Connection).where(
        Connection.organization_id == organization_id,
        Connection.chasing != Chasing.MANAGED_ELSEWHERE.value,
        Connection.status != ConnectionStatus.DISCONNECTED.value,
    )
    found = []
    for connection in uow.session.scalars(query.order_by(Connection.id)):
        if connection_ids is not None and connection.id not in connection_ids:
            continue
        settings = connection_settings(connection, rates)
        sides = (
            (current, proposal.old_name),
            (proposal.library, proposal.name if proposal.change != DELETE else None),
        )
        for library, name in sides:
            if name is not None and _uses(uow, connection, library, settings, proposal.kind, name, default_cadence):
                found.append(connection)
                break
    return found


def _uses(
    uow: UnitOfWork,
    connection: Connection,
    library: OrgLibrary,
    settings: ConnectionSettings,
    kind: str,
    name: str,
    default_cadence: str,
) -> bool:
    """Whether `connection`, planned with `library`, uses the item of `kind` named `name`."""
    planning = client_planning(uow, connection, settings, library, default_cadence=default_cadence)
    cadences = _cadences_in_use(uow, connection.id, planning)
    if kind == CADENCE:
        return name in cadences
    if kind == PAYMENT_PLAN:
        return (
            uow.session.scalar(
                select(PlanRow.id)
                .where(PlanRow.connection_id == connection.id, PlanRow.policy == name, PlanRow.state == "active")
                .limit(1)
            )
            is not None
        )
    field = STEP_FIELDS[kind]
    rules = library.rules.cadences
    steps = [step for cadence in cadences if cadence in rules for step in rules[cadence].steps]
    return any(getattr(step, field) == name for step in steps)


def _cadences_in_use(uow: UnitOfWork, connection_id: int, planning: ClientPlanning) -> set[str]:
    """The client's own cadence and every cadence one of its customers follows instead."""
    used = {planning.cadence_name} if planning.cadence_name else set()
    overrides = uow.session.execute(
        select(Customer.external_id, Customer.cadence_id, Customer.cadence).where(
            Customer.connection_id == connection_id, (Customer.cadence_id.is_not(None)) | (Customer.cadence != "")
        )
    )
    for external_id, cadence_id, legacy in overrides:
        used.add(planning.customer_cadence(external_id, cadence_id, legacy or ""))
    used.discard("")
    return used


def _preview(
    store: Store,
    connection_id: int,
    starter_rules: PolicySet,
    now: datetime,
    days: int,
    library: OrgLibrary,
    rates: ReferenceRates | None,
    default_cadence: str,
) -> list[Action]:
    """What `preview_connection` shows, as the planner's actions (they carry each reminder's step)."""
    with store.unit_of_work() as uow:
        states, _ = client_states(
            uow, connection_id, starter_rules, default_cadence=default_cadence, rates=rates, now=now, library=library
        )
    return [action for state in states for action in preview(state, now, days).actions]

"""The library service: list, read, create, update, rename, delete and restore an organization's cadences,
policies and templates. Every change is a new version, checked against the whole library and audited.

Rules (docs/library.md):
- A body is checked by parsing the whole library with the change applied (`resolve.assemble`), so a cadence
  naming an unknown policy or template is refused with the field; a template is also rendered against
  sample reminders in the sandbox (connector.library.templates).
- `update` takes the version number it edits (`base_version`); a stale one is refused (`InUse`: someone else
  changed it). Concurrent writers are also stopped by the item row lock and the unique (item, number).
- A rename keeps the item id (clients and customers keep their cadence); renaming a policy or template
  rewrites the cadences and payment plans that name it, as new versions in the same transaction.
- A delete is soft (`deleted_at`) and refused with `InUse` naming who uses the item (for a payment-plan
  policy: the active payment plans agreed under it, which name it; a rename carries them to the new name).
- A restore copies an old version's body into a new version under the current name.
- `prune_versions` deletes old versions no action refers to (the current one always stays).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from connector.errors import InUse, InvalidInput, UnknownRecord
from connector.library import audit
from connector.library.resolve import (
    CADENCE,
    DISCOUNT,
    KINDS,
    LATE_FEE,
    PAYMENT_PLAN,
    TEMPLATE,
    LibraryEntry,
    assemble,
)
from connector.library.templates import check_template_body, template_name_problem
from connector.storage import UnitOfWork
from connector.storage.tables import (
    Action,
    ClientSettings,
    Connection,
    Customer,
    LibraryItem,
    LibraryVersion,
    Organization,
    PaymentPlan,
)

MAX_NAME = 100
MAX_ID = 2**31 - 1  # ids are INTEGER columns
DEFAULT_CADENCE_KEY = "default_cadence_id"  # Organization.settings: the cadence of clients that name none


@dataclass(frozen=True, slots=True)
class ItemView:
    """One live library item at its current version."""

    id: int
    kind: str
    name: str
    version: int
    version_id: int
    body: Mapping[str, Any]
    updated_at: datetime
    deleted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class VersionView:
    """One saved version of an item."""

    id: int
    number: int
    name: str
    body: Mapping[str, Any]
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Usage:
    """Who uses an item: clients (connection id, name), customers (id, name), the organization default, and
    other library items (kind, name) that name it."""

    clients: tuple[tuple[int, str], ...] = ()
    customers: tuple[tuple[int, str], ...] = ()
    default: bool = False
    items: tuple[tuple[str, str], ...] = ()
    plans: tuple[tuple[str, str], ...] = ()  # active payment plans following a plan policy: (client, invoice)

    def __bool__(self) -> bool:
        return bool(self.clients or self.customers or self.default or self.items or self.plans)

    def describe(self) -> str:
        """The users as a sentence fragment: "clients Acme, Bolt; customers Cafe; the organization's default"."""
        parts: list[str] = []
        if self.clients:
            parts.append("clients " + ", ".join(name or f"#{cid}" for cid, name in self.clients))
        if self.customers:
            parts.append("customers " + ", ".join(name or f"#{cid}" for cid, name in self.customers))
        if self.default:
            parts.append("the organization's default cadence")
        if self.items:
            parts.append(", ".join(f"{kind.replace('_', ' ')} {name!r}" for kind, name in self.items))
        if self.plans:
            parts.append(
                "active payment plans on invoices "
                + ", ".join(f"{invoice} ({client})" for client, invoice in self.plans)
            )
        return "; ".join(parts)


# -- reading --------------------------------------------------------------------------------------------
def list_items(uow: UnitOfWork, organization_id: int, kind: str | None = None) -> list[ItemView]:
    """The organization's live items (of `kind`), by kind and name."""
    if kind is not None:
        _check_kind(kind)
    query = (
        select(LibraryItem, LibraryVersion)
        .join(LibraryVersion, LibraryVersion.id == LibraryItem.current_version_id)
        .where(LibraryItem.organization_id == organization_id, LibraryItem.deleted_at.is_(None))
    )
    if kind is not None:
        query = query.where(LibraryItem.kind == kind)
    rows = uow.session.execute(query.order_by(LibraryItem.kind, LibraryItem.name, LibraryItem.id)).all()
    return [_view(item, version) for item, version in rows]


def get_item(uow: UnitOfWork, organization_id: int, item_id: int, kind: str | None = None) -> ItemView:
    """One live item; UnknownRecord when it is not this organization's (or not of `kind`, or deleted)."""
    item = _item(uow, organization_id, item_id, kind)
    return _view(item, _current(uow, item))


def versions(uow: UnitOfWork, organization_id: int, item_id: int, kind: str | None = None) -> list[VersionView]:
    """Every kept version of an item, newest first."""
    item = _item(uow, organization_id, item_id, kind)
    rows = uow.session.scalars(
        select(LibraryVersion).where(LibraryVersion.item_id == item.id).order_by(LibraryVersion.number.desc())
    )
    return [VersionView(v.id, v.number, v.name, v.body, v.created_by, v.created_at) for v in rows]


def usage(uow: UnitOfWork, organization_id: int, item_id: int) -> Usage:
    """Who uses item `item_id` (clients, customers, the default cadence, other live items naming it)."""
    item = uow.session.get(LibraryItem, item_id) if 0 < item_id <= MAX_ID else None
    if item is None or item.organization_id != organization_id:
        return Usage()
    if item.kind == CADENCE:
        clients = uow.session.execute(
            select(Connection.id, Connection.name)
            .join(ClientSettings, ClientSettings.connection_id == Connection.id)
            .where(Connection.organization_id == organization_id, ClientSettings.cadence_id == item.id)
            .order_by(Connection.name, Connection.id)
        ).all()
        customers = uow.session.execute(
            select(Customer.id, Customer.name)
            .join(Connection, Connection.id == Customer.connection_id)
            .where(Connection.organization_id == organization_id, Customer.cadence_id == item.id)
            .order_by(Customer.name, Customer.id)
        ).all()
        organization = uow.session.get(Organization, organization_id)
        default = organization is not None and (organization.settings or {}).get(DEFAULT_CADENCE_KEY) == item.id
        return Usage(tuple((row[0], row[1]) for row in clients), tuple((row[0], row[1]) for row in customers), default)
    referrers = [
        (entry.kind, entry.name)
        for entry in _live_entries(uow, organization_id)
        if entry.item_id != item.id and refers(entry, item.kind, item.name)
    ]
    plans: list[tuple[str, str]] = []
    if item.kind == PAYMENT_PLAN:
        plans = [
            (connection.name or connection.tenant_id, plan.invoice_external_id)
            for plan, connection in _plans_following(uow, organization_id, item.name, active_only=True)
        ]
    return Usage(items=tuple(sorted(referrers)), plans=tuple(plans))


def _plans_following(
    uow: UnitOfWork, organization_id: int, policy: str, *, active_only: bool
) -> list[tuple[PaymentPlan, Connection]]:
    """The organization's agreed payment plans that follow plan policy `policy` (by name, as they store it)."""
    query = (
        select(PaymentPlan, Connection)
        .join(Connection, Connection.id == PaymentPlan.connection_id)
        .where(Connection.organization_id == organization_id, PaymentPlan.policy == policy)
    )
    if active_only:
        query = query.where(PaymentPlan.state == "active")
    return [(plan, connection) for plan, connection in uow.session.execute(query.order_by(PaymentPlan.id)).all()]


# -- changing -------------------------------------------------------------------------------------------
def create_item(
    uow: UnitOfWork,
    organization_id: int,
    kind: str,
    name: str,
    body: Mapping[str, Any],
    *,
    actor: str,
    now: datetime,
    change: str = "create",
) -> ItemView:
    """A new item at version 1, checked against the whole library; audited."""
    _check_kind(kind)
    name = _checked_name(kind, name)
    _check_free(uow, organization_id, kind, name, None)
    body = _checked_body(kind, name, body)
    entries = _live_entries(uow, organization_id)
    _check_library(organization_id, [*entries, LibraryEntry(0, kind, name, 0, 1, body)])
    item = LibraryItem(organization_id=organization_id, kind=kind, name=name, created_at=now, updated_at=now)
    uow.session.add(item)
    uow.session.flush()
    version = _add_version(uow, item, 1, name, body, actor, now)
    audit.record(
        uow,
        organization_id=organization_id,
        actor=actor,
        at=now,
        entity=kind,
        entity_id=item.id,
        change=change,
        before=None,
        after=_state(name, 1, body),
    )
    return _view(item, version)


def update_item(
    uow: UnitOfWork,
    organization_id: int,
    item_id: int,
    body: Mapping[str, Any],
    *,
    base_version: int,
    actor: str,
    now: datetime,
    kind: str | None = None,
    change: str = "update",
) -> ItemView:
    """A new version of the item with `body`; refused when `base_version` is not the current one."""
    item = _item(uow, organization_id, item_id, kind, lock=True)
    current = _current(uow, item)
    _check_base(item, current, base_version)
    body = _checked_body(item.kind, item.name, body)
    if dict(body) == dict(current.body):
        return _view(item, current)
    entries = [e for e in _live_entries(uow, organization_id) if e.item_id != item.id]
    _check_library(organization_id, [*entries, LibraryEntry(item.id, item.kind, item.name, 0, 0, body)])
    version = _new_version(uow, item, current, item.name, body, actor, now, change)
    return _view(item, version)


def rename_item(
    uow: UnitOfWork,
    organization_id: int,
    item_id: int,
    name: str,
    *,
    actor: str,
    now: datetime,
    base_version: int | None = None,
    kind: str | None = None,
    change: str = "rename",
) -> ItemView:
    """Rename an item (a new version; the id stays). Cadences and payment plans naming a renamed policy or
    template are rewritten to the new name as new versions of their own, in the same transaction."""
    item = _item(uow, organization_id, item_id, kind, lock=True)
    current = _current(uow, item)
    if base_version is not None:
        _check_base(item, current, base_version)
    name = _checked_name(item.kind, name)
    if name == item.name:
        return _view(item, current)
    _check_free(uow, organization_id, item.kind, name, item.id)
    old = item.name
    entries = _live_entries(uow, organization_id)
    rewritten: dict[int, dict[str, Any]] = {}
    for entry in entries:
        if entry.item_id != item.id and refers(entry, item.kind, old):
            rewritten[entry.item_id] = _rewrite(entry, item.kind, old, name)
    changed = [
        LibraryEntry(
            e.item_id, e.kind, name if e.item_id == item.id else e.name, 0, 0, rewritten.get(e.item_id, e.body)
        )
        for e in entries
    ]
    _check_library(organization_id, changed)
    version = _new_version(uow, item, current, name, current.body, actor, now, change)
    for referrer_id, new_body in rewritten.items():
        referrer = _item(uow, organization_id, referrer_id, None, lock=True)
        _new_version(uow, referrer, _current(uow, referrer), referrer.name, new_body, actor, now, change)
    if item.kind == PAYMENT_PLAN:
        _rename_plan_policy(uow, organization_id, old, name, actor=actor, now=now, change=change)
    return _view(item, version)


def _rename_plan_policy(
    uow: UnitOfWork, organization_id: int, old: str, new: str, *, actor: str, now: datetime, change: str
) -> None:
    """Agreed payment plans name their policy by name: they follow it to its new name (each audited)."""
    for plan, connection in _plans_following(uow, organization_id, old, active_only=False):
        plan.policy = new
        audit.record(
            uow,
            organization_id=organization_id,
            actor=actor,
            at=now,
            entity="payment_plan",
            entity_id=plan.id,
            change=change,
            before={"policy": old},
            after={"policy": new},
            connection_id=connection.id,
        )


def delete_item(
    uow: UnitOfWork,
    organization_id: int,
    item_id: int,
    *,
    actor: str,
    now: datetime,
    kind: str | None = None,
    change: str = "delete",
) -> None:
    """Soft-delete an item; InUse naming its clients and customers (a cadence) or the items naming it."""
    item = _item(uow, organization_id, item_id, kind, lock=True)
    users = usage(uow, organization_id, item.id)
    if users:
        raise InUse(
            f"the {item.kind.replace('_', ' ')} {item.name!r} is in use ({users.describe()}); "
            "move them to another one first",
            "id",
        )
    current = _current(uow, item)
    item.deleted_at = now
    item.updated_at = now
    audit.record(
        uow,
        organization_id=organization_id,
        actor=actor,
        at=now,
        entity=item.kind,
        entity_id=item.id,
        change=change,
        before=_state(item.name, current.number, current.body),
        after=None,
    )
    uow.session.flush()


def restore_version(
    uow: UnitOfWork,
    organization_id: int,
    item_id: int,
    number: int,
    *,
    actor: str,
    now: datetime,
    base_version: int | None = None,
    kind: str | None = None,
) -> ItemView:
    """Make old version `number`'s body current again, as a new version under the item's current name."""
    item = _item(uow, organization_id, item_id, kind)
    old = uow.session.scalars(
        select(LibraryVersion).where(LibraryVersion.item_id == item.id, LibraryVersion.number == number)
    ).first()
    if old is None:
        raise UnknownRecord(f"the {item.kind.replace('_', ' ')} {item.name!r} has no version {number}", "version")
    current = _current(uow, item)
    return update_item(
        uow,
        organization_id,
        item.id,
        old.body,
        base_version=current.number if base_version is None else base_version,
        actor=actor,
        now=now,
        change="restore",
    )


def prune_versions(uow: UnitOfWork, organization_id: int) -> int:
    """Delete the organization's old versions that no action refers to (current versions stay); how many."""
    items = select(LibraryItem.id).where(LibraryItem.organization_id == organization_id)
    currents = select(LibraryItem.current_version_id).where(
        LibraryItem.organization_id == organization_id, LibraryItem.current_version_id.is_not(None)
    )
    referred = select(Action.library_version_id).where(Action.library_version_id.is_not(None))
    doomed = list(
        uow.session.scalars(
            select(LibraryVersion.id).where(
                LibraryVersion.item_id.in_(items),
                LibraryVersion.id.not_in(currents),
                LibraryVersion.id.not_in(referred),
            )
        )
    )
    if doomed:
        uow.session.execute(delete(LibraryVersion).where(LibraryVersion.id.in_(doomed)))
    return len(doomed)


def live_entries(uow: UnitOfWork, organization_id: int) -> list[LibraryEntry]:
    """The current version of every live item (bodies included), unchecked."""
    return _live_entries(uow, organization_id)


# -- helpers --------------------------------------------------------------------------------------------
def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidInput(f"unknown kind {kind!r} (known: {', '.join(KINDS)})", "kind")


def _checked_name(kind: str, name: object) -> str:
    """The name as the YAML takes it (policy_parsing._name: a non-empty string, stripped), bounded."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"expected a non-empty name, got {name!r}", "name")
    name = name.strip()
    if any(not char.isprintable() for char in name):  # line breaks, NUL (PostgreSQL refuses it in text), …
        raise InvalidInput("a name is one line of printable characters", "name")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"a name is at most {MAX_NAME} characters", "name")
    if kind == TEMPLATE:
        problem = template_name_problem(name)
        if problem:
            raise InvalidInput(problem, "name")
    return name


def _check_free(uow: UnitOfWork, organization_id: int, kind: str, name: str, item_id: int | None) -> None:
    query = select(LibraryItem.id).where(
        LibraryItem.organization_id == organization_id,
        LibraryItem.kind == kind,
        LibraryItem.name == name,
        LibraryItem.deleted_at.is_(None),
    )
    if item_id is not None:
        query = query.where(LibraryItem.id != item_id)
    if uow.session.scalar(query.limit(1)) is not None:
        raise InvalidInput(f"there is already a {kind.replace('_', ' ')} named {name!r}", "name")


def _checked_body(kind: str, name: str, body: object) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidInput("expected a mapping (the YAML block of this item)", "body")
    if kind == TEMPLATE:
        return check_template_body(name, body)
    if "name" in body and kind == CADENCE:
        raise InvalidInput("a cadence's name is not part of its body: rename the cadence instead", "body.name")
    return dict(audit.plain(body))


def _check_library(organization_id: int, entries: list[LibraryEntry]) -> None:
    """InvalidInput (field "body.<field>") unless the library with the change applied parses and fits together."""
    try:
        assemble(organization_id, tuple(entries))
    except InvalidInput as exc:
        raise InvalidInput(exc.user_message, f"body.{exc.field}" if exc.field else "body") from None


def _check_base(item: LibraryItem, current: LibraryVersion, base_version: int) -> None:
    if base_version != current.number:
        raise InUse(
            f"someone else changed the {item.kind.replace('_', ' ')} {item.name!r} (now version {current.number}, "
            f"you edited version {base_version}); reload it and make your change again",
            "base_version",
        )


def _item(uow: UnitOfWork, organization_id: int, item_id: int, kind: str | None, *, lock: bool = False) -> LibraryItem:
    if not 0 < item_id <= MAX_ID:  # beyond the column's range: no such item (and no database error)
        raise UnknownRecord(f"no {(kind or 'library item').replace('_', ' ')} {item_id}", "id")
    query = select(LibraryItem).where(
        LibraryItem.id == item_id, LibraryItem.organization_id == organization_id, LibraryItem.deleted_at.is_(None)
    )
    if kind is not None:
        query = query.where(LibraryItem.kind == kind)
    if lock:
        # Fresh values under the lock, even for a row this session loaded before (the identity map keeps old ones).
        query = query.with_for_update().execution_options(populate_existing=True)
    item = uow.session.scalars(query).first()
    if item is None:
        raise UnknownRecord(f"no {(kind or 'library item').replace('_', ' ')} {item_id}", "id")
    return item


def _current(uow: UnitOfWork, item: LibraryItem) -> LibraryVersion:
    version = uow.session.get(LibraryVersion, item.current_version_id) if item.current_version_id else None
    if version is None:  # an item is always written with its first version; guard a hand-edited database
        raise UnknownRecord(f"the {item.kind.replace('_', ' ')} {item.name!r} has no saved version", "id")
    return version


def _add_version(
    uow: UnitOfWork, item: LibraryItem, number: int, name: str, body: Mapping[str, Any], actor: str, now: datetime
) -> LibraryVersion:
    version = LibraryVersion(
        item_id=item.id, number=number, name=name, body=dict(body), created_by=actor, created_at=now
    )
    uow.session.add(version)
    try:
        uow.session.flush()
    except IntegrityError:
        # Two writers raced past the row lock (SQLite has none): the unique (item, number) stops the second.
        uow.session.rollback()
        raise InUse(
            f"someone else changed the {item.kind.replace('_', ' ')} {name!r} at the same time; reload it and "
            "make your change again",
            "base_version",
        ) from None
    item.current_version_id = version.id
    item.name = name
    item.updated_at = now
    return version


def _new_version(
    uow: UnitOfWork,
    item: LibraryItem,
    current: LibraryVersion,
    name: str,
    body: Mapping[str, Any],
    actor: str,
    now: datetime,
    change: str,
) -> LibraryVersion:
    before = _state(current.name, current.number, current.body)
    number = (
        uow.session.scalar(select(func.max(LibraryVersion.number)).where(LibraryVersion.item_id == item.id)) or 0
    ) + 1
    version = _add_version(uow, item, number, name, body, actor, now)
    audit.record(
        uow,
        organization_id=item.organization_id,
        actor=actor,
        at=now,
        entity=item.kind,
        entity_id=item.id,
        change=change,
        before=before,
        after=_state(name, number, body),
    )
    return version


def _state(name: str, number: int, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": name, "version": number, "body": dict(body)}


def _view(item: LibraryItem, version: LibraryVersion) -> ItemView:
    return ItemView(
        item.id, item.kind, item.name, version.number, version.id, version.body, item.updated_at, item.deleted_at
    )


def _live_entries(uow: UnitOfWork, organization_id: int) -> list[LibraryEntry]:
    rows = uow.session.execute(
        select(LibraryItem, LibraryVersion)
        .join(LibraryVersion, LibraryVersion.id == LibraryItem.current_version_id)
        .where(LibraryItem.organization_id == organization_id, LibraryItem.deleted_at.is_(None))
        .order_by(LibraryItem.id)
    ).all()
    return [LibraryEntry(i.id, i.kind, i.name, v.id, v.number, v.body or {}) for i, v in rows]


# -- references by name -------------------------------------------------------------------------------
# Which step fields name which kind; a template is named by a step's `remind` (text, or {template: …}) or
# `template`, and by a payment plan's `template`.
_STEP_FIELD = {LATE_FEE: "late_fee", DISCOUNT: "discount"}


def _step_templates(step: Mapping[str, Any]) -> Iterable[str]:
    remind = step.get("remind")
    if isinstance(remind, str):
        yield remind.strip()
    elif isinstance(remind, Mapping) and isinstance(remind.get("template"), str):
        yield str(remind["template"]).strip()
    if isinstance(step.get("template"), str):
        yield str(step["template"]).strip()


def refers(entry: LibraryEntry, kind: str, name: str) -> bool:
    """Whether `entry`'s body names the `kind` item called `name`."""
    if entry.kind == CADENCE:
        for step in _steps(entry.body):
            named = step.get(_STEP_FIELD[kind]) if kind in _STEP_FIELD else None
            if isinstance(named, str) and named.strip() == name:
                return True
            if kind == TEMPLATE and name in _step_templates(step):
                return True
        return False
    if entry.kind == PAYMENT_PLAN and kind == TEMPLATE:
        template = entry.body.get("template")
        return (template.strip() if isinstance(template, str) else "installment") == name
    return False


def _steps(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    steps = body.get("steps")
    return [step for step in steps if isinstance(step, Mapping)] if isinstance(steps, list) else []


def _rewrite(entry: LibraryEntry, kind: str, old: str, new: str) -> dict[str, Any]:
    """`entry`'s body with every reference to the `kind` item `old` renamed to `new`."""
    body = dict(entry.body)

    def renamed(value: Any) -> Any:
        return new if isinstance(value, str) and value.strip() == old else value

    if entry.kind == PAYMENT_PLAN:
        # Only called for a plan naming `old` (a plan without `template` uses "installment"): name the new one.
        body["template"] = new
        return body
    steps: list[Any] = []
    for step in body.get("steps") or []:
        if not isinstance(step, Mapping):
            steps.append(step)
            continue
        step = dict(step)
        if kind in _STEP_FIELD and _STEP_FIELD[kind] in step:
            step[_STEP_FIELD[kind]] = renamed(step[_STEP_FIELD[kind]])
        if kind == TEMPLATE:
            remind = step.get("remind")
            if isinstance(remind, Mapping):
                step["remind"] = {**remind, "template": renamed(remind.get("template"))}
            elif "remind" in step:
                step["remind"] = renamed(remind)
            if "template" in step:
                step["template"] = renamed(step["template"])
        steps.append(step)
    body["steps"] = steps
    return body

"""The library as its screens list it: every live item with who uses it, in a fixed number of queries.

- A cadence is followed by the clients whose own cadence it is (their settings' cadence id, else their legacy
  cadence name, else the organization's default cadence, as connector.outbox.client resolves it), and by the
  customers whose override names it. Disconnected clients are left out; `connection_ids` limits the clients
  listed (a client-limited member sees only theirs; customers are then not counted).
- A policy or template is used by the live cadences (and, for a template, payment-plan policies) that name it
  (`items.refers`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from connector.domain.model import ConnectionStatus
from connector.library.items import DEFAULT_CADENCE_KEY, live_entries, refers
from connector.library.resolve import CADENCE, LibraryEntry
from connector.storage import UnitOfWork
from connector.storage.tables import ClientSettings, Connection, Customer, LibraryItem, Organization


@dataclass(frozen=True, slots=True)
class Listed:
    """One live item at its current version, with who uses it.

    `clients`: (connection id, name) following a cadence; `customers`: how many customers follow it by override;
    `default`: the organization's default cadence; `users`: (kind, name) of the items that name a policy or
    template."""

    entry: LibraryEntry
    updated_at: datetime | None
    clients: tuple[tuple[int, str], ...] = ()
    customers: int = 0
    default: bool = False
    users: tuple[tuple[str, str], ...] = ()

    @property
    def in_use(self) -> bool:
        """Whether anything follows or names the item."""
        return bool(self.clients or self.customers or self.default or self.users)


def library_listing(
    uow: UnitOfWork, organization_id: int, *, connection_ids: Collection[int] | None = None
) -> dict[str, list[Listed]]:
    """The organization's live items by kind (each list by name), with their users."""
    entries = live_entries(uow, organization_id)
    updated = dict(
        uow.session.execute(
            select(LibraryItem.id, LibraryItem.updated_at).where(
                LibraryItem.organization_id == organization_id, LibraryItem.deleted_at.is_(None)
            )
        ).all()
    )
    followers = _cadence_followers(uow, organization_id, entries, connection_ids)
    customers = _customer_counts(uow, organization_id) if connection_ids is None else {}
    organization = uow.session.get(Organization, organization_id)
    default = (organization.settings or {}).get(DEFAULT_CADENCE_KEY) if organization is not None else None
    listed: dict[str, list[Listed]] = defaultdict(list)
    for entry in sorted(entries, key=lambda e: (e.kind, e.name.lower(), e.item_id)):
        if entry.kind == CADENCE:
            listed[entry.kind].append(
                Listed(
                    entry,
                    updated.get(entry.item_id),
                    tuple(followers.get(entry.item_id, ())),
                    customers.get(entry.item_id, 0),
                    default == entry.item_id,
                )
            )
        else:
            users = tuple(
                sorted(
                    (other.kind, other.name)
                    for other in entries
                    if other.item_id != entry.item_id and refers(other, entry.kind, entry.name)
                )
            )
            listed[entry.kind].append(Listed(entry, updated.get(entry.item_id), users=users))
    return dict(listed)


def _cadence_followers(
    uow: UnitOfWork, organization_id: int, entries: list[LibraryEntry], connection_ids: Collection[int] | None
) -> dict[int, list[tuple[int, str]]]:
    """Cadence item id → the clients (id, name) whose own cadence it is."""
    cadences = {entry.item_id: entry.name for entry in entries if entry.kind == CADENCE}
    by_name = {name: item_id for item_id, name in cadences.items()}
    organization = uow.session.get(Organization, organization_id)
    raw_default = (organization.settings or {}).get(DEFAULT_CADENCE_KEY) if organization is not None else None
    default = raw_default if raw_default in cadences else None
    rows = uow.session.execute(
        select(Connection.id, Connection.name, Connection.tenant_id, Connection.cadence, ClientSettings.cadence_id)
        .outerjoin(ClientSettings, ClientSettings.connection_id == Connection.id)
        .where(
            Connection.organization_id == organization_id,
            Connection.status != ConnectionStatus.DISCONNECTED.value,
        )
        .order_by(Connection.name, Connection.id)
    ).all()
    followers: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for connection_id, name, tenant_id, legacy, cadence_id in rows:
        if connection_ids is not None and connection_id not in connection_ids:
            continue
        chosen = cadence_id if cadence_id in cadences else by_name.get(legacy or "", default)
        if chosen is None and cadences and default is None:
            chosen = by_name[min(by_name)]  # the library's first cadence by name, as the planner falls back
        if chosen is not None:
            followers[chosen].append((connection_id, name or tenant_id))
    return followers


def _customer_counts(uow: UnitOfWork, organization_id: int) -> dict[int, int]:
    """Cadence item id → how many customers follow it by their own override."""
    rows = uow.session.execute(
        select(Customer.cadence_id, func.count(Customer.id))
        .join(Connection, Connection.id == Customer.connection_id)
        .where(Connection.organization_id == organization_id, Customer.cadence_id.is_not(None))
        .group_by(Customer.cadence_id)
    ).all()
    return {int(cadence_id): int(count) for cadence_id, count in rows if cadence_id is not None}

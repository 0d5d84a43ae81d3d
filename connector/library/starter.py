"""Seeding an organization's library from the install's starter library (the YAML's `cadences:` and
`policies:`, plus the built-in templates), once, whoever gets there first.

Two processes (two workers, or a worker and a web request) may try to seed the same organization at once:
the organization row is locked (SELECT … FOR UPDATE on PostgreSQL; SQLite has one writer at a time) and the
"has no library rows yet" check is made again under the lock, so exactly one of them writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select

from connector.config import Settings
from connector.library import audit
from connector.library.items import DEFAULT_CADENCE_KEY
from connector.library.resolve import CADENCE, POLICY_SECTIONS, TEMPLATE
from connector.library.templates import builtin_templates
from connector.storage import Store, UnitOfWork
from connector.storage.tables import (
    ClientSettings,
    Connection,
    Customer,
    LibraryItem,
    LibraryVersion,
    Organization,
)

STARTER_ACTOR = "starter"


def ensure_library(uow: UnitOfWork, organization_id: int, settings: Settings, now: datetime) -> bool:
    """Seed the organization's library from `settings` when it has no library rows; True when it seeded.

    Also sets Organization.settings["default_cadence_id"] (the cadence an existing `default_cadence` name
    names, else the YAML's first) and gives the organization's connections and customers whose legacy
    `cadence` names a starter cadence that cadence by id. Uncommitted: the caller commits.
    """
    if _has_library(uow, organization_id):
        return False
    organization = uow.session.scalars(
        select(Organization).where(Organization.id == organization_id).with_for_update()
    ).first()
    if organization is None or _has_library(uow, organization_id):
        return False
    ids = _seed(uow, organization_id, settings, now)
    cadence_ids = ids[CADENCE]
    org_settings = dict(organization.settings or {})
    wanted = org_settings.get("default_cadence")
    default = cadence_ids.get(wanted) if isinstance(wanted, str) else None
    if default is None and cadence_ids:
        default = next(iter(cadence_ids.values()))
    if default is not None and org_settings.get(DEFAULT_CADENCE_KEY) is None:
        org_settings[DEFAULT_CADENCE_KEY] = default
        organization.settings = org_settings
    _assign_legacy_cadences(uow, organization_id, cadence_ids)
    uow.session.flush()
    return True


def seed_organizations(store: Store, settings: Settings, now: datetime) -> int:
    """Seed every organization that has no library yet (those created before libraries existed), one transaction
    each; how many were seeded. `nudge db upgrade` runs it, so reading a library never has to write one."""
    if not settings.cadences:
        return 0
    with store.unit_of_work() as uow:
        seeded_ids = select(LibraryItem.organization_id).distinct()
        bare = list(uow.session.scalars(select(Organization.id).where(Organization.id.not_in(seeded_ids))))
    count = 0
    for organization_id in bare:
        with store.unit_of_work() as uow:
            if ensure_library(uow, organization_id, settings, now):
                uow.commit()
                count += 1
    return count


def _has_library(uow: UnitOfWork, organization_id: int) -> bool:
    found = uow.session.scalar(select(LibraryItem.id).where(LibraryItem.organization_id == organization_id).limit(1))
    return found is not None


def starter_bodies(settings: Settings) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, name, body) of every starter item: templates, then policies, then cadences in the YAML's order."""
    bodies: list[tuple[str, str, dict[str, Any]]] = [
        (TEMPLATE, name, body) for name, body in builtin_templates().items()
    ]
    policies: Mapping[str, Any] = settings.policies or {}
    for kind, section in POLICY_SECTIONS.items():
        block = policies.get(section) or {}
        if isinstance(block, Mapping):
            bodies.extend((kind, str(name).strip(), dict(audit.plain(body))) for name, body in block.items())
    for name, body in (settings.cadences or {}).items():
        bodies.append((CADENCE, str(name).strip(), dict(audit.plain(body))))
    return bodies


def _seed(uow: UnitOfWork, organization_id: int, settings: Settings, now: datetime) -> dict[str, dict[str, int]]:
    """Write every starter item at version 1 (audited); their ids by kind and name."""
    ids: dict[str, dict[str, int]] = {CADENCE: {}}
    for kind, name, body in starter_bodies(settings):
        item = LibraryItem(organization_id=organization_id, kind=kind, name=name, created_at=now, updated_at=now)
        uow.session.add(item)
        uow.session.flush()
        version = LibraryVersion(
            item_id=item.id, number=1, name=name, body=body, created_by=STARTER_ACTOR, created_at=now
        )
        uow.session.add(version)
        uow.session.flush()
        item.current_version_id = version.id
        ids.setdefault(kind, {})[name] = item.id
        audit.record(
            uow,
            organization_id=organization_id,
            actor=STARTER_ACTOR,
            at=now,
            entity=kind,
            entity_id=item.id,
            change="create",
            before=None,
            after={"name": name, "version": 1, "body": body},
        )
    return ids


def _assign_legacy_cadences(uow: UnitOfWork, organization_id: int, cadence_ids: Mapping[str, int]) -> None:
    """Connections and customers that named a cadence (legacy `cadence` text) now name it by id."""
    if not cadence_ids:
        return
    connections = uow.session.scalars(
        select(Connection).where(Connection.organization_id == organization_id, Connection.cadence != "")
    ).all()
    for connection in connections:
        cadence_id = cadence_ids.get(connection.cadence.strip())
        if cadence_id is None:
            continue
        row = uow.session.get(ClientSettings, connection.id)
        if row is None:
            uow.session.add(ClientSettings(connection_id=connection.id, cadence_id=cadence_id))
        elif row.cadence_id is None:
            row.cadence_id = cadence_id
    customers = uow.session.scalars(
        select(Customer)
        .join(Connection, Connection.id == Customer.connection_id)
        .where(Connection.organization_id == organization_id, Customer.cadence != "", Customer.cadence_id.is_(None))
    ).all()
    for customer in customers:
        customer.cadence_id = cadence_ids.get(customer.cadence.strip())

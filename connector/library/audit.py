"""The audit log: every change to the library, a client's settings or an override records who, when, before, after.

Services call `record` in the same unit of work as the change, so a change and its entry commit together.
`before`/`after` are plain JSON (dates as ISO text, amounts as strings); None where the record did not exist.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from connector.storage import UnitOfWork
from connector.storage.tables import AuditEntry


@dataclass(frozen=True, slots=True)
class AuditView:
    """One audit entry as people read it."""

    id: int
    organization_id: int
    connection_id: int | None
    actor: str
    at: datetime
    entity: str
    entity_id: str
    change: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


def plain(value: Any) -> Any:
    """`value` as JSON: dates and instants as ISO text, Decimals as strings, mappings and sequences recursively."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def record(
    uow: UnitOfWork,
    *,
    organization_id: int,
    actor: str,
    at: datetime,
    entity: str,
    entity_id: str | int,
    change: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    connection_id: int | None = None,
) -> None:
    """Add one audit entry (uncommitted: it commits with the change it describes); nothing when nothing changed."""
    before_json, after_json = plain(before) if before is not None else None, plain(after) if after is not None else None
    if change == "update" and before_json == after_json:
        return
    uow.session.add(
        AuditEntry(
            organization_id=organization_id,
            connection_id=connection_id,
            actor=actor,
            at=at,
            entity=entity,
            entity_id=str(entity_id),
            change=change,
            before=before_json,
            after=after_json,
        )
    )


def entries(
    uow: UnitOfWork,
    organization_id: int,
    *,
    connection_id: int | None = None,
    entity: str | None = None,
    entity_id: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
    connection_ids: Collection[int] | None = None,
) -> list[AuditView]:
    """The organization's audit entries, newest first (`before_id`: the page after that entry);
    `connection_ids`: only entries of these clients (a client-limited member's view; None: all)."""
    query = select(AuditEntry).where(AuditEntry.organization_id == organization_id)
    if connection_id is not None:
        query = query.where(AuditEntry.connection_id == connection_id)
    if connection_ids is not None:
        query = query.where(AuditEntry.connection_id.in_(sorted(connection_ids)))
    if entity is not None:
        query = query.where(AuditEntry.entity == entity)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == entity_id)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    rows = uow.session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit))
    return [
        AuditView(
            row.id,
            row.organization_id,
            row.connection_id,
            row.actor,
            row.at,
            row.entity,
            row.entity_id,
            row.change,
            row.before,
            row.after,
        )
        for row in rows
    ]

"""Shared pieces of the receivables services: visibility, keyset cursors, pages, the client's local day."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, false, select, true
from sqlalchemy.sql.elements import SQLCoreOperations

from connector.domain.calendar import zone
from connector.errors import InvalidInput, UnknownRecord
from connector.storage import UnitOfWork
from connector.storage.tables import Activity, ClientSettings, Connection

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
ROW_ID_MAX = 2**31 - 1  # row ids are 32-bit: a larger number names nothing (and the databases cannot bind it)
_EARLIEST, _LATEST = 1900, 9000  # years a filter's instant or date may name (date arithmetic stays in range)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing and the cursor of the next (None: this was the last page)."""

    items: tuple[T, ...]
    next_cursor: str | None


def check_limit(limit: int) -> int:
    """`limit` when it is a page size we serve (1..MAX_LIMIT); InvalidInput naming `limit` otherwise."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_LIMIT}", "limit")
    return limit


def row_id(value: int, field: str, what: str) -> int:
    """`value` when it can be a row id; UnknownRecord naming `field` otherwise (it names nothing)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ROW_ID_MAX:
        raise UnknownRecord(f"no {what} with id {value}", field)
    return value


def plain_text(value: str, field: str, max_length: int) -> str:
    """`value` when it is text of at most `max_length` characters without control characters (tabs and line
    breaks aside); InvalidInput naming `field` otherwise (PostgreSQL refuses NUL in text, for one)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text", field)
    if len(value) > max_length:
        raise InvalidInput(f"{field} is at most {max_length} characters", field)
    if any((ord(char) < 32 and char not in "\t\r\n") or ord(char) == 127 for char in value):
        raise InvalidInput(f"{field} must not contain control characters", field)
    return value


def check_instant(value: datetime | None, field: str) -> None:
    """InvalidInput naming `field` unless `value` is None or an aware instant in a plausible year."""
    if value is None:
        return
    if value.tzinfo is None:
        raise InvalidInput(f"{field} needs a time zone (e.g. 2026-11-30T09:00:00Z)", field)
    if not _EARLIEST <= value.year <= _LATEST:
        raise InvalidInput(f"{field} must be between the years {_EARLIEST} and {_LATEST}", field)


def check_day(value: date | None, field: str) -> None:
    """InvalidInput naming `field` unless `value` is None or a date in a plausible year."""
    if value is not None and not _EARLIEST <= value.year <= _LATEST:
        raise InvalidInput(f"{field} must be between the years {_EARLIEST} and {_LATEST}", field)


def encode_cursor(kind: str, values: Sequence[Any]) -> str:
    """An opaque cursor naming the listing (`kind`) and the last row's sort key (JSON-able values)."""
    raw = json.dumps([kind, list(values)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, size: int) -> list[Any]:
    """The sort key a cursor of listing `kind` carries; InvalidInput("cursor") for anything else."""
    refused = InvalidInput("cursor is not one this listing gave out: start again without it", "cursor")
    if not isinstance(cursor, str) or len(cursor) > 400:
        raise refused
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found, values = json.loads(raw)
    except (ValueError, binascii.Error, TypeError):
        raise refused from None
    if found != kind or not isinstance(values, list) or len(values) != size:
        raise refused
    return values


def cursor_date(value: Any) -> date | None:
    """A date a cursor carries (ISO text or None); InvalidInput("cursor") when it is not one."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInput("cursor is not one this listing gave out: start again without it", "cursor") from None


def cursor_instant(value: Any) -> datetime:
    """An aware instant a cursor carries (ISO text); InvalidInput("cursor") when it is not one."""
    try:
        found = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        found = None
    if found is None or found.tzinfo is None:
        raise InvalidInput("cursor is not one this listing gave out: start again without it", "cursor")
    return found


def cursor_int(value: Any) -> int:
    """An id a cursor carries; InvalidInput("cursor") when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("cursor is not one this listing gave out: start again without it", "cursor")
    return value


def visible(column: SQLCoreOperations[Any], org_id: int, connection_ids: Collection[int] | None) -> ColumnElement[bool]:
    """The SQL condition "`column` (a connection id) is one of the organization's that the member may see"."""
    owned: ColumnElement[bool] = column.in_(
        select(Connection.id).where(Connection.organization_id == org_id).scalar_subquery()
    )
    if connection_ids is None:
        return owned
    if not connection_ids:
        return false()
    return and_(owned, column.in_(sorted(connection_ids)))


def visible_connection(
    uow: UnitOfWork,
    org_id: int,
    connection_id: int,
    connection_ids: Collection[int] | None,
    field: str = "connection_id",
) -> Connection:
    """The connection, when it is the organization's and the member may see it; UnknownRecord otherwise."""
    row_id(connection_id, field, "client")
    connection = uow.connections.get(org_id, connection_id)
    if connection is None or (connection_ids is not None and connection_id not in connection_ids):
        raise UnknownRecord(f"no client with id {connection_id}", field)
    return connection


def visible_connections(
    uow: UnitOfWork, org_id: int, connection_ids: Collection[int] | None, only: int | None = None
) -> list[Connection]:
    """The organization's connections the member may see (`only`: just that one, UnknownRecord if not), by id."""
    if only is not None:
        return [visible_connection(uow, org_id, only, connection_ids)]
    query = select(Connection).where(Connection.organization_id == org_id).order_by(Connection.id)
    if connection_ids is not None:
        query = query.where(Connection.id.in_(sorted(connection_ids)) if connection_ids else false())
    return list(uow.session.scalars(query))


def client_zones(uow: UnitOfWork, connections: Sequence[Connection]) -> dict[int, ZoneInfo]:
    """Each connection's time zone: its client settings' zone, else the ledger's, else UTC (an unknown name too)."""
    ids = [connection.id for connection in connections]
    overrides = (
        dict(
            uow.session.execute(
                select(ClientSettings.connection_id, ClientSettings.time_zone).where(
                    ClientSettings.connection_id.in_(ids)
                )
            ).all()
        )
        if ids
        else {}
    )
    zones: dict[int, ZoneInfo] = {}
    for connection in connections:
        name = overrides.get(connection.id) or connection.time_zone or "UTC"
        try:
            zones[connection.id] = zone(name)
        except ValueError:  # a zone this system does not know: UTC rather than no answer
            zones[connection.id] = zone("UTC")
    return zones


def local_today(now: datetime, tz: ZoneInfo) -> date:
    """The calendar date it is at `now` (aware) in `tz`."""
    return now.astimezone(tz).date()


def detail_id_in(uow: UnitOfWork, key: str, ids: Collection[int]) -> ColumnElement[bool]:
    """The condition "the activity's `detail[key]` is one of the row ids `ids`".

    PostgreSQL compares the JSON value as text: a cast to integer would fail the whole query on any row whose
    value is not a number. SQLite's casts never fail, and its JSON numbers do not equal text.
    """
    if not ids:
        return false()
    condition: ColumnElement[bool]
    if uow.session.get_bind().dialect.name == "postgresql":
        condition = Activity.detail[key].as_string().in_(sorted(str(value) for value in ids))
    else:
        condition = Activity.detail[key].as_integer().in_(sorted(ids))
    return condition


def always() -> ColumnElement[bool]:
    """A condition that holds for every row (the start of a filter built piece by piece)."""
    return true()

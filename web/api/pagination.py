"""Cursor pagination for list endpoints: `?cursor=…&limit=…` in, `{"items": [...], "next_cursor": …}` out.

The cursor is opaque to clients: the position after the last item (any JSON value the endpoint chooses,
e.g. `[due_date, id]` for keyset paging), signed with the app's secret and bound to the endpoint and its
path arguments, so a tampered cursor, or one taken from another list or organization, is a 422 problem
naming `cursor`, never a 500 or someone else's page.

Usage in a resource module::

    InvoicePage = page_schema(InvoiceSchema)          # documents {"items": [InvoiceSchema], "next_cursor"}

    @blp.get("/orgs/<int:org_id>/invoices")
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, InvoicePage)
    def list_invoices(args, org_id):
        page = page_request(args)                     # page.position: None on the first page
        rows = query_after(page.position, limit=page.limit + 1)   # one more than asked: is there a next page?
        return page_of(rows, page, position=lambda row: row.id, item=to_dict)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import marshmallow as ma
from flask import current_app, request
from itsdangerous import BadSignature, URLSafeSerializer

from connector.errors import InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_LENGTH = 1000
_SALT = "nudge.api.cursor"

T = TypeVar("T")


class PageArgsSchema(ma.Schema):
    """The query arguments of every list endpoint."""

    cursor = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(min=1, max=MAX_CURSOR_LENGTH),
        metadata={"description": "`next_cursor` of the previous page; omit for the first page"},
    )
    limit = ma.fields.Integer(
        load_default=DEFAULT_LIMIT,
        validate=ma.validate.Range(min=1, max=MAX_LIMIT),
        metadata={"description": f"items per page, 1 to {MAX_LIMIT}"},
    )


_page_schemas: dict[str, type[ma.Schema]] = {}


def page_schema(item: type[ma.Schema], name: str | None = None) -> type[ma.Schema]:
    """A schema for one page of `item`s (named `<Item>Page` in the OpenAPI document; made once per name)."""
    base = name or item.__name__.removesuffix("Schema")
    key = f"{base}Page"
    if key not in _page_schemas:
        _page_schemas[key] = ma.Schema.from_dict(
            {
                "items": ma.fields.List(ma.fields.Nested(item), required=True),
                "next_cursor": ma.fields.String(
                    required=True, allow_none=True, metadata={"description": "null on the last page"}
                ),
            },
            name=key,
        )
    return _page_schemas[key]


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A decoded page request: where to start (None: the beginning) and how many items."""

    position: Any
    limit: int
    scope: str


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def _scope() -> str:
    """The list a cursor belongs to: the endpoint and its path arguments (organization, client, ...)."""
    args = sorted((request.view_args or {}).items())
    return f"{request.endpoint}:{args}"


def encode_cursor(position: Any, scope: str) -> str:
    """The opaque, signed cursor for `position` in the list `scope`."""
    return str(_serializer().dumps({"s": scope, "p": position}))


def decode_cursor(cursor: str, scope: str) -> Any:
    """The position a cursor names; InvalidInput("cursor") when it was altered or belongs to another list."""
    try:
        data = _serializer().loads(cursor)
    except BadSignature:
        raise InvalidInput("the cursor is not valid: pass next_cursor exactly as returned", "cursor") from None
    if not isinstance(data, dict) or data.get("s") != scope or "p" not in data:
        raise InvalidInput("the cursor belongs to another list", "cursor")
    return data["p"]


def page_request(args: Mapping[str, Any]) -> PageRequest:
    """The page asked for by `args` (loaded with PageArgsSchema, possibly with other filters)."""
    scope = _scope()
    cursor = args.get("cursor")
    position = decode_cursor(cursor, scope) if cursor else None
    return PageRequest(position=position, limit=int(args.get("limit") or DEFAULT_LIMIT), scope=scope)


def page_of(
    rows: Sequence[T],
    page: PageRequest,
    *,
    position: Callable[[T], Any],
    item: Callable[[T], Any] = lambda row: row,
) -> dict[str, Any]:
    """One page from `rows` fetched with `limit + 1`: the first `limit` as items, and a cursor if more remain."""
    shown = list(rows[: page.limit])
    more = len(rows) > page.limit
    return {
        "items": [item(row) for row in shown],
        "next_cursor": encode_cursor(position(shown[-1]), page.scope) if more and shown else None,
    }

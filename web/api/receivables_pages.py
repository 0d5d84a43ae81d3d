"""A connector.receivables page as the API's page: the service's own keyset cursor rides inside the API's signed
cursor (web.api.pagination), so a client can neither alter it nor carry it to another list."""

from __future__ import annotations

from typing import Any

from connector.errors import InvalidInput
from connector.receivables.common import Page
from web.api.pagination import PageRequest, encode_cursor


def service_cursor(page: PageRequest) -> str | None:
    """The service's cursor the API cursor carries (None on the first page)."""
    if page.position is not None and not isinstance(page.position, str):
        raise InvalidInput("the cursor belongs to another list", "cursor")
    return page.position


def service_page(found: Page[Any], page: PageRequest) -> dict[str, Any]:
    """`{"items": [...], "next_cursor": ...}` of a service page (items dumped by the response schema)."""
    return {
        "items": list(found.items),
        "next_cursor": encode_cursor(found.next_cursor, page.scope) if found.next_cursor else None,
    }

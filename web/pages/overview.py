"""The overview screen (`/orgs/<org_id>/`): every client the member may see in one table.

Receivables, the overdue part and the aging buckets per currency, DSO and its trend, what waits to go out in the
next 7 days, what needs a person and the sync's health in words (connector.receivables.overview). Sorted,
filtered (name, health, currency) and paged on the server through the query string; totals per currency of the
clients the filters keep. Owners and accountants connect clients here and reconnect dead grants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from flask import Blueprint, current_app, g, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from connector.domain.model import Role
from connector.receivables.invoices import BUCKETS
from connector.receivables.overview import (
    HEALTH_FILTERS,
    NEXT_DAYS,
    SORTS,
    TREND_DAYS,
    ClientOverview,
    OverviewQuery,
    arrange,
    currencies,
    overview,
    totals,
)
from web.extensions import services
from web.home import provider_label

bp = Blueprint("overview_page", __name__)

PAGE_SIZE = 50
MAX_PAGE = 10_000
MAX_SEARCH = 100
BUCKET_LABELS = {"current": "Current", "1-30": "1\u201330", "31-60": "31\u201360", "61-90": "61\u201390", "90+": "90+"}
# Columns people sort by and the direction a first click sorts in (money and counts: largest first).
FIRST_DIRECTION = {
    "name": "asc",
    "receivables": "desc",
    "overdue": "desc",
    "dso": "desc",
    "next": "desc",
    "exceptions": "desc",
    "health": "asc",
}
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class Sorter:
    """One sortable column heading: its link, and whether (and how) the table is sorted by it."""

    key: str
    label: str
    href: str
    direction: str  # "ascending" | "descending" | "" (aria-sort)


def read_query(args: MultiDict[str, str]) -> OverviewQuery:
    """The overview's query string as an OverviewQuery; anything unexpected is ignored (the default applies)."""
    search = (args.get("q") or "").strip()[:MAX_SEARCH]
    health = args.get("health") or ""
    currency = (args.get("currency") or "").strip().upper()
    sort = args.get("sort") or "name"
    sort = sort if sort in SORTS else "name"
    direction = args.get("dir") or FIRST_DIRECTION[sort]
    return OverviewQuery(
        search=search,
        health=health if health in HEALTH_FILTERS else "",
        currency=currency if _CURRENCY.match(currency) else "",
        sort=sort,
        descending=direction == "desc",
    )


def read_page(args: MultiDict[str, str]) -> int:
    """The page number asked for (1 when absent or not a sensible number)."""
    raw = args.get("page") or "1"
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= MAX_PAGE else 1


def _params(query: OverviewQuery, **changes: Any) -> dict[str, Any]:
    """The query string of `query` (with `changes`), leaving out what is at its default."""
    direction = "desc" if query.descending else "asc"
    params: dict[str, Any] = {
        "q": query.search,
        "health": query.health,
        "currency": query.currency,
        "sort": query.sort if query.sort != "name" else "",
        "dir": direction if direction != FIRST_DIRECTION.get(query.sort, "asc") else "",
    }
    params.update(changes)
    return {key: value for key, value in params.items() if value not in ("", None, 1)}


def _url(query: OverviewQuery, **changes: Any) -> str:
    return url_for("overview_page.index", org_id=g.organization.id, **_params(query, **changes))


def sorters(query: OverviewQuery) -> dict[str, Sorter]:
    """Each sortable column's heading link: a click sorts by it, a second click turns the order around."""
    labels = {
        "name": "Client",
        "receivables": "Receivables",
        "overdue": "Overdue",
        "dso": "DSO",
        "next": f"Next {NEXT_DAYS} days",
        "exceptions": "Needs a person",
        "health": "Sync",
    }
    found = {}
    for key, label in labels.items():
        current = query.sort == key
        if current:
            flipped = replace(query, descending=not query.descending)
            href = _url(flipped, page="")
            direction = "descending" if query.descending else "ascending"
        else:
            href = _url(replace(query, sort=key, descending=FIRST_DIRECTION[key] == "desc"), page="")
            direction = ""
        found[key] = Sorter(key, label, href, direction)
    return found


def shown_money(row: ClientOverview, query: OverviewQuery) -> tuple[Any, ...]:
    """The currencies a row shows: the one filtered on, else all of the client's (its DSO currency first)."""
    if query.currency:
        figures = row.figures_in(query.currency)
        return (figures,) if figures is not None else ()
    return row.money


@bp.get("/orgs/<int:org_id>/")
def index(org_id: int) -> ResponseReturnValue:
    """The organization's overview (membership already checked by web.access)."""
    found = services()
    query = read_query(request.args)
    every = overview(found.store, org_id, found.clock.now(), connection_ids=g.member_scope.visible_connection_ids())
    rows = arrange(every, query)
    page = read_page(request.args)
    last_page = max(1, -(-len(rows) // PAGE_SIZE))
    page = min(page, last_page)
    shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    registry = found.registry
    keys = registry.keys()
    filtered = bool(query.search or query.health or query.currency)
    return render_template(
        "overview/index.html",
        rows=shown,
        count=len(rows),
        every_count=len(every),
        first=(page - 1) * PAGE_SIZE + 1,
        last=(page - 1) * PAGE_SIZE + len(shown),
        totals=[total for total in totals(rows) if not query.currency or total.currency == query.currency],
        currencies=currencies(every),
        query=query,
        filtered=filtered,
        health_filters=[(key, label) for key, (label, _states) in HEALTH_FILTERS.items()],
        sorters=sorters(query),
        prev_url=_url(query, page=page - 1) if page > 1 else "",
        next_url=_url(query, page=page + 1) if page < last_page else "",
        clear_url=url_for("overview_page.index", org_id=org_id),
        buckets=[(name, BUCKET_LABELS[name]) for name in BUCKETS],
        next_days=NEXT_DAYS,
        trend_days=TREND_DAYS,
        shown_money=shown_money,
        provider_label=provider_label,
        providers=[(key, registry.spec(key).display_name) for key in keys],
        configured=set(keys),
        can_connect=g.role in (Role.OWNER, Role.ACCOUNTANT),
        inbox="inbox_page.index" in current_app.view_functions,  # what needs a person links there when served
    )

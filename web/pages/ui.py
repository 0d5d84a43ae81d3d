"""What every page shares: the navigation, Jinja filters for money, days and instants, and the page size.

Money is formatted by Babel for its currency (never mixed with another currency), rounded half-up to the
currency's minor unit; days are calendar dates as the ledger dates them; instants are shown in words relative
to Nudge's clock ("3 min ago") with the exact time in a tooltip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Flask, current_app, g, request, url_for
from markupsafe import Markup, escape

from connector.domain.money import Money
from connector.mail.rendering import format_money
from connector.receivables.inbox import open_count
from web.extensions import services

UI_LOCALE = "en_US"
PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class NavItem:
    """One entry of the organization's navigation bar."""

    label: str
    endpoint: str
    count: int | None = None

    @property
    def href(self) -> str:
        """The entry's URL in the current organization."""
        return url_for(self.endpoint, org_id=g.organization.id)

    @property
    def current(self) -> bool:
        """Whether the request is on this entry's blueprint (for aria-current)."""
        return (request.blueprint or "") == self.endpoint.split(".", 1)[0]


NAV = (
    ("Overview", "overview_page.index"),
    ("Inbox", "inbox_page.index"),
    ("Cadences", "cadences_page.index"),
    ("Templates", "email_templates_page.index"),
    ("Settings", "settings_page.index"),
    ("Team", "team_page.index"),
)


def nav_items() -> list[NavItem]:
    """The organization's navigation: the screens this app serves, in order (none outside an organization)."""
    if getattr(g, "organization", None) is None:
        return []
    counts = nav_counts()
    return [
        NavItem(label, endpoint, counts.get(endpoint))
        for label, endpoint in NAV
        if endpoint in current_app.view_functions
    ]


def nav_counts() -> dict[str, int]:
    """Counts shown next to navigation entries (the inbox's open items), by endpoint: `g.nav_counts`, filled
    once per request with one count statement for the member's clients."""
    if "nav_counts" not in g:
        scope = g.get("member_scope")
        with services().store.unit_of_work() as uow:
            g.nav_counts = {
                "inbox_page.index": open_count(
                    uow, g.organization.id, scope.visible_connection_ids() if scope is not None else None
                )
            }
    counts: dict[str, int] = g.nav_counts
    return counts


def money(amount: Any, currency: str) -> str:
    """`amount` in `currency` as people write it ("$1,234.50", "£80.00"); "" for no amount."""
    if amount is None or amount == "":
        return ""
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    return format_money(Money(value, currency), UI_LOCALE)


def day(value: date | datetime | None, form: str = "medium") -> str:
    """A calendar date as "Dec 1, 2026" (`form`: short | medium | long); "" for none."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.date()
    from connector.mail.rendering import format_day

    return format_day(value, UI_LOCALE, form)


def ago(value: datetime | None) -> Markup:
    """An instant in words relative to Nudge's clock ("3 min ago", "in 2 h"), the exact UTC time on hover."""
    if value is None:
        return Markup("never")
    instant = value if value.tzinfo else value.replace(tzinfo=UTC)
    now = services().clock.now()
    seconds = int((now - instant).total_seconds())
    words = _span(abs(seconds))
    text = "just now" if abs(seconds) < 60 else (f"{words} ago" if seconds > 0 else f"in {words}")
    exact = instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(instant.isoformat(), exact, escape(text))


def _span(seconds: int) -> str:
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def init_app(app: Flask) -> None:
    """Install the filters and the navigation on `app`'s Jinja environment."""
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["day"] = day
    app.jinja_env.filters["ago"] = ago

    @app.context_processor
    def navigation() -> dict[str, Any]:
        return {"nav_items": nav_items, "user_organizations": user_organizations}


def user_organizations() -> list[tuple[int, str]]:
    """(id, name) of every organization the signed-in user belongs to, for the organization switcher."""
    from flask_login import current_user  # type: ignore[import-untyped, unused-ignore]

    if not current_user.is_authenticated or getattr(current_user, "user_id", None) is None:
        return []
    with services().store.unit_of_work() as uow:
        return [(org.id, org.name) for org, _role in uow.organizations.for_user(current_user.user_id)]

"""The client screen (`/orgs/<org_id>/clients/<connection_id>/`): one client's receivables at a glance.

Its figures (the overview's line: receivables, overdue, DSO), an aging chart per currency, DSO week by week,
money collected per week, recovery per cadence step (which step preceded each payment:
connector.receivables.reports.recovery), what goes out in the next 7 days (queued in the outbox, then the
planner's forecast if nobody pays) and the recent activity; links to the client's invoices, its settings and its
inbox; Disconnect… for owners (the confirmation page of web/connections.py).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from flask import Blueprint, abort, current_app, g, render_template, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from connector.domain.fees import ReferenceRates
from connector.domain.model import ConnectionStatus, Role
from connector.outbox.attribution import NO_STEP
from connector.receivables import client_figures, reports
from connector.receivables.client_figures import UPCOMING_DAYS, WEEKS, Collected, DsoPoint
from connector.receivables.invoices import BUCKETS
from connector.receivables.overview import TREND_DAYS, ClientOverview, overview
from web.extensions import services
from web.home import provider_label
from web.pages.charts import Bar, Point, bar_chart, hbar_chart, line_chart
from web.pages.overview import BUCKET_LABELS
from web.pages.ui import money

bp = Blueprint("clients_page", __name__)

RECOVERY_DAYS = 90
ACTIVITY_LIMIT = 12
UPCOMING_SHOWN = 25
BUCKET_CLASSES = {"current": "b-current", "1-30": "b-1-30", "31-60": "b-31-60", "61-90": "b-61-90", "90+": "b-90-plus"}
# The client's own pages built by the other screens, linked when this app serves them (docs/pages/README.md).
SETTINGS_RULE = "/orgs/<int:org_id>/clients/<int:connection_id>/settings"


def _short_day(value: date) -> str:
    return f"{value.day} {value:%b}"


def aging_chart(figures: Any) -> Markup:
    """Bars per aging bucket of one currency."""
    bars = [
        Bar(
            BUCKET_LABELS[name],
            figures.bucket(name).amount,
            money(figures.bucket(name).amount, figures.currency),
            BUCKET_CLASSES[name],
        )
        for name in BUCKETS
    ]
    return bar_chart(
        f"Aging in {figures.currency}",
        bars,
        description=(
            f"Open receivables in {figures.currency} by days past due: "
            f"{money(figures.receivables.amount, figures.currency)} in all, "
            f"{money(figures.overdue.amount, figures.currency)} overdue."
        ),
        headings=("Days past due", f"Open ({figures.currency})"),
    )


def dso_chart(points: tuple[DsoPoint, ...], currency: str) -> Markup:
    """DSO at the end of each week, a line."""
    shown = [
        Point(_short_day(point.day), point.days, f"{point.days} days" if point.days is not None else "no sales")
        for point in points
    ]
    known = [point.days for point in points if point.days is not None]
    words = (
        f"From {known[0]} to {known[-1]} days over {len(points) - 1} weeks, in {currency}."
        if len(known) >= 2
        else f"Not enough sales in {currency} over the period to draw a trend."
    )
    return line_chart(f"DSO week by week ({currency})", shown, description=words, headings=("Week ending", "DSO"))


def collected_chart(series: Collected) -> Markup:
    """Money collected per week in one currency, bars."""
    bars = [
        Bar(_short_day(week.week), week.amount.amount, money(week.amount.amount, series.currency))
        for week in series.weeks
    ]
    return bar_chart(
        f"Collected per week in {series.currency}",
        bars,
        description=(
            f"{money(series.total.amount, series.currency)} received over the last {len(series.weeks)} weeks "
            f"(weeks starting on Monday)."
        ),
        headings=("Week starting", f"Collected ({series.currency})"),
    )


def step_label(step: str, *, short: bool = False) -> str:
    """A cadence step's name as people read it: the step's id, a payment plan's reminder by its offset from the
    installment's date ("installment (-3 d)"), and payments no reminder preceded."""
    if step == NO_STEP:
        return "no reminder" if short else "No reminder before the payment"
    if step.startswith("plan installment "):
        offset = step.removeprefix("plan installment ")
        return f"installment ({offset} d)" if short else f"Payment plan installment ({offset} days)"
    return step


def recovery_chart(steps: list[reports.StepRow]) -> Markup | None:
    """Payments per cadence step that preceded them (bars), or None when nothing was paid."""
    if not any(step.payments for step in steps):
        return None
    bars = [
        Bar(step_label(step.step, short=True), Decimal(step.payments), f"{step.payments} payments") for step in steps
    ]
    return hbar_chart(
        "Payments by the step before them",
        bars,
        description=f"Which reminder step last preceded each payment over the last {RECOVERY_DAYS} days.",
        headings=("Step", "Payments"),
    )


def _link(endpoint_names: tuple[str, ...], **values: Any) -> str:
    for endpoint in endpoint_names:
        if endpoint in current_app.view_functions:
            return url_for(endpoint, **values)
    return ""


def _page(rule: str, **values: Any) -> str:
    """The URL of the page served at `rule` (whatever its endpoint's name), or "" when this app has none."""
    for found in current_app.url_map.iter_rules():
        if found.rule == rule and "GET" in (found.methods or ()):
            return url_for(found.endpoint, **values)
    return ""


@bp.get("/orgs/<int:org_id>/clients/<int:connection_id>/")
def index(org_id: int, connection_id: int) -> ResponseReturnValue:
    """The client's page (membership and client scope already checked by web.access)."""
    found = services()
    settings = found.settings
    now = found.clock.now()
    visible = g.member_scope.visible_connection_ids()
    lines = overview(found.store, org_id, now, connection_ids=[connection_id])
    if not lines:
        abort(404)
    row: ClientOverview = lines[0]
    trend = client_figures.dso_trend(
        found.store, org_id, connection_id, row.dso.currency, row.as_of, connection_ids=visible
    )
    collected = client_figures.collected_per_week(
        found.store, org_id, connection_id, row.as_of, connection_ids=visible, currencies=[row.dso.currency]
    )
    received = [series for series in collected if series.total.amount]  # the client's own currency first
    steps = reports.recovery(
        found.store,
        org_id,
        row.as_of - timedelta(days=RECOVERY_DAYS),
        connection_ids=visible,
        connection_id=connection_id,
    )
    upcoming = client_figures.upcoming(
        found.store,
        org_id,
        connection_id,
        now,
        settings.rules,
        connection_ids=visible,
        rates=ReferenceRates(settings.statutory.uk_base_rate, settings.statutory.eu_reference_rate),
    )
    activity = client_figures.recent_activity(
        found.store, org_id, connection_id, connection_ids=visible, limit=ACTIVITY_LIMIT
    )
    invoices_url = _link(("invoices_page.index",), org_id=org_id, connection_id=connection_id) or (
        f"/orgs/{org_id}/clients/{connection_id}/invoices"
    )
    return render_template(
        "clients/index.html",
        row=row,
        provider_name=provider_label(row.provider),
        aging_chart=aging_chart(row.money[0]) if row.money else None,
        other_money=row.money[1:],
        bucket_labels=[(name, BUCKET_LABELS[name]) for name in BUCKETS],
        dso_chart=dso_chart(trend, row.dso.currency) if trend else None,
        collected_chart=collected_chart(received[0]) if received else None,
        other_collected=received[1:],
        steps=steps,
        step_label=step_label,
        recovery_chart=recovery_chart(steps),
        recovery_days=RECOVERY_DAYS,
        upcoming=upcoming,
        upcoming_shown=UPCOMING_SHOWN,
        upcoming_days=UPCOMING_DAYS,
        activity=activity,
        weeks=WEEKS,
        trend_days=TREND_DAYS,
        invoices_url=invoices_url,
        settings_url=_page(SETTINGS_RULE, org_id=org_id, connection_id=connection_id),
        inbox_url=_link(("inbox_page.index",), org_id=org_id, client=connection_id),
        overview_url=url_for("overview_page.index", org_id=org_id),
        can_connect=g.role in (Role.OWNER, Role.ACCOUNTANT),
        can_disconnect=g.role is Role.OWNER
        and row.status != ConnectionStatus.DISCONNECTED.value
        and row.provider in found.registry,
        configured=row.provider in found.registry,
    )

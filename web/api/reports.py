"""Reports: GET /api/v1/orgs/{org_id}/reports/aging | dso | recovery over the clients you may see. Any member."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from connector.domain.dso import DEFAULT_PERIOD_DAYS
from connector.receivables import reports
from connector.receivables.common import ROW_ID_MAX
from web.api import context
from web.api.receivables_schemas import AgingRowSchema, DsoRowSchema, StepRowSchema, report_schema
from web.extensions import services

blp = Blueprint("reports", __name__, description="Aging, DSO and recovery per cadence step")

RECOVERY_DAYS = 90


class ClientArgsSchema(ma.Schema):
    """One client only (optional)."""

    client_id = ma.fields.Integer(load_default=None, validate=ma.validate.Range(min=1, max=ROW_ID_MAX))


class DsoArgsSchema(ClientArgsSchema):
    """The DSO period."""

    period_days = ma.fields.Integer(
        load_default=DEFAULT_PERIOD_DAYS, validate=ma.validate.Range(min=1, max=reports.MAX_PERIOD_DAYS)
    )


class RecoveryArgsSchema(ClientArgsSchema):
    """The period: payments and reminders from `since` (default: 90 days ago)."""

    since = ma.fields.Date(load_default=None, metadata={"description": f"default: {RECOVERY_DAYS} days ago"})


@blp.get("/orgs/<int:org_id>/reports/aging")
@blp.arguments(ClientArgsSchema, location="query")
@blp.response(200, report_schema(AgingRowSchema, "AgingReport"))
def aging(args: dict[str, Any], org_id: int) -> dict[str, Any]:
    """Open receivables per client and currency in aging buckets (current, 1-30, 31-60, 61-90, 90+ days)."""
    rows = reports.aging(
        services().store,
        org_id,
        services().clock.now(),
        connection_ids=context.visible_connection_ids(org_id),
        connection_id=args["client_id"],
    )
    return {"items": rows}


@blp.get("/orgs/<int:org_id>/reports/dso")
@blp.arguments(DsoArgsSchema, location="query")
@blp.response(200, report_schema(DsoRowSchema, "DsoReport"))
def dso(args: dict[str, Any], org_id: int) -> dict[str, Any]:
    """Days sales outstanding per client, in its home currency."""
    rows = reports.dso(
        services().store,
        org_id,
        services().clock.now(),
        connection_ids=context.visible_connection_ids(org_id),
        connection_id=args["client_id"],
        period_days=args["period_days"],
    )
    return {"items": rows}


@blp.get("/orgs/<int:org_id>/reports/recovery")
@blp.arguments(RecoveryArgsSchema, location="query")
@blp.response(200, report_schema(StepRowSchema, "RecoveryReport"))
def recovery(args: dict[str, Any], org_id: int) -> dict[str, Any]:
    """Per cadence step since `since`: reminders sent, invoices paid within 7 days after one, amount recovered."""
    since: date = args["since"] or services().clock.now().date() - timedelta(days=RECOVERY_DAYS)
    rows = reports.recovery(
        services().store,
        org_id,
        since,
        connection_ids=context.visible_connection_ids(org_id),
        connection_id=args["client_id"],
    )
    return {"items": rows}

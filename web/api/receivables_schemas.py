"""Marshmallow schemas of the receivables resources (invoices, actions, tasks, activity, reports).

Responses are dumped straight from connector.receivables' dataclasses. Amounts are strings with their
currency (`{"amount": "120.50", "currency": "GBP"}`), never floats; every field that may be null says so.
"""

from __future__ import annotations

import marshmallow as ma

from connector.domain.actions import ActionKind
from connector.domain.model import ActionState, InvoiceStatus
from connector.receivables.invoices import BUCKETS
from connector.receivables.tasks import STATES as TASK_STATES

AMOUNT_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"


class MoneySchema(ma.Schema):
    """An amount in one currency: the decimal amount as a string (never a float) and the ISO 4217 code."""

    amount = ma.fields.String(
        required=True, validate=ma.validate.Regexp(AMOUNT_PATTERN), metadata={"description": 'e.g. "120.50"'}
    )
    currency = ma.fields.String(required=True, validate=ma.validate.Length(equal=3))


def _money(**kwargs: object) -> ma.fields.Nested:
    return ma.fields.Nested(MoneySchema, required=True, **kwargs)  # type: ignore[arg-type]


class InvoiceSchema(ma.Schema):
    """An invoice as listed: internal id (for URLs) and the ledger's id, who owes what, when due, how late."""

    id = ma.fields.Integer(required=True, metadata={"description": "internal id"})
    client_id = ma.fields.Integer(required=True, attribute="connection_id")
    client = ma.fields.String(required=True, metadata={"description": "the client's name"})
    external_id = ma.fields.String(required=True, metadata={"description": "the ledger's id"})
    number = ma.fields.String(required=True)
    customer_id = ma.fields.Integer(required=True, allow_none=True, metadata={"description": "internal id"})
    customer_external_id = ma.fields.String(required=True)
    customer_name = ma.fields.String(required=True)
    total = _money()
    balance = _money()
    issue_date = ma.fields.Date(required=True, allow_none=True)
    due_date = ma.fields.Date(required=True, allow_none=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf([s.value for s in InvoiceStatus]))
    days_past_due = ma.fields.Integer(
        required=True, allow_none=True, metadata={"description": "on the client's calendar; null without a due date"}
    )
    aging = ma.fields.String(required=True, validate=ma.validate.OneOf(BUCKETS))
    created_by_nudge = ma.fields.Boolean(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)
    has_plan = ma.fields.Boolean(required=True, metadata={"description": "an active payment plan"})
    disputed = ma.fields.Boolean(required=True, metadata={"description": "the invoice or its customer is in dispute"})
    paused_until = ma.fields.Date(
        required=True, allow_none=True, metadata={"description": "chasing paused until then (invoice or customer)"}
    )
    excluded = ma.fields.Boolean(required=True, metadata={"description": "the invoice or its customer is excluded"})


class CustomerSchema(ma.Schema):
    """The invoice's customer and the overrides people set."""

    id = ma.fields.Integer(required=True)
    external_id = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    emails = ma.fields.List(ma.fields.String(), required=True)
    cc_emails = ma.fields.List(ma.fields.String(), required=True)
    paused_until = ma.fields.Date(required=True, allow_none=True)
    excluded = ma.fields.Boolean(required=True)
    dispute = ma.fields.Boolean(required=True)
    dispute_reason = ma.fields.String(required=True)
    promise_to_pay_until = ma.fields.Date(required=True, allow_none=True)


class PaymentSchema(ma.Schema):
    """Money one ledger object applied to the invoice."""

    id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True)
    external_id = ma.fields.String(required=True)
    amount = _money()
    paid_on = ma.fields.Date(required=True)
    voided = ma.fields.Boolean(required=True)


class ActionSchema(ma.Schema):
    """An outbox action: what, about which invoices, to whom, when, in which state."""

    id = ma.fields.Integer(required=True)
    key = ma.fields.String(required=True, metadata={"description": "the idempotency key"})
    client_id = ma.fields.Integer(required=True, attribute="connection_id")
    client = ma.fields.String(required=True)
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf([k.value for k in ActionKind]))
    step = ma.fields.String(required=True)
    state = ma.fields.String(required=True, validate=ma.validate.OneOf([s.value for s in ActionState]))
    scheduled_at = ma.fields.AwareDateTime(required=True)
    local_date = ma.fields.Date(required=True, allow_none=True)
    customer_external_id = ma.fields.String(required=True)
    customer_name = ma.fields.String(required=True)
    invoice_external_ids = ma.fields.List(ma.fields.String(), required=True)
    recipients = ma.fields.List(ma.fields.String(), required=True)
    template = ma.fields.String(required=True)
    amount = ma.fields.Nested(MoneySchema, required=True, allow_none=True)
    hold_reason = ma.fields.String(required=True)
    rule = ma.fields.String(required=True)
    text = ma.fields.String(required=True)
    attempts = ma.fields.Integer(required=True)
    external_ref = ma.fields.String(
        required=True, metadata={"description": "the ledger's id of what was written, or the email's Message-ID"}
    )
    error = ma.fields.String(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)


class TimelineEntrySchema(ma.Schema):
    """One thing that happened to an invoice; `type` says where it comes from."""

    at = ma.fields.AwareDateTime(required=True)
    type = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(["action", "hold", "payment", "task", "activity", "audit", "reply"]),
    )
    kind = ma.fields.String(required=True)
    summary = ma.fields.String(required=True)
    actor = ma.fields.String(required=True)
    ref = ma.fields.String(required=True)
    detail = ma.fields.Dict(keys=ma.fields.String(), required=True)
    words = ma.fields.String(required=True, metadata={"description": "the entry in plain words"})
    email_id = ma.fields.Integer(
        required=True, allow_none=True, metadata={"description": "the kept copy of a reminder's email (as sent)"}
    )
    email_subject = ma.fields.String(required=True)
    ledger_url = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "opens what was written in the provider's web app"}
    )
    repeats = ma.fields.String(
        required=True, metadata={"description": "non-empty: another entry already tells this event"}
    )


class OverrideSchema(ma.Schema):
    """What people decided about the invoice itself."""

    paused_until = ma.fields.Date(required=True, allow_none=True)
    excluded = ma.fields.Boolean(required=True)
    dispute = ma.fields.Boolean(required=True)
    dispute_reason = ma.fields.String(required=True)
    agreed_due_date = ma.fields.Date(required=True, allow_none=True)


class InstallmentLineSchema(ma.Schema):
    """One installment of a payment plan."""

    due_date = ma.fields.Date(required=True)
    amount = _money()
    paid_at = ma.fields.AwareDateTime(required=True, allow_none=True)


class PlanSummarySchema(ma.Schema):
    """The invoice's active payment plan, else its latest."""

    id = ma.fields.Integer(required=True)
    state = ma.fields.String(required=True)
    policy = ma.fields.String(required=True)
    grace_days = ma.fields.Integer(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    installments = ma.fields.List(ma.fields.Nested(InstallmentLineSchema), required=True)


class InvoiceDetailSchema(ma.Schema):
    """An invoice with its customer, payments, actions and timeline (newest first)."""

    invoice = ma.fields.Nested(InvoiceSchema, required=True)
    customer = ma.fields.Nested(CustomerSchema, required=True, allow_none=True)
    payments = ma.fields.List(ma.fields.Nested(PaymentSchema), required=True)
    actions = ma.fields.List(ma.fields.Nested(ActionSchema), required=True)
    timeline = ma.fields.List(ma.fields.Nested(TimelineEntrySchema), required=True)
    override = ma.fields.Nested(OverrideSchema, required=True, allow_none=True)
    plan = ma.fields.Nested(PlanSummarySchema, required=True, allow_none=True)
    first_seen_at = ma.fields.AwareDateTime(required=True, allow_none=True)
    ledger_name = ma.fields.String(required=True)
    ledger_url = ma.fields.String(required=True, allow_none=True)


class TaskSchema(ma.Schema):
    """A person's task: phone a customer (call) or take over a debt (handoff)."""

    id = ma.fields.Integer(required=True)
    client_id = ma.fields.Integer(required=True, attribute="connection_id")
    client = ma.fields.String(required=True)
    kind = ma.fields.String(required=True)
    state = ma.fields.String(required=True, validate=ma.validate.OneOf(list(TASK_STATES)))
    due_on = ma.fields.Date(required=True)
    customer_name = ma.fields.String(required=True)
    invoices = ma.fields.List(ma.fields.String(), required=True, metadata={"description": "invoice numbers"})
    assignee_email = ma.fields.String(required=True)
    title = ma.fields.String(required=True)
    detail = ma.fields.String(required=True)
    record_in_ledger = ma.fields.Boolean(required=True)
    outcome = ma.fields.String(required=True)
    completed_by = ma.fields.String(required=True)
    completed_at = ma.fields.AwareDateTime(required=True, allow_none=True)


class ActivitySchema(ma.Schema):
    """One entry of the activity log."""

    id = ma.fields.Integer(required=True)
    at = ma.fields.AwareDateTime(required=True)
    kind = ma.fields.String(required=True)
    subject = ma.fields.String(required=True)
    actor = ma.fields.String(required=True)
    client_id = ma.fields.Integer(required=True, allow_none=True, attribute="connection_id")
    client = ma.fields.String(required=True)
    detail = ma.fields.Dict(keys=ma.fields.String(), required=True)


class AgingBucketSchema(ma.Schema):
    """One aging bucket: how many open invoices, how much is owed."""

    bucket = ma.fields.String(required=True, validate=ma.validate.OneOf(BUCKETS))
    count = ma.fields.Integer(required=True)
    balance = _money()


class AgingRowSchema(ma.Schema):
    """One client's open receivables in one currency, by aging bucket."""

    client_id = ma.fields.Integer(required=True, attribute="connection_id")
    client = ma.fields.String(required=True)
    currency = ma.fields.String(required=True)
    as_of = ma.fields.Date(required=True, metadata={"description": "the client's local date"})
    buckets = ma.fields.List(ma.fields.Nested(AgingBucketSchema), required=True)
    total = _money()
    count = ma.fields.Integer(required=True)


class DsoRowSchema(ma.Schema):
    """One client's days sales outstanding in its home currency."""

    client_id = ma.fields.Integer(required=True, attribute="connection_id")
    client = ma.fields.String(required=True)
    currency = ma.fields.String(required=True, metadata={"description": "the home currency; empty while unknown"})
    period_days = ma.fields.Integer(required=True)
    period_end = ma.fields.Date(required=True)
    receivables = ma.fields.Nested(MoneySchema, required=True, allow_none=True)
    sales = ma.fields.Nested(MoneySchema, required=True, allow_none=True)
    dso = ma.fields.String(
        required=True,
        allow_none=True,
        validate=ma.validate.Regexp(AMOUNT_PATTERN),
        metadata={"description": "days, to a tenth (a decimal string); null while the home currency is unknown"},
    )
    other_currency_invoices = ma.fields.Integer(required=True)
    note = ma.fields.String(required=True)


class StepRowSchema(ma.Schema):
    """One cadence step's results over the period."""

    step = ma.fields.String(required=True, metadata={"description": "(none): payments no reminder preceded"})
    reminders_sent = ma.fields.Integer(required=True)
    paid_within_7_days = ma.fields.Integer(required=True)
    payments = ma.fields.Integer(required=True)
    recovered = ma.fields.List(ma.fields.Nested(MoneySchema), required=True, metadata={"description": "per currency"})


def report_schema(row: type[ma.Schema], name: str) -> type[ma.Schema]:
    """`{"items": [row]}` named `name` in the OpenAPI document."""
    return ma.Schema.from_dict({"items": ma.fields.List(ma.fields.Nested(row), required=True)}, name=name)


ACTION_STATES = [state.value for state in ActionState]
ACTION_KINDS = [kind.value for kind in ActionKind]
INVOICE_STATUSES = [status.value for status in InvoiceStatus]

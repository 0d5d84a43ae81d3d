"""An invoice's override and payment plans (connector.library.overrides, connector.library.payment_plans).
Invoices are named by their row id; the ledger's id is the field `invoice_external_id`. Every member reads;
owners and accountants change.

    GET/PUT/DELETE /api/v1/orgs/{org_id}/clients/{connection_id}/invoices/{invoice_id}/override
    GET/POST       /api/v1/orgs/{org_id}/clients/{connection_id}/invoices/{invoice_id}/payment-plans
    GET            .../invoices/{invoice_id}/payment-plans/proposal?count=&first=&every=
    POST           .../invoices/{invoice_id}/payment-plans/{plan_id}/cancel
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from connector.library import overrides, payment_plans
from connector.library.settings import InstallDefaults
from web.api import context
from web.extensions import services

blp = Blueprint("plans", __name__, description="Invoice overrides and payment plans")

INVOICE = "/orgs/<int:org_id>/clients/<int:connection_id>/invoices/<int:invoice_id>"


class InvoiceOverrideInputSchema(ma.Schema):
    """The whole override (PUT replaces it: a field left out goes back to its default)."""

    paused_until = ma.fields.Date(allow_none=True, metadata={"description": "nothing goes out before this date"})
    excluded = ma.fields.Boolean(metadata={"description": "never chased"})
    dispute = ma.fields.Boolean(metadata={"description": "no reminders or fees for this invoice while true"})
    dispute_reason = ma.fields.String(allow_none=True, metadata={"description": "required while disputed"})
    agreed_due_date = ma.fields.Date(
        allow_none=True,
        metadata={"description": "flexible terms: the cadence counts from this date; the ledger's is unchanged"},
    )


class InvoiceOverrideSchema(ma.Schema):
    """An invoice's override (`exists` false: none is set, the values are the defaults)."""

    invoice_id = ma.fields.Integer(required=True)
    connection_id = ma.fields.Integer(required=True)
    invoice_external_id = ma.fields.String(required=True)
    number = ma.fields.String(required=True)
    due_date = ma.fields.Date(required=True, allow_none=True, metadata={"description": "the ledger's"})
    exists = ma.fields.Boolean(required=True)
    paused_until = ma.fields.Date(required=True, allow_none=True)
    excluded = ma.fields.Boolean(required=True)
    dispute = ma.fields.Boolean(required=True)
    dispute_reason = ma.fields.String(required=True)
    agreed_due_date = ma.fields.Date(required=True, allow_none=True)
    updated_at = ma.fields.AwareDateTime(required=True, allow_none=True)


class InstallmentInputSchema(ma.Schema):
    """One installment: a local date and an amount as text, in the invoice's currency."""

    due_date = ma.fields.Date(required=True)
    amount = ma.fields.String(required=True, metadata={"description": 'e.g. "200.00"'})
    currency = ma.fields.String(metadata={"description": "optional; must be the invoice's"})


class PlanInputSchema(ma.Schema):
    """A new payment plan."""

    policy = ma.fields.String(required=True, metadata={"description": "a payment-plan policy of the library"})
    installments = ma.fields.List(ma.fields.Nested(InstallmentInputSchema), required=True)


class InstallmentSchema(ma.Schema):
    """One installment of a plan."""

    due_date = ma.fields.Date(required=True)
    amount = ma.fields.String(required=True)
    currency = ma.fields.String(required=True)
    paid_at = ma.fields.AwareDateTime(required=True, allow_none=True)


class PlanSchema(ma.Schema):
    """A payment plan of an invoice."""

    id = ma.fields.Integer(required=True)
    connection_id = ma.fields.Integer(required=True)
    invoice_id = ma.fields.Integer(required=True)
    invoice_external_id = ma.fields.String(required=True)
    state = ma.fields.String(required=True, metadata={"description": "active | kept | broken | cancelled"})
    policy = ma.fields.String(required=True)
    grace_days = ma.fields.Integer(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    total = ma.fields.String(required=True)
    currency = ma.fields.String(required=True)
    installments = ma.fields.List(ma.fields.Nested(InstallmentSchema), required=True)


class PlanListSchema(ma.Schema):
    """Every plan of an invoice, newest first."""

    items = ma.fields.List(ma.fields.Nested(PlanSchema), required=True)


class ProposalArgsSchema(ma.Schema):
    """How to split the balance."""

    count = ma.fields.Integer(required=True, metadata={"description": "number of installments, 1..120"})
    first = ma.fields.Date(required=True, metadata={"description": "the first installment's date"})
    every = ma.fields.String(load_default="month", metadata={"description": "week | fortnight | month"})


class ProposalSchema(ma.Schema):
    """Equal installments of the current balance, the remainder on the last (nothing is saved)."""

    invoice_id = ma.fields.Integer(required=True)
    balance = ma.fields.String(required=True)
    currency = ma.fields.String(required=True)
    installments = ma.fields.List(ma.fields.Nested(InstallmentSchema), required=True)


def _override_body(view: overrides.InvoiceOverrideView) -> dict[str, Any]:
    return {
        "invoice_id": view.invoice_id,
        "connection_id": view.connection_id,
        "invoice_external_id": view.invoice_external_id,
        "number": view.number,
        "due_date": view.due_date,
        "exists": view.exists,
        **view.values(),
        "updated_at": view.updated_at,
    }


def _installment(item: payment_plans.InstallmentView) -> dict[str, Any]:
    return {"due_date": item.due_date, "amount": item.amount, "currency": item.currency, "paid_at": item.paid_at}


def _plan_body(view: payment_plans.PlanView) -> dict[str, Any]:
    return {
        "id": view.id,
        "connection_id": view.connection_id,
        "invoice_id": view.invoice_id,
        "invoice_external_id": view.invoice_external_id,
        "state": view.state,
        "policy": view.policy,
        "grace_days": view.grace_days,
        "created_at": view.created_at,
        "total": view.total,
        "currency": view.currency,
        "installments": [_installment(item) for item in view.installments],
    }


@blp.get(f"{INVOICE}/override")
@blp.response(200, InvoiceOverrideSchema)
@blp.alt_response(404, response="NOT_FOUND")
def get_override(org_id: int, connection_id: int, invoice_id: int) -> dict[str, Any]:
    """The invoice's override (defaults with `exists` false when none is set)."""
    context.connection_or_404(org_id, connection_id)
    with services().store.unit_of_work() as uow:
        return _override_body(overrides.invoice_override(uow, org_id, connection_id, invoice_id))


@blp.put(f"{INVOICE}/override")
@context.require_role(*context.WRITERS)
@blp.arguments(InvoiceOverrideInputSchema)
@blp.response(200, InvoiceOverrideSchema)
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
def put_override(values: dict[str, Any], org_id: int, connection_id: int, invoice_id: int) -> dict[str, Any]:
    """Set the invoice's whole override. Audited and on the invoice's timeline."""
    context.connection_or_404(org_id, connection_id)
    found = services()
    view = overrides.update_invoice_override(
        found.store, org_id, connection_id, invoice_id, values, context.actor(), found.clock.now(), replace=True
    )
    return _override_body(view)


@blp.delete(f"{INVOICE}/override")
@context.require_role(*context.WRITERS)
@blp.response(200, InvoiceOverrideSchema)
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
def delete_override(org_id: int, connection_id: int, invoice_id: int) -> dict[str, Any]:
    """Remove the invoice's override (the cadence treats it as the ledger says again)."""
    context.connection_or_404(org_id, connection_id)
    found = services()
    view = overrides.clear_invoice_override(
        found.store, org_id, connection_id, invoice_id, context.actor(), found.clock.now()
    )
    return _override_body(view)


@blp.get(f"{INVOICE}/payment-plans")
@blp.response(200, PlanListSchema)
@blp.alt_response(404, response="NOT_FOUND")
def list_plans(org_id: int, connection_id: int, invoice_id: int) -> dict[str, Any]:
    """Every payment plan of the invoice, newest first."""
    context.connection_or_404(org_id, connection_id)
    with services().store.unit_of_work() as uow:
        return {"items": [_plan_body(v) for v in payment_plans.list_plans(uow, org_id, connection_id, invoice_id)]}


@blp.post(f"{INVOICE}/payment-plans")
@context.require_role(*context.WRITERS)
@blp.arguments(PlanInputSchema)
@blp.response(201, PlanSchema)
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def create_plan(body: dict[str, Any], org_id: int, connection_id: int, invoice_id: int) -> dict[str, Any]:
    """Agree a payment plan: installments adding up to the invoice's current balance exactly."""
    context.connection_or_404(org_id, connection_id)
    found = services()
    view = payment_plans.create_plan(
        found.store,
        org_id,
        connection_id,
        invoice_id,
        installments=body["installments"],
        policy=body["policy"],
        actor=context.actor(),
        now=found.clock.now(),
        defaults=InstallDefaults.of(found.settings),
    )
    return _plan_body(view)


@blp.get(f"{INVOICE}/payment-plans/proposal")
@blp.arguments(ProposalArgsSchema, location="query")
@blp.response(200, ProposalSchema)
@blp.alt_response(404, response="NOT_FOUND")
def propose_plan(args: dict[str, Any], org_id: int, connection_id: int, invoice_id: int) -> dict[str, Any]:
    """A proposal to start from: the current balance in equal installments, the remainder on the last."""
    context.connection_or_404(org_id, connection_id)
    found = services()
    with found.store.unit_of_work() as uow:
        proposal = payment_plans.propose_plan(
            uow,
            org_id,
            connection_id,
            invoice_id,
            count=args["count"],
            first=args["first"],
            every=args["every"],
            now=found.clock.now(),
        )
    return {
        "invoice_id": proposal.invoice_id,
        "balance": proposal.balance,
        "currency": proposal.currency,
        "installments": [_installment(item) for item in proposal.installments],
    }


@blp.post(f"{INVOICE}/payment-plans/<int:plan_id>/cancel")
@context.require_role(*context.WRITERS)
@blp.response(200, PlanSchema)
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
def cancel_plan(org_id: int, connection_id: int, invoice_id: int, plan_id: int) -> dict[str, Any]:
    """Cancel an active or broken plan: the cadence chases the invoice's due date again."""
    context.connection_or_404(org_id, connection_id)
    found = services()
    view = payment_plans.cancel_plan(
        found.store, org_id, connection_id, invoice_id, plan_id, context.actor(), found.clock.now()
    )
    return _plan_body(view)

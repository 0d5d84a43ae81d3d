"""How outbox actions read in listings and timelines (shared by the invoice detail and the action listing)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from connector.domain.actions import Action
from connector.domain.money import Money
from connector.outbox.codec import action_from_json
from connector.storage.tables import Action as ActionRow


@dataclass(frozen=True)
class ActionView:
    """One outbox action as a person reads it: what, about which invoices, to whom, when, in which state."""

    id: int
    key: str
    connection_id: int
    client: str
    kind: str
    step: str
    state: str
    scheduled_at: datetime
    local_date: date | None
    customer_external_id: str
    customer_name: str
    invoice_external_ids: tuple[str, ...]
    recipients: tuple[str, ...]
    template: str
    amount: Money | None
    hold_reason: str
    rule: str
    text: str
    attempts: int
    external_ref: str  # the ledger's id of what was written (fee invoice, credit, note) or the email's Message-ID
    error: str
    updated_at: datetime


def decoded(row: ActionRow) -> Action | None:
    """The action a row's payload holds (None for a row planned before payloads were kept)."""
    return action_from_json(row.payload) if row.payload else None


def invoice_ids_of(row: ActionRow, action: Action | None) -> tuple[str, ...]:
    """Every invoice an action is about: a grouped reminder keeps them in its payload, not in its row."""
    if action is None:
        return (row.invoice_external_id,) if row.invoice_external_id else ()
    ids = dict.fromkeys([*action.invoice_external_ids, *(item.invoice_external_id for item in action.items)])
    return tuple(ids) or ((row.invoice_external_id,) if row.invoice_external_id else ())


def action_view(row: ActionRow, client: str) -> ActionView:
    """The view of one action row (the client's name given)."""
    action = decoded(row)
    template = ""
    if action is not None:
        template = action.template or (action.items[0].template if action.items and action.items[0].template else "")
    return ActionView(
        id=row.id,
        key=row.key,
        connection_id=row.connection_id,
        client=client,
        kind=row.kind,
        step=row.step,
        state=row.state,
        scheduled_at=row.scheduled_at,
        local_date=action.local_date if action is not None else None,
        customer_external_id=row.customer_external_id,
        customer_name=action.customer_name if action is not None else "",
        invoice_external_ids=invoice_ids_of(row, action),
        recipients=action.recipients if action is not None else (),
        template=template or "",
        amount=action.amount if action is not None else None,
        hold_reason=action.hold_reason.value if action is not None and action.hold_reason else "",
        rule=action.rule if action is not None else "",
        text=(action.text or "") if action is not None else "",
        attempts=row.attempts,
        external_ref=row.external_ref,
        error=row.error,
        updated_at=row.updated_at,
    )

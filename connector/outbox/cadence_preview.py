"""What an edited cadence would do on one client over the next days, before it is saved (the cadence editor's
live preview).

`preview_cadence` builds the proposed library in memory (the organization's current entries with the cadence's
body replaced: InvalidInput naming the field when it does not parse or fit together), then runs the planner
forward day by day on the chosen client exactly as `preview_connection` does. A client that follows another
cadence is shown as if it followed this one: its own cadence's steps are replaced by the proposed ones for the
preview (customers following a third cadence keep theirs). Nobody pays in the simulation; nothing is written.

The answer groups the actions by the customer's local day, with invoice numbers (not ledger ids) and the step
each came from, for a page to put into words.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from itertools import groupby
from typing import Any

from sqlalchemy import select

from connector.domain.actions import Action, ActionKind
from connector.domain.fees import ReferenceRates
from connector.domain.money import Money
from connector.domain.policy import PolicySet
from connector.domain.preview import preview
from connector.errors import ChangeRefused, InvalidInput, UnknownRecord
from connector.library.resolve import CADENCE, LibraryEntry, OrgLibrary, assemble, library_for
from connector.outbox.client import client_planning
from connector.outbox.planning import client_states, connection_settings
from connector.storage import Store
from connector.storage.tables import Connection, Invoice

DEFAULT_DAYS = 30
MAX_DAYS = 62
MAX_ID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class PreviewLine:
    """One thing that would happen: its kind (connector.domain.actions.ActionKind value), the customer, the
    invoice numbers, an amount (late fee, credit), the template of a reminder, the step, a note's or call task's
    text, why something is held, and whether it waits for a person's approval."""

    kind: str
    customer: str
    invoices: tuple[str, ...]
    step: str
    amount: Money | None = None
    template: str | None = None
    text: str | None = None
    hold_reason: str | None = None
    requires_approval: bool = False


@dataclass(frozen=True, slots=True)
class PreviewDay:
    """Everything planned for one local day, in the planner's order."""

    day: date
    lines: tuple[PreviewLine, ...]


@dataclass(frozen=True, slots=True)
class CadencePreview:
    """The proposed cadence run forward on one client for `days` days from `start`.

    `follows`: the client follows this cadence itself (else `followed` names its own, and the preview shows it
    as if it followed this one)."""

    connection_id: int
    client: str
    cadence: str
    follows: bool
    followed: str
    start: datetime
    days: int
    plan: tuple[PreviewDay, ...]

    @property
    def count(self) -> int:
        """How many things would happen over the preview's days."""
        return sum(len(day.lines) for day in self.plan)


def preview_cadence(
    store: Store,
    organization_id: int,
    starter_rules: PolicySet,
    item_id: int,
    body: Mapping[str, Any],
    connection_id: int,
    now: datetime,
    days: int = DEFAULT_DAYS,
    *,
    rates: ReferenceRates | None = None,
    default_cadence: str = "",
    connection_ids: Collection[int] | None = None,
) -> CadencePreview:
    """What cadence `item_id` with `body` would do on client `connection_id` over `days` days from `now`.

    `connection_ids` limits the clients that may be chosen (a client-limited member); UnknownRecord (field
    "connection_id" or "item_id") for a client or cadence that is not the organization's, InvalidInput naming
    the field for a body that does not parse; nothing is written."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"expected a number of days from 1 to {MAX_DAYS}", "days")
    if not isinstance(body, Mapping):
        raise InvalidInput("expected the cadence's definition", "body")
    if not 0 < connection_id <= MAX_ID or (connection_ids is not None and connection_id not in connection_ids):
        raise UnknownRecord("choose one of the organization's clients", "connection_id")
    with store.unit_of_work() as uow:
        connection = uow.session.get(Connection, connection_id)
        if connection is None or connection.organization_id != organization_id:
            raise UnknownRecord("choose one of the organization's clients", "connection_id")
        current = library_for(uow, organization_id, starter_rules)
        if not current.seeded:
            raise ChangeRefused("the organization's library is not set up yet", field="item_id")
        entry = current.entry(item_id) if 0 < item_id <= MAX_ID else None
        if entry is None or entry.kind != CADENCE:
            raise UnknownRecord(f"there is no cadence {item_id} in this library", "item_id")
        followed = client_planning(
            uow, connection, connection_settings(connection, rates), current, default_cadence=default_cadence
        ).cadence_name
        client = connection.name or connection.tenant_id
        numbers = dict(
            uow.session.execute(
                select(Invoice.external_id, Invoice.number).where(Invoice.connection_id == connection_id)
            ).all()
        )
    proposed = _proposed(organization_id, current, entry, dict(body), followed)
    with store.unit_of_work() as uow:
        states, _ = client_states(
            uow, connection_id, starter_rules, default_cadence=default_cadence, rates=rates, now=now, library=proposed
        )
    actions = sorted(
        (action for state in states for action in preview(state, now, days).actions),
        key=lambda a: (a.local_date, a.scheduled_at),
    )
    plan = tuple(
        PreviewDay(day, tuple(_line(action, numbers) for action in group))
        for day, group in groupby(actions, key=lambda a: a.local_date)
    )
    return CadencePreview(connection_id, client, entry.name, followed == entry.name, followed, now, days, plan)


def _proposed(
    organization_id: int, current: OrgLibrary, entry: LibraryEntry, body: dict[str, Any], followed: str
) -> OrgLibrary:
    """The current library with the cadence's body proposed; the client's own cadence (when another) too."""
    entries = tuple(
        replace(e, body=body)
        if e.item_id == entry.item_id or (e.kind == CADENCE and e.name == followed and followed)
        else e
        for e in current.entries
    )
    try:
        return assemble(organization_id, entries)
    except InvalidInput as exc:
        raise InvalidInput(exc.user_message, f"body.{exc.field}" if exc.field else "body") from None


def _line(action: Action, numbers: Mapping[str, str]) -> PreviewLine:
    invoices = tuple(item.number for item in action.items) or tuple(
        numbers.get(external_id) or external_id for external_id in action.invoice_external_ids
    )
    text = action.text
    if action.kind is ActionKind.LATE_FEE and action.fee is not None and action.fee.lines:
        text = action.fee.lines[0][0]
    return PreviewLine(
        kind=action.kind.value,
        customer=action.customer_name or action.customer_external_id,
        invoices=invoices,
        step=action.step_id,
        amount=action.amount,
        template=action.template,
        text=text,
        hold_reason=action.hold_reason.value if action.hold_reason is not None else None,
        requires_approval=action.requires_approval,
    )

"""Shared parts of the issue-12 acceptance tests (tests/integration/test_careful_*.py): a backlog ledger seeded
on an emulator, the realistic cadence they chase it with, moving both clocks, and reading what reached the SMTP
sink (recipients, the moment each email was handed over, its plain text)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes, policy
from typing import Any

from sqlalchemy import select

from connector.domain.policy import Tone, tone_of
from connector.storage.tables import Action
from tests.support.pipeline import Pipeline
from tests.support.workers import customer_email

# A cadence as a careful credit controller would write it: courtesy before the due date, a firm reminder with a
# ledger note, a flat fee ten days late (announced by the reminders before it), a call, then a final notice that
# hands the debt over to a person.
STEPS: list[dict[str, Any]] = [
    {"id": "courtesy", "offset": -3, "remind": "gentle_nudge"},
    {"id": "due", "offset": 0, "remind": "due_today"},
    {"id": "late-3", "offset": 3, "remind": "firm", "note": "Overdue reminder sent by Nudge"},
    {"id": "late-10", "offset": 10, "remind": "firm", "late_fee": "flat"},
    {"id": "call", "offset": 17, "call_task": "Phone accounts payable about the overdue balance"},
    {"id": "final", "offset": 24, "remind": "final_notice", "escalate": True},
]
TEMPLATES = ["gentle_nudge", "due_today", "firm", "final_notice"]
FEES = {"flat": {"kind": "flat", "amount": 25}}
# Words that claim an earlier contact (none happened before Nudge was connected).
EARLIER_CONTACT = ("in touch", "again", "previous", "a few times")
# How late the backlog's invoices are, in turn: a quarter of them a quarter-year late.
DAYS_LATE = (90, 61, 90, 34, 20, 90, 12, 8, 5, 2)


@dataclass(frozen=True)
class Mail:
    """One email the SMTP sink received."""

    to: str
    sent_at: datetime  # the moment (Nudge's clock) Nudge handed it to the mail server
    subject: str
    text: str


def set_now(world: Pipeline, moment: datetime) -> None:
    """Nudge's clock and the emulator's."""
    world.clock.moment = moment
    world.kit.set_now(moment)


@dataclass(frozen=True)
class Backlog:
    """What `seed_backlog` put in the ledger: the customers' e-mail addresses and the invoices' ids."""

    emails: list[str]
    invoices: list[str]


def seed_backlog(
    world: Pipeline,
    tenant: str,
    *,
    customers: int,
    per_customer: int,
    today: date,
    days_late: tuple[int, ...] = DAYS_LATE,
) -> Backlog:
    """`customers` customers "Payer <n>", each with `per_customer` invoices due `days_late` days ago in turn
    (negative: not due yet), issued 30 days before they fall due."""
    kit = world.kit
    backlog = Backlog([], [])
    for n in range(customers):
        name = f"Payer {n}"
        customer = kit.add_customer(tenant, name, customer_email(name))
        backlog.emails.append(customer_email(name))
        for k in range(per_customer):
            index = n * per_customer + k
            due = today - timedelta(days=days_late[index % len(days_late)])
            amount = Decimal(120 + 37 * (index % 11)).quantize(Decimal("0.01"))
            invoice = kit.add_invoice(tenant, customer, f"BL-{1000 + index}", amount, "", due - timedelta(days=30), due)
            backlog.invoices.append(invoice)
    return backlog


def address(mail: Mail) -> str:
    """The recipient's bare address."""
    return mail.to.split("<")[-1].rstrip(">").strip()


def watch_handover(world: Pipeline) -> list[datetime]:
    """From now on, the moment on Nudge's clock each email reaches the SMTP sink (the sink stamps it as it takes
    the message: the emails' Date header is the mailer's own wall clock, not Nudge's)."""
    stamps: list[datetime] = []
    assert not world.sink.received, "watch the handover before anything is sent"
    world.sink.on_data = lambda: stamps.append(world.clock.now())
    return stamps


def mails(world: Pipeline, stamps: list[datetime]) -> list[Mail]:
    """Every email the sink received, in order, with the moment it was handed over (`watch_handover`)."""
    assert len(stamps) == len(world.sink.received)
    found = []
    for raw, stamp in zip(world.sink.received, stamps, strict=True):
        message = message_from_bytes(raw, policy=policy.default)
        body = message.get_body(preferencelist=("plain",))
        found.append(
            Mail(
                to=str(message["To"]),
                sent_at=stamp,
                subject=str(message["Subject"]),
                text=body.get_content() if body is not None else "",
            )
        )
    return found


def done(world: Pipeline, connection_id: int, kind: str) -> list[Action]:
    """The connection's done actions of `kind`, in the order they were carried out."""
    with world.services.store.unit_of_work() as uow:
        rows = list(
            uow.session.scalars(
                select(Action)
                .where(Action.connection_id == connection_id, Action.kind == kind, Action.state == "done")
                .order_by(Action.updated_at, Action.id)
            )
        )
        uow.session.expunge_all()
        return rows


def step_tones(world: Pipeline, reminder: Action, cadence: str = "rs") -> set[Tone]:
    """The tones of the cadence steps a (grouped) reminder was sent for."""
    steps = {step.id: step for step in world.services.settings.rules.cadences[cadence].steps}
    ids = {item["step_id"] for item in reminder.payload.get("items") or []} | {reminder.payload["step_id"]}
    return {tone_of(steps[step_id]) for step_id in ids if step_id in steps}


# QuickBooks reads through POST too: a query (POST .../query) and Nudge's sync batch of queries (POST .../batch,
# which the adapter uses for nothing else: providers/quickbooks/adapter.py).
READS_BY_POST = ("/query", "/batch")


def ledger_changing_calls(world: Pipeline, tenant: str) -> list[str]:
    """Requests the emulator answered for `tenant` that could change its books (anything but a read)."""
    return [
        f"{c['method']} {c['path']}"
        for c in world.kit.calls("data", tenant)
        if c["method"] not in ("GET", "HEAD") and not str(c["path"]).endswith(READS_BY_POST)
    ]

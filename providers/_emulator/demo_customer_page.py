"""The demo's customer page scenes (issue 17, docs/customer-page.md): three customers of the first company open the
page their reminder links to and use it through the page's own service (connector.receivables.customer_page).

A week in (`SCENE_DAY`), among customers who were sent a reminder and never pay on their own:

- one promises to pay in four days and pays everything then open two days later: the cadence waits, the planner
  logs the promise kept, and no reminder to them says "you promised";
- one disputes their oldest open invoice with a reason: no reminder and no late fee for it after that, and the
  dispute waits in the inbox;
- one asks for a payment plan on their oldest open invoice (three monthly installments); the owner approves it
  the next morning (the plan is recorded and the customer told by email, in the demo's outbox).

`report()` reads what happened back from the store (requests, actions, payments), never from the scenes' own
intentions, so the demo's summary says only what is true.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from connector.bootstrap import Services, mailer_for
from connector.domain.model import ActionState
from connector.outbox.codec import action_from_json
from connector.outbox.planning import PROMISE_BROKEN, PROMISE_KEPT
from connector.receivables import customer_page
from connector.storage.tables import Action, Activity, Customer, CustomerRequest, Invoice, PaymentPlan

SCENE_DAY = 7  # the simulated day (0-based) the customers use their page
PROMISE_DAYS = 4  # the promise: pay within four days ...
PAY_AFTER_DAYS = 2  # ... and the money arrives two days later
REASON = "We never received the second delivery on this order"
OWNER = "demo@example.com"


@dataclass
class Scene:
    """One customer's use of the page: who, which invoice, when."""

    kind: str
    customer_id: int
    customer_external_id: str
    name: str
    invoice_external_id: str = ""
    number: str = ""
    at: datetime | None = None
    until: date | None = None


@dataclass
class CustomerPageScenes:
    """The three scenes, driven by the simulation's days (`on_day` at each day's first tick, before the worker)."""

    services: Services
    connection_id: int
    org_id: int
    pay: Callable[[str, date], bool]  # the customer pays an invoice in full, dated (the emulated ledger)
    echo: Callable[[str], None]
    never_pays: set[str]  # invoice ids whose payers never pay on their own (the behaviour model)
    scenes: dict[str, Scene] = field(default_factory=dict)

    def on_day(self, day: int, today: date) -> None:
        """The scenes of simulated day `day`: the customers act on SCENE_DAY, the promiser pays, the owner decides."""
        if day == SCENE_DAY:
            self._customers_act(today)
        promise = self.scenes.get(customer_page.PROMISE)
        if (
            promise is not None
            and promise.until is not None
            and today == promise.until - timedelta(days=PAY_AFTER_DAYS)
        ):
            for invoice_id in self._open_invoices(promise.customer_external_id):
                self.pay(invoice_id, today)
            self.echo(f"    {promise.name} pays as promised (customer page)")
        plan = self.scenes.get(customer_page.PLAN)
        if plan is not None and day == SCENE_DAY + 1:
            self._owner_approves(plan)

    def _candidates(self) -> list[tuple[str, int, str, list[str]]]:
        """Customers sent a reminder, undisputed and without a promise, who owe something: (external id, row id,
        name, their open invoice ids oldest due first)."""
        store = self.services.store
        with store.unit_of_work() as uow:
            reminded = set(
                uow.session.scalars(
                    select(Action.customer_external_id).where(
                        Action.connection_id == self.connection_id,
                        Action.kind == "remind",
                        Action.state == ActionState.DONE.value,
                    )
                )
            )
            rows = [
                (row.external_id, row.id, row.name)
                for row in uow.session.scalars(
                    # the newest customers first: the ledger's first ones are the ones people look at in the pages
                    select(Customer).where(Customer.connection_id == self.connection_id).order_by(Customer.id.desc())
                )
                if row.external_id in reminded and not row.dispute and row.promise_to_pay_until is None
            ]
        found = []
        for external_id, row_id, name in rows:
            invoices = self._open_invoices(external_id)
            if invoices:
                found.append((external_id, row_id, name, invoices))
        return found

    def _open_invoices(self, customer_external_id: str) -> list[str]:
        with self.services.store.unit_of_work() as uow:
            return list(
                uow.session.scalars(
                    select(Invoice.external_id)
                    .where(
                        Invoice.connection_id == self.connection_id,
                        Invoice.customer_external_id == customer_external_id,
                        Invoice.status == "open",
                        Invoice.balance > 0,
                    )
                    .order_by(Invoice.due_date, Invoice.id)
                )
            )

    def _row_id(self, invoice_external_id: str) -> tuple[int, str]:
        with self.services.store.unit_of_work() as uow:
            row = uow.session.scalars(
                select(Invoice).where(
                    Invoice.connection_id == self.connection_id, Invoice.external_id == invoice_external_id
                )
            ).one()
            return row.id, row.number

    def _customers_act(self, today: date) -> None:
        store, now = self.services.store, self.services.clock.now()
        candidates = self._candidates()
        # The disputer and the plan asker act on an invoice whose payer never pays on its own (nothing else closes
        # it meanwhile); the promiser is anyone else who owes something (they pay it all, as promised).
        stuck = [(c, [i for i in c[3] if i in self.never_pays]) for c in candidates]
        stuck = [(c, never) for c, never in stuck if never]
        if len(stuck) < 2 or len(candidates) < 3:
            self.echo("  customer page: fewer than three customers to show it with; no scenes today")
            return
        (d_ext, d_id, d_name, _), d_invoices = stuck[0]
        (a_ext, a_id, a_name, _), a_invoices = stuck[1]
        p_ext, p_id, p_name, _ = next(c for c in candidates if c[1] not in (d_id, a_id))
        until = today + timedelta(days=PROMISE_DAYS)
        customer_page.promise_to_pay(store, self.connection_id, p_id, until=until.isoformat(), amount="", now=now)
        self.scenes[customer_page.PROMISE] = Scene(customer_page.PROMISE, p_id, p_ext, p_name, at=now, until=until)
        disputed, number = self._row_id(d_invoices[0])
        customer_page.dispute_invoice(store, self.connection_id, d_id, disputed, reason=REASON, now=now)
        self.scenes[customer_page.DISPUTE] = Scene(
            customer_page.DISPUTE, d_id, d_ext, d_name, d_invoices[0], number, at=now
        )
        planned, plan_number = self._row_id(a_invoices[0])
        installments = customer_page.proposed_installments(
            store,
            self.connection_id,
            a_id,
            planned,
            count=3,
            first=(today + timedelta(days=7)).isoformat(),
            every="month",
            now=now,
        )
        customer_page.ask_for_plan(store, self.connection_id, a_id, planned, installments=installments, now=now)
        self.scenes[customer_page.PLAN] = Scene(
            customer_page.PLAN, a_id, a_ext, a_name, a_invoices[0], plan_number, at=now
        )
        self.echo(
            f"  customer page: {p_name} promises to pay by {until.isoformat()}; {d_name} disputes {number}; "
            f"{a_name} asks for a payment plan on {plan_number}"
        )

    def _owner_approves(self, scene: Scene) -> None:
        store = self.services.store
        with store.unit_of_work() as uow:
            request_id = uow.session.scalar(
                select(CustomerRequest.id).where(
                    CustomerRequest.customer_id == scene.customer_id, CustomerRequest.kind == customer_page.PLAN
                )
            )
        customer_page.approve_plan_request(
            store,
            self.org_id,
            request_id,
            installments=None,
            policy="monthly",
            actor=OWNER,
            now=self.services.clock.now(),
            mailer=mailer_for(self.services.settings.mail, self.services.clock.now),
        )
        self.echo(f"    {OWNER} approves {scene.name}'s payment plan on {scene.number}; they are told by email")

    def report(self) -> dict[str, Any]:
        """What the store says happened to each scene (summary.json's `customer_page`)."""
        if len(self.scenes) < 3:
            return {}
        store = self.services.store
        promise, dispute, plan = (
            self.scenes[k] for k in (customer_page.PROMISE, customer_page.DISPUTE, customer_page.PLAN)
        )
        with store.unit_of_work() as uow:
            actions = [
                (row, action_from_json(row.payload))
                for row in uow.session.scalars(
                    select(Action).where(
                        Action.connection_id == self.connection_id,
                        Action.state.in_((ActionState.DONE.value, ActionState.PLANNED.value)),
                    )
                )
            ]
            requests = {
                row.kind: row
                for row in uow.session.scalars(
                    select(CustomerRequest).where(CustomerRequest.connection_id == self.connection_id)
                )
            }
            plans = list(
                uow.session.scalars(
                    select(PaymentPlan).where(
                        PaymentPlan.connection_id == self.connection_id,
                        PaymentPlan.invoice_external_id == plan.invoice_external_id,
                    )
                )
            )
            # The planner logs whether a promise was kept once it stops holding (connector.outbox.planning).
            kept = uow.session.scalars(
                select(Activity.kind).where(
                    Activity.connection_id == self.connection_id,
                    Activity.subject == promise.customer_external_id,
                    Activity.kind.in_((PROMISE_KEPT, PROMISE_BROKEN)),
                )
            ).first()
        assert promise.at is not None
        assert promise.until is not None
        assert dispute.at is not None
        reminded_while_promised = sum(
            1
            for row, action in actions
            if row.kind == "remind"
            and row.customer_external_id == promise.customer_external_id
            and promise.at.date() <= action.local_date <= promise.until
        )
        you_promised = sum(
            1
            for row, action in actions
            if row.kind == "remind"
            and row.customer_external_id == promise.customer_external_id
            and action.broken_promise is not None
        )
        chased_in_dispute = sum(
            1
            for row, action in actions
            if row.kind in ("remind", "late_fee")
            and dispute.invoice_external_id in action.invoice_external_ids
            and action.scheduled_at > dispute.at
        )
        plan_request = requests.get(customer_page.PLAN)
        return {
            "promised": {
                "customer": promise.name,
                "until": promise.until.isoformat(),
                "kept": {PROMISE_KEPT: "kept", PROMISE_BROKEN: "broken"}.get(kept or "", "still running"),
                "reminders_while_promised": reminded_while_promised,
                "you_promised_reminders": you_promised,
            },
            "disputed": {
                "customer": dispute.name,
                "invoice": dispute.number,
                "reminders_or_fees_after": chased_in_dispute,
                "in_inbox": requests.get(customer_page.DISPUTE) is not None
                and requests[customer_page.DISPUTE].state == customer_page.OPEN,
            },
            "plan": {
                "customer": plan.name,
                "invoice": plan.number,
                "request": plan_request.state if plan_request is not None else "",
                "plans_recorded": len(plans),
            },
        }


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The summary's customer page lines, from `report()` (nothing when the scenes did not run)."""
    if not report:
        return []
    promised, disputed, plan = report["promised"], report["disputed"], report["plan"]
    return [
        "Customer page (the link in every reminder):",
        f"  {promised['customer']} promised to pay by {promised['until']}: promise {promised['kept']}; "
        "reminders while promised: "
        f'{promised["reminders_while_promised"]}; "you promised" reminders: {promised["you_promised_reminders"]}',
        f"  {disputed['customer']} disputed {disputed['invoice']}: reminders or fees on it since: "
        f"{disputed['reminders_or_fees_after']}; "
        + ("waiting in the inbox" if disputed["in_inbox"] else "no longer in the inbox"),
        f"  {plan['customer']} asked for a payment plan on {plan['invoice']}: {plan['request'] or 'not asked'}"
        f" ({plan['plans_recorded']} plan recorded"
        + ("; the customer was told by email)" if plan["request"] in ("approved", "declined") else ")"),
    ]

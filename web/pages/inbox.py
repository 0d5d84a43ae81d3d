"""The inbox screen: everything that waits for a person, grouped, with counts, and what people do about it.

`GET /orgs/<org>/inbox[?client=<id>]` reads `connector.receivables.inbox` (scoped to the member's clients). The
actions are POSTs that flash what happened and come back to the inbox (owners and accountants; viewers get 403):

- `.../inbox/decide`: approve or skip the ticked actions (`action_id`, many; `decision` approve | skip);
- `.../inbox/reviews/<connection_id>/approve`: approve a new client's whole first plan (chasing starts);
- `.../inbox/actions/<action_id>/mark-sent | send-again | retry`: an uncertain email, a failed action;
- `.../inbox/tasks/<task_id>/complete`: a call task or hand-over, with a note (kept in place when refused);
- `.../inbox/replies/<reply_id>/handled`: a customer's reply was dealt with (issue 17);
- `.../inbox/requests/<request_id>/approve | decline | handled`: what a customer asked on their page (issue 17):
  a payment plan approved as asked or edited (the plan is recorded, the customer told by email) or declined (the
  customer told), a dispute or a reported payment looked into.

Reconnecting posts to the existing `connections.reconnect` route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user  # type: ignore[import-untyped, unused-ignore]
from werkzeug.routing import BuildError

from connector.bootstrap import mailer_for
from connector.domain.model import Role
from connector.errors import ChangeRefused, InvalidInput, UnknownRecord
from connector.outbox.planning import Chasing
from connector.receivables import actions as action_service
from connector.receivables import customer_page as customer_requests
from connector.receivables.common import ROW_ID_MAX
from connector.receivables.handoffs import recent_packs
from connector.receivables.inbox import APPROVALS, REQUESTS, Inbox, inbox, mark_reply_handled
from connector.receivables.tasks import complete
from connector.receivables.views import ActionView
from connector.review import ReviewError
from connector.review import approve as approve_review
from connector.storage import Store
from connector.tasks.service import CALL
from web.access import require_role
from web.extensions import services
from web.pages.customers import plan_policies
from web.pages.handoffs import pack_rows
from web.pages.ui import UI_LOCALE
from web.wording import sentence

bp = Blueprint("inbox_page", __name__)

WRITERS = (Role.OWNER, Role.ACCOUNTANT)
MAX_DECIDED = 500  # actions one bulk approve or skip may name
# A form sent back with its errors is the page itself (200): browsers log any 4xx page as a failed load.
FORM_ERRORS = 200


def _actor() -> str:
    return str(current_user.email)


def _visible() -> set[int] | None:
    ids = g.member_scope.visible_connection_ids()
    return None if ids is None else set(ids)


def _client_arg(value: str | None) -> int | None:
    """The `client` filter: a row id, else no filter (garbage is ignored, not an error)."""
    if value is None or not value.isdigit() or len(value) > 10:
        return None
    number = int(value)
    return number if 1 <= number <= ROW_ID_MAX else None


def _back(org_id: int) -> ResponseReturnValue:
    """To the inbox again, with the client filter the form came from."""
    client = _client_arg(request.form.get("client"))
    return redirect(url_for("inbox_page.index", org_id=org_id, client=client) + _anchor(), 303)


def _anchor() -> str:
    group = request.form.get("group", "")
    return f"#group-{group}" if group.isalpha() and len(group) < 20 else ""


def page_link(endpoint: str, path: str, **values: Any) -> str:
    """The URL of another screen's page: `url_for(endpoint)` when that screen is served, else `path` (the URL
    the screen will have) under the app's root."""
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return request.script_root + path


def _links(org_id: int) -> dict[str, Callable[..., str]]:
    def client_url(connection_id: int) -> str:
        return page_link(
            "clients_page.index",
            f"/orgs/{org_id}/clients/{connection_id}/",
            org_id=org_id,
            connection_id=connection_id,
        )

    def invoice_url(connection_id: int, invoice_id: int) -> str:
        return page_link(
            "invoices_page.detail",
            f"/orgs/{org_id}/clients/{connection_id}/invoices/{invoice_id}",
            org_id=org_id,
            connection_id=connection_id,
            invoice_id=invoice_id,
        )

    def customer_url(connection_id: int, customer_id: int) -> str:
        return page_link(
            "customers_page.index",
            f"/orgs/{org_id}/clients/{connection_id}/customers/{customer_id}",
            org_id=org_id,
            connection_id=connection_id,
            customer_id=customer_id,
        )

    return {"client_url": client_url, "invoice_url": invoice_url, "customer_url": customer_url}


def _provider_names() -> dict[str, str]:
    registry = services().registry
    keys: list[str] = registry.keys()
    return {key: registry.spec(key).display_name for key in keys}


def _render(
    org_id: int,
    client: int | None,
    *,
    note_errors: dict[int, str] | None = None,
    notes: dict[int, str] | None = None,
    request_errors: dict[int, str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    try:
        found: Inbox = inbox(
            services().store,
            org_id,
            connection_ids=_visible(),
            connection_id=client,
            locale=UI_LOCALE,
            provider_names=_provider_names(),
        )
    except UnknownRecord:
        abort(404)
    return (
        render_template(
            "inbox/index.html",
            box=found,
            client=client,
            can_act=g.role in WRITERS,
            reconnectable=set(services().registry.keys()),
            note_errors=note_errors or {},
            notes=notes or {},
            approvals=APPROVALS,
            handoff_packs=_handoff_packs(org_id, client, dict(found.clients)),
            policies=plan_policies(org_id) if found.group(REQUESTS).count else [],
            request_errors=request_errors or {},
            **_links(org_id),
        ),
        status,
    )


# -- hand-off packs (docs/handoff.md): the debts handed off, each pack's files to download ----------------------
def _handoff_packs(org_id: int, client: int | None, clients: dict[int, str]) -> list[dict[str, Any]]:
    """The newest hand-off packs of the clients the member sees (of one client with `?client=`)."""
    visible = _visible()
    if client is not None:
        visible = {client} if visible is None or client in visible else set()
    return pack_rows(recent_packs(services().store, org_id, connection_ids=visible), org_id, clients)


@bp.get("/orgs/<int:org_id>/inbox")
def index(org_id: int) -> ResponseReturnValue:
    """The inbox, every group with its count (narrowed to one client with `?client=<id>`)."""
    return _render(org_id, _client_arg(request.args.get("client")))


@bp.post("/orgs/<int:org_id>/inbox/decide")
@require_role(*WRITERS)
def decide(org_id: int) -> ResponseReturnValue:
    """Approve or skip the ticked actions; says how many were done and why any were not."""
    decision = request.form.get("decision", "")
    if decision not in ("approve", "skip"):
        flash("Choose Approve or Skip.", "error")
        return _back(org_id)
    raw = request.form.getlist("action_id")
    ids = sorted({int(value) for value in raw if value.isdigit() and len(value) <= 10})
    if not ids:
        flash("Tick at least one action first.", "error")
        return _back(org_id)
    if len(ids) > MAX_DECIDED:
        flash(f"Decide at most {MAX_DECIDED} actions at once.", "error")
        return _back(org_id)
    operation = action_service.approve_action if decision == "approve" else action_service.skip_action
    store: Store = services().store
    now = services().clock.now()
    done: list[ActionView] = []
    refused: list[str] = []
    for action_id in ids:
        try:
            done.append(operation(store, org_id, action_id, _actor(), now, connection_ids=_visible()))
        except ChangeRefused as exc:
            refused.append(exc.user_message)
    if done:
        if decision == "approve":
            flash(
                f"Approved {_actions(len(done))}: {'it goes' if len(done) == 1 else 'they go'} out when due.", "success"
            )
        else:
            flash(f"Skipped {_actions(len(done))}: never carried out, never planned again.", "success")
    if refused:
        verb = "approved" if decision == "approve" else "skipped"
        flash(f"{_actions(len(refused))} could not be {verb}: {refused[0]}", "error")
    return _back(org_id)


@bp.post("/orgs/<int:org_id>/inbox/reviews/<int:connection_id>/approve")
@require_role(*WRITERS)
def approve_plan(org_id: int, connection_id: int) -> ResponseReturnValue:
    """Approve a new client's whole first plan: everything waiting goes out when due, and chasing starts."""
    with services().store.unit_of_work() as uow:
        connection = uow.connections.get(org_id, connection_id)
        name = (connection.name or connection.tenant_id) if connection is not None else ""
        in_review = connection is not None and connection.chasing == Chasing.REVIEW.value
    if not in_review:
        flash(f"{name} is not waiting for a review (someone may have approved it already).", "info")
        return _back(org_id)
    try:
        report = approve_review(services().store, connection_id, _actor(), services().clock.now(), org_id=org_id)
    except ReviewError as exc:
        flash(exc.user_message, "error")
        return _back(org_id)
    approved = f" ({_actions(len(report.changed))} approved)" if report.changed else ""
    flash(f"Approved the first plan of {name}{approved}: Nudge now chases it.", "success")
    return _back(org_id)


def _one_action(
    org_id: int, action_id: int, operation: Callable[..., ActionView], said: Callable[[ActionView], str]
) -> ResponseReturnValue:
    try:
        view = operation(
            services().store, org_id, action_id, _actor(), services().clock.now(), connection_ids=_visible()
        )
    except UnknownRecord:
        abort(404)
    except ChangeRefused as exc:
        flash(sentence(exc.user_message), "error")
        return _back(org_id)
    flash(said(view), "success")
    return _back(org_id)


@bp.post("/orgs/<int:org_id>/inbox/actions/<int:action_id>/mark-sent")
@require_role(*WRITERS)
def mark_sent(org_id: int, action_id: int) -> ResponseReturnValue:
    """An uncertain email reached the customer: it counts as sent from now on and is never sent again."""
    return _one_action(
        org_id,
        action_id,
        action_service.mark_sent,
        lambda view: f"Marked the email to {_customer(view)} as sent.",
    )


@bp.post("/orgs/<int:org_id>/inbox/actions/<int:action_id>/send-again")
@require_role(*WRITERS)
def send_again(org_id: int, action_id: int) -> ResponseReturnValue:
    """An uncertain email did not arrive: it goes out again at the next moment its send window allows."""
    return _one_action(
        org_id,
        action_id,
        action_service.send_again,
        lambda view: f"The email to {_customer(view)} goes out again at the next moment its send window allows.",
    )


@bp.post("/orgs/<int:org_id>/inbox/actions/<int:action_id>/retry")
@require_role(*WRITERS)
def retry(org_id: int, action_id: int) -> ResponseReturnValue:
    """A failed action goes back in the outbox (same key: the ledger never gets it twice)."""
    return _one_action(
        org_id,
        action_id,
        action_service.retry_action,
        lambda view: f"Retrying the {view.kind.replace('_', ' ')} for {_customer(view)}: it goes out at the next run.",
    )


@bp.post("/orgs/<int:org_id>/inbox/tasks/<int:task_id>/complete")
@require_role(*WRITERS)
def complete_task(org_id: int, task_id: int) -> ResponseReturnValue:
    """Complete a call task or hand-over with what happened (the note); a refused note stays in its box."""
    note = request.form.get("note", "")
    try:
        view = complete(
            services().store, org_id, task_id, _actor(), note, services().clock.now(), connection_ids=_visible()
        )
    except UnknownRecord:
        abort(404)
    except InvalidInput as exc:  # the note: shown under its box, with what was typed
        client = _client_arg(request.form.get("client"))
        return _render(
            org_id,
            client,
            note_errors={task_id: sentence(exc.user_message)},
            notes={task_id: note},
            status=FORM_ERRORS,
        )
    except ChangeRefused as exc:  # done or cancelled meanwhile: no box left to show it under
        flash(sentence(exc.user_message), "error")
        return _back(org_id)
    what = (
        f"the call with {view.customer_name}" if view.kind == CALL else f"the hand-over of {view.customer_name}'s debt"
    )
    ledger = " and goes to the ledger" if view.record_in_ledger and view.invoices else ""
    flash(f"Completed {what}. Your note is in the timeline{ledger}.", "success")
    return _back(org_id)


def _customer(view: ActionView) -> str:
    return view.customer_name or view.customer_external_id or "the customer"


def _actions(count: int) -> str:
    return "1 action" if count == 1 else f"{count} actions"


@bp.post("/orgs/<int:org_id>/inbox/replies/<int:reply_id>/handled")
@require_role(*WRITERS)
def reply_handled(org_id: int, reply_id: int) -> ResponseReturnValue:
    """A customer's reply was read and acted on: its inbox item closes (the pause it set runs its course)."""
    try:
        mark_reply_handled(
            services().store, org_id, reply_id, _actor(), services().clock.now(), connection_ids=_visible()
        )
    except UnknownRecord:
        abort(404)
    except ChangeRefused as exc:
        flash(sentence(exc.user_message), "error")
        return _back(org_id)
    flash("Marked the reply handled.", "success")
    return _back(org_id)


# -- what customers asked on their page (issue 17) ----------------------------------------------------------


def _request_refused(org_id: int, request_id: int, exc: InvalidInput) -> ResponseReturnValue:
    """The inbox again with the request's form open and what was wrong under it."""
    return _render(
        org_id,
        _client_arg(request.form.get("client")),
        request_errors={request_id: sentence(exc.user_message)},
        status=FORM_ERRORS,
    )


def _answer_request(
    org_id: int,
    request_id: int,
    decide: Callable[[], customer_requests.RequestView],
    said: Callable[[customer_requests.RequestView], str],
) -> ResponseReturnValue:
    """A person's answer to a customer's request: done (flashed), refused in place (what was wrong under its form),
    or already answered by someone else (flashed); 404 for a request the member does not see."""
    try:
        view = decide()
    except UnknownRecord:
        abort(404)
    except InvalidInput as exc:
        return _request_refused(org_id, request_id, exc)
    except ChangeRefused as exc:
        flash(sentence(exc.user_message), "error")
        return _back(org_id)
    flash(said(view), "success")
    return _back(org_id)


@bp.post("/orgs/<int:org_id>/inbox/requests/<int:request_id>/approve")
@require_role(*WRITERS)
def request_approve(org_id: int, request_id: int) -> ResponseReturnValue:
    """Agree the payment plan a customer asked for, as asked or with the dates and amounts changed here."""
    dates = request.form.getlist("due_date")[: customer_requests.PLAN_MAX_INSTALLMENTS + 1]
    amounts = request.form.getlist("amount")[: customer_requests.PLAN_MAX_INSTALLMENTS + 1]
    edited = [{"due_date": d.strip()[:40], "amount": a.strip()[:40]} for d, a in zip(dates, amounts, strict=False)]
    found = services()
    return _answer_request(
        org_id,
        request_id,
        lambda: customer_requests.approve_plan_request(
            found.store,
            org_id,
            request_id,
            installments=edited or None,
            policy=request.form.get("policy", "")[:200],
            actor=_actor(),
            now=found.clock.now(),
            mailer=mailer_for(found.settings.mail, found.clock.now),
            connection_ids=_visible(),
        ),
        lambda view: (
            f"Agreed the payment plan on {view.invoice_number}: it is recorded and the customer is told by email."
        ),
    )


@bp.post("/orgs/<int:org_id>/inbox/requests/<int:request_id>/decline")
@require_role(*WRITERS)
def request_decline(org_id: int, request_id: int) -> ResponseReturnValue:
    """Decline a customer's payment plan request (with a word for them); they are told by email."""
    found = services()
    return _answer_request(
        org_id,
        request_id,
        lambda: customer_requests.decline_plan_request(
            found.store,
            org_id,
            request_id,
            note=request.form.get("note", "")[:4000],
            actor=_actor(),
            now=found.clock.now(),
            mailer=mailer_for(found.settings.mail, found.clock.now),
            connection_ids=_visible(),
        ),
        lambda view: f"Declined the payment plan request on {view.invoice_number}: the customer is told by email.",
    )


@bp.post("/orgs/<int:org_id>/inbox/requests/<int:request_id>/handled")
@require_role(*WRITERS)
def request_handled(org_id: int, request_id: int) -> ResponseReturnValue:
    """A dispute or a reported payment was looked into: its inbox item closes."""
    found = services()
    return _answer_request(
        org_id,
        request_id,
        lambda: customer_requests.mark_request_handled(
            found.store, org_id, request_id, actor=_actor(), now=found.clock.now(), connection_ids=_visible()
        ),
        lambda view: "Marked the customer's request handled.",
    )

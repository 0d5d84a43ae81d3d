"""`nudge review`, `nudge approve`, `nudge skip` and `nudge access`: the person's side of the onboarding review,
approval mode and one-ledger-one-chaser, on top of `connector.review` and `connector.connections.ownership`.

The commands take the `nudge` group's context object (`connector.cli`), whose `services()` builds Nudge.
"""

from __future__ import annotations

import sys
from typing import Any

import click


def _default_actor() -> str:
    """The OS user running the command (who approved, skipped or decided), "cli" when it cannot be told."""
    import getpass

    try:
        return getpass.getuser() or "cli"
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        return "cli"


_actor_option = click.option(
    "--by", "--actor", "actor", default=None, help="Who decides (recorded in the activity log; default: the OS user)."
)


def _money_text(amount: Any) -> str:
    return f"{amount.amount:,} {amount.currency}" if amount is not None else ""


@click.command("review")
@click.option("--connection", "connection_id", type=int, required=True, help="Connection (client) id.")
@click.pass_obj
def review_command(context: Any, connection_id: int) -> None:
    """What the connection would send and write, waiting for your approval: per customer, grouped by step,
    with amounts, fees, holds and totals per currency, and the commands to approve or skip."""
    from connector.review import review_of

    services = context.services()
    review = review_of(services.store, connection_id)
    state = {
        "review": "waiting for review: nothing goes out until you approve",
        "managed_elsewhere": f"managed by {review.managed_by or 'another organization'}",
    }.get(review.chasing, "approval mode: these actions wait for you" if review.approval_mode else "active")
    click.echo(f"Review of {review.name} ({review.provider}, connection {review.connection_id}): {state}")
    if review.chasing == "managed_elsewhere":
        click.echo(
            f"{review.name} is already managed by {review.managed_by or 'another organization'}; ask them for access "
            f"(nudge access request --connection {review.connection_id})"
        )
        return
    if not review.synced:
        click.echo(f"no synced data yet for {review.name}: run `nudge run --connection {connection_id}` first")
        return
    if not review.waiting:
        click.echo("nothing waits for approval")
    else:
        click.echo(f"{review.waiting} action(s) wait for approval, for {len(review.customers)} customer(s)")
    for customer in review.customers:
        _echo_customer(customer)
    if review.totals:
        click.echo("")
        click.echo("Totals per currency")
        for totals in review.totals:
            click.echo(f"  {totals.currency}: {_totals_text(totals)}")
    if review.waiting:
        click.echo("")
        click.echo(f"Approve everything:  nudge approve --connection {connection_id} --all")
        click.echo(f"Approve some:        nudge approve --connection {connection_id} --action KEY [--action KEY ...]")
        click.echo(f"Skip some for good:  nudge skip --connection {connection_id} --action KEY [--action KEY ...]")
    elif review.in_review:
        click.echo(f"Start chasing:       nudge approve --connection {connection_id} --all")


def _echo_customer(customer: Any) -> None:
    """One customer of a review: waiting actions grouped by step (with their keys), holds, totals."""
    click.echo("")
    click.echo(customer.name)
    for group in customer.groups:
        click.echo(f"  {group.label} (step {group.step_id})")
        for item in group.items:
            click.echo(f"    {item.local_date.isoformat()}  {_review_line(item)}")
            click.echo(f"      key {item.key}")
    for held in customer.holds:
        invoices = ", ".join(line.number for line in held.invoices)
        click.echo(f"  held: {invoices}: {held.reason} ({held.rule})")
    for totals in customer.totals:
        click.echo(f"  total {totals.currency}: {_totals_text(totals)}")


def _review_line(item: Any) -> str:
    """One waiting action in words: invoices with what is asked, amount, recipients, detail."""
    overdue = [line for line in item.invoices if not line.coming_up]
    coming = [line for line in item.invoices if line.coming_up]

    def invoice(line: Any) -> str:
        if line.balance is None:
            return str(line.number)
        late = f", {line.days_overdue} days late" if line.days_overdue and line.days_overdue > 0 else ""
        return f"{line.number} ({_money_text(line.balance)}{late})"

    parts = [", ".join(invoice(line) for line in overdue)] if overdue else []
    if coming:
        parts.append("coming up: " + ", ".join(invoice(line) for line in coming))
    if item.amount is not None:
        parts.append(("total " if item.kind.value == "remind" else "") + _money_text(item.amount))
    if item.recipients:
        parts.append("to " + ", ".join(item.recipients))
    if item.detail:
        parts.append(item.detail)
    return "; ".join(part for part in parts if part)


def _totals_text(totals: Any) -> str:
    parts = [f"reminders ask {_money_text(totals.reminded)}"]
    if totals.fees.amount:
        parts.append(f"late fees {_money_text(totals.fees)}")
    if totals.credits.amount:
        parts.append(f"credits {_money_text(totals.credits)}")
    return ", ".join(parts)


@click.command("approve")
@click.option("--connection", "connection_id", type=int, required=True, help="Connection (client) id.")
@click.option("--all", "approve_all", is_flag=True, help="Approve every waiting action (ends an onboarding review).")
@click.option("--action", "keys", multiple=True, help="An action key from `nudge review` (repeatable).")
@_actor_option
@click.pass_obj
def approve_command(
    context: Any, connection_id: int, approve_all: bool, keys: tuple[str, ...], actor: str | None
) -> None:
    """Approve what waits: everything (--all; starts chasing a connection in review) or single actions."""
    from connector.review import approve

    if approve_all == bool(keys):
        raise click.UsageError("say what to approve: --all, or one or more --action KEY (not both)")
    services = context.services()
    report = approve(
        services.store,
        connection_id,
        actor or _default_actor(),
        services.clock.now(),
        None if approve_all else list(dict.fromkeys(keys)),
    )
    click.echo(f"approved {len(report.changed)} action(s); {report.still_waiting} still wait(s) for approval")
    if report.review_ended:
        click.echo(f"the review is over: connection {connection_id} is active and chases from now on")
    _report_unknown(report.unknown, connection_id)


@click.command("skip")
@click.option("--connection", "connection_id", type=int, required=True, help="Connection (client) id.")
@click.option("--action", "keys", multiple=True, required=True, help="An action key from `nudge review` (repeatable).")
@_actor_option
@click.pass_obj
def skip_command(context: Any, connection_id: int, keys: tuple[str, ...], actor: str | None) -> None:
    """Skip single actions for good: never carried out, never planned again."""
    from connector.review import skip

    services = context.services()
    report = skip(
        services.store, connection_id, list(dict.fromkeys(keys)), actor or _default_actor(), services.clock.now()
    )
    click.echo(f"skipped {len(report.changed)} action(s); {report.still_waiting} still wait(s) for approval")
    if report.review_ended:
        click.echo(f"the review is over: connection {connection_id} is active and chases from now on")
    _report_unknown(report.unknown, connection_id)


def _report_unknown(unknown: tuple[str, ...], connection_id: int) -> None:
    """Name the keys that changed nothing and exit 1: the person meant something that did not happen."""
    if not unknown:
        return
    for key in unknown:
        click.echo(f"error: no waiting action {key} for connection {connection_id}", err=True)
    sys.exit(1)


@click.group("access")
def access() -> None:
    """One ledger, one chaser: ask the organization that chases a ledger to hand it over, and decide."""


@access.command("request")
@click.option("--connection", "connection_id", type=int, required=True, help="Your connection managed elsewhere.")
@_actor_option
@click.pass_obj
def access_request(context: Any, connection_id: int, actor: str | None) -> None:
    """Ask the organization that chases this ledger for the chasing."""
    from connector.connections.ownership import request_access

    services = context.services()
    with services.store.unit_of_work() as uow:
        connection = uow.connections.by_id(connection_id)
        if connection is None:
            raise click.ClickException(f"no connection with id {connection_id}")
        org_id = connection.organization_id
    view = request_access(services.store, org_id, connection_id, actor or _default_actor(), services.clock.now())
    if view.state == "pending":
        click.echo(
            f"access request {view.id}: asked {view.managing_organization} to hand over {view.ledger}; "
            f"they decide with `nudge access approve {view.id}` or `nudge access decline {view.id}`"
        )
    else:
        click.echo(
            f"access request {view.id}: {view.ledger} was no longer chased elsewhere; it is now waiting for review"
        )


@access.command("list")
@click.option("--organization", "org_id", type=int, help="Only requests this organization made or must decide.")
@click.option("--state", type=click.Choice(["pending", "approved", "declined"]), help="Only requests in this state.")
@click.pass_obj
def access_list(context: Any, org_id: int | None, state: str | None) -> None:
    """Access requests (newest first): ledger, who asks, who decides, state."""
    from connector.connections.ownership import list_requests

    views = list_requests(context.services().store, org_id, state=state)
    header = (
        f"{'id':>5}  {'conn':>5}  {'ledger':<24}  {'requested by':<28}  {'managed by':<24}  {'state':<9}  decided by"
    )
    click.echo(header)
    click.echo("-" * len(header))
    for view in views:
        asker = (
            f"{view.requesting_organization} ({view.requested_by})"
            if view.requested_by
            else view.requesting_organization
        )
        click.echo(
            f"{view.id:>5}  {view.connection_id:>5}  {view.ledger[:24]:<24}  {asker[:28]:<28}  "
            f"{view.managing_organization[:24]:<24}  {view.state:<9}  {view.decided_by}"
        )
    click.echo(f"{len(views)} request(s)")


@access.command("approve")
@click.argument("request_id", type=int)
@_actor_option
@click.pass_obj
def access_approve(context: Any, request_id: int, actor: str | None) -> None:
    """Hand the chasing of a ledger over to the organization that asked (as the managing organization)."""
    _decide_access(context, request_id, actor, approve=True)


@access.command("decline")
@click.argument("request_id", type=int)
@_actor_option
@click.pass_obj
def access_decline(context: Any, request_id: int, actor: str | None) -> None:
    """Decline an access request: the managing organization keeps chasing the ledger."""
    _decide_access(context, request_id, actor, approve=False)


def _decide_access(context: Any, request_id: int, actor: str | None, *, approve: bool) -> None:
    from connector.connections.ownership import decide, managing_organization_of

    services = context.services()
    org_id = managing_organization_of(services.store, request_id)
    if org_id is None:
        raise click.ClickException(f"no access request with id {request_id}")
    view = decide(services.store, org_id, request_id, actor or _default_actor(), services.clock.now(), approve=approve)
    if approve:
        click.echo(
            f"access request {view.id} approved: {view.requesting_organization} chases {view.ledger} from now on "
            f"(after its own review); {view.managing_organization}'s pending actions for it were cancelled"
        )
    else:
        click.echo(f"access request {view.id} declined: {view.managing_organization} keeps chasing {view.ledger}")


COMMANDS = (review_command, approve_command, skip_command, access)

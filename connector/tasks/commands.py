"""`nudge tasks`: the people's tasks (calls, hand-offs) and `nudge tasks done ID --note TEXT` to complete one.

Registered on the `nudge` group by connector.cli; the click context object is the CLI's context, whose
`services()` builds the store and the clock.
"""

from __future__ import annotations

from typing import Any, Protocol

import click

from connector.tasks.service import TaskView, complete_task, list_tasks, member_actor


class _HasServices(Protocol):
    def services(self) -> Any: ...


@click.group("tasks", invoke_without_command=True)
@click.option("--connection", "connection_id", type=int, help="Only this connection's (client's) tasks.")
@click.option("--all", "include_done", is_flag=True, help="Done tasks too (default: open ones only).")
@click.pass_context
def tasks(ctx: click.Context, connection_id: int | None, include_done: bool) -> None:
    """People's tasks: calls to make and escalated debts to take over (id, due, kind, client, customer...)."""
    if ctx.invoked_subcommand is not None:
        return
    context: _HasServices = ctx.obj
    services = context.services()
    if connection_id is not None:
        with services.store.unit_of_work() as uow:
            if uow.connections.by_id(connection_id) is None:
                raise click.ClickException(f"no connection with id {connection_id}")
    rows = list_tasks(services.store, connection_id=connection_id, include_done=include_done)
    header = (
        f"{'id':>5}  {'due':<10}  {'kind':<7}  {'client':<20}  {'customer':<22}  {'invoices':<18}  "
        f"{'assignee':<26}  title"
    )
    click.echo(header)
    click.echo("-" * len(header))
    for row in rows:
        click.echo(_line(row))
    state = "task(s)" if include_done else "open task(s)"
    click.echo(f"{len(rows)} {state}")


def _line(row: TaskView) -> str:
    kind = row.kind if row.state == "open" else f"{row.kind}*"  # * = done (shown with --all)
    invoices = ", ".join(row.invoices)
    return (
        f"{row.id:>5}  {row.due_on.isoformat():<10}  {kind:<7}  {row.client[:20]:<20}  {row.customer_name[:22]:<22}  "
        f"{invoices[:18]:<18}  {(row.assignee_email or '-')[:26]:<26}  {row.title}"
    )


@tasks.command("done")
@click.argument("task_id", type=int)
@click.option("--note", "note", required=True, help="What was said or agreed (kept in the timeline).")
@click.option("--by", "by", default="", help="Who did it: the email of a member of the organization.")
@click.pass_obj
def done(context: _HasServices, task_id: int, note: str, by: str) -> None:
    """Complete task ID with what was said (and, when its step asks, a note on the invoice in the ledger)."""
    services = context.services()
    actor = member_actor(services.store, task_id, by) if by.strip() else "cli"
    view = complete_task(services.store, task_id, actor, note, services.clock.now())
    click.echo(f"task {view.id} done by {view.completed_by}: {view.title}")
    if view.record_in_ledger:
        click.echo("the note will be written on the invoice in the ledger with the next run")

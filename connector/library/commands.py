"""`nudge library export --org ID [--output FILE]` and `nudge library import --org ID FILE [--dry-run]`:
an organization's library as a YAML file (config as code; connector.library.files).

Registered on the `nudge` group by connector.cli; the click context object is the CLI's context, whose
`services()` builds the store and the clock and whose `settings` is the install's config (its starter library
seeds an organization that has none yet).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import click

from connector.library.files import export_library, import_library
from connector.library.starter import ensure_library
from connector.storage import UnitOfWork


class _HasServices(Protocol):
    settings: Any

    def services(self) -> Any: ...


@click.group("library")
def library() -> None:
    """An organization's cadences, policies and templates as a YAML file (export, import)."""


def _organization(uow: UnitOfWork, org_id: int) -> None:
    if uow.organizations.get(org_id) is None:
        raise click.ClickException(f"no organization with id {org_id}")


@library.command("export")
@click.option("--org", "org_id", type=int, required=True, help="The organization's id.")
@click.option("--output", "output", type=click.Path(dir_okay=False, writable=True), help="File (default: stdout).")
@click.pass_obj
def export_command(context: _HasServices, org_id: int, output: str | None) -> None:
    """Write the organization's library as YAML (the config's `cadences:`/`policies:` plus `templates:`)."""
    services = context.services()
    with services.store.unit_of_work() as uow:
        _organization(uow, org_id)
        if ensure_library(uow, org_id, context.settings, services.clock.now()):
            uow.commit()
        text = export_library(uow, org_id)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote the library of organization {org_id} to {output}")
    else:
        click.echo(text, nl=False)


@library.command("import")
@click.option("--org", "org_id", type=int, required=True, help="The organization's id.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check and report what would change; change nothing.")
@click.option(
    "--delete-missing",
    is_flag=True,
    help="Delete items the file does not list (items in use are kept and reported).",
)
@click.option("--actor", default="cli", show_default=True, help="Who the audit log names.")
@click.pass_obj
def import_command(
    context: _HasServices, org_id: int, file: str, dry_run: bool, delete_missing: bool, actor: str
) -> None:
    """Check a library file (file:line messages like check-config) and apply it as new versions."""
    services = context.services()
    text = Path(file).read_text(encoding="utf-8")
    now = services.clock.now()
    with services.store.unit_of_work() as uow:
        _organization(uow, org_id)
        ensure_library(uow, org_id, context.settings, now)
        report = import_library(uow, org_id, text, source=file, actor=actor, now=now, delete_missing=delete_missing)
        if dry_run:
            uow.rollback()
        else:
            uow.commit()
    for line in report.lines():
        click.echo(f"{'would have ' if dry_run and not line[0].isdigit() else ''}{line}")
    click.echo("dry run: nothing was changed" if dry_run else ("applied" if report.changed else "nothing to change"))

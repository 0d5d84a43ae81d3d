"""The `nudge` command. Subcommands from other packages (e.g. `serve` from web) arrive through the
`nudge.commands` entry-point group, so connector never imports them."""

from __future__ import annotations

import os
import re
import sys
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click

from connector.accounts.users import create_organization, create_user
from connector.config import ENV_FILE, Settings, load_env_files, load_settings
from connector.domain.model import ActionState, Role
from connector.errors import NudgeError
from connector.library.commands import library as library_commands
from connector.library.starter import seed_organizations
from connector.review.commands import COMMANDS as review_commands
from connector.tasks.commands import tasks as tasks_commands


class _Context:
    def __init__(self, config: str | None) -> None:
        self.config = config
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings

    def services(self) -> Any:
        """The services of this config, built once per command; the store's connections close with the command."""
        from connector.bootstrap import build

        services = build(self.settings)
        context = click.get_current_context(silent=True)
        if context is not None:
            context.call_on_close(services.store.dispose)
        return services


pass_context = click.make_pass_decorator(_Context)


class _NudgeGroup(click.Group):
    """Turns NudgeError into a clear message and exit 1 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NudgeError as exc:
            click.echo(f"error: {exc.user_message}", err=True)
            ctx.exit(1)


@click.group(cls=_NudgeGroup)
@click.option(
    "--config",
    "config",
    envvar="NUDGE_CONFIG",
    type=click.Path(dir_okay=False),
    help="Config file (default: $NUDGE_CONFIG, else built-in defaults).",
)
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """Nudge: follow up on unpaid QuickBooks Online and Xero invoices."""
    ctx.obj = _Context(config)


@main.command("check-config")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@pass_context
def check_config(context: _Context, file: str | None) -> None:
    """Validate a config file: prints "ok" and a summary, or every error (exit 1)."""
    settings = load_settings(file or context.config)
    click.echo(f"ok: {settings.source}")
    click.echo(f"  database: {_safe_url(settings.database.url)}")
    click.echo(f"  providers: {', '.join(settings.providers) or 'none enabled'}")
    click.echo(
        f"  cadences: {', '.join(settings.cadences) or 'none'}; policies: {', '.join(settings.policies) or 'none'}"
    )
    click.echo(f"  mail: {settings.mail.backend}")
    for warning in settings.warnings:
        click.echo(f"  warning: {warning}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.command()
@click.option(
    "--emulators",
    is_flag=True,
    help="Also enable QuickBooks and Xero pointed at the bundled emulators (their ids, secrets and webhook keys).",
)
@click.option(
    "--database-url",
    default="",
    help="Database URL, written to .env as NUDGE_DATABASE_URL (default: SQLite under the instance folder).",
)
@click.option(
    "--port-offset",
    type=click.IntRange(0, 50000),
    default=0,
    envvar="NUDGE_PORT_OFFSET",
    show_default=True,
    help="Add this to every local port (web 5000, QuickBooks emulator 8765, Xero emulator 8402) if they are taken.",
)
@click.option(
    "--force", is_flag=True, help="Overwrite an existing nudge.yaml and .env (new keys: stored tokens are lost)."
)
@pass_context
def init(context: _Context, emulators: bool, database_url: str, port_offset: int, force: bool) -> None:
    """Write a ready nudge.yaml and a .env with fresh keys (unless a config exists), then create and migrate the
    database. With an existing config (--config / $NUDGE_CONFIG / ./nudge.yaml) and no --force it only migrates."""
    if database_url and not re.fullmatch(r"(sqlite|postgresql)(\+\w+)?://\S+", database_url):
        raise click.BadParameter(
            "expected a sqlite:/// or postgresql:// URL without spaces", param_hint="--database-url"
        )
    config = Path(context.config or DEFAULT_CONFIG_FILE).resolve()
    if config.exists() and not force:
        if emulators or database_url:
            raise click.ClickException(f"{config} exists: leaving it alone (use --force to write a new one)")
        click.echo(f"using the existing {config}")
    else:
        env_file = config.parent / ENV_FILE
        if env_file.exists() and not force:
            raise click.ClickException(f"{env_file} exists: leaving it alone (use --force to write a new one)")
        written = _write_starter_files(
            config, env_file, emulators=emulators, database_url=database_url, offset=port_offset
        )
        for line in written:
            click.echo(line)
    context.config = str(config)
    _migrate(context)
    if not emulators:
        return
    click.echo(
        "next: `nudge dev` in this folder starts both emulators (each with a demo company), the web app on "
        f"http://127.0.0.1:{WEB_PORT + port_offset} and a worker; Ctrl-C stops them all"
    )


def _migrate(context: _Context) -> None:
    """Create the instance folder and the database, migrated, with the starter library (the old `init`)."""
    load_env_files(context.config)
    settings = context.settings
    os.makedirs(settings.instance_path, exist_ok=True)
    services = context.services()
    services.store.upgrade()
    seed_organizations(services.store, settings, services.clock.now())
    click.echo(f"database ready: {_safe_url(settings.database.url)}")


DEFAULT_CONFIG_FILE = "nudge.yaml"
WEB_PORT = 5000


def _write_starter_files(config: Path, env_file: Path, *, emulators: bool, database_url: str, offset: int) -> list[str]:
    """nudge.yaml and .env (mode 0600) for this folder; the lines to tell the user."""
    from connector.vault.keyring import generate_key

    base_url = f"http://127.0.0.1:{WEB_PORT + offset}"
    env = {"NUDGE_CONFIG": str(config), "NUDGE_VAULT_KEY": generate_key(), "NUDGE_SECRET_KEY": generate_key()}
    if database_url:
        env["NUDGE_DATABASE_URL"] = database_url
    setups = _emulator_setups(base_url, offset) if emulators else []
    for setup in setups:
        env.update(setup.env)
    shadowed = sorted(name for name in env if os.environ.get(name, env[name]) != env[name])
    config.parent.mkdir(parents=True, exist_ok=True)
    text = _starter_config(base_url, WEB_PORT + offset, database_url=bool(database_url), setups=setups)
    config.write_text(text, encoding="utf-8")
    _write_private(env_file, _env_text(env))
    lines = [
        f"wrote {config}" + (" (QuickBooks and Xero on the local emulators)" if setups else ""),
        f"wrote {env_file} (mode 0600): the vault key and session secret; keep it private and back it up with the "
        "database (without NUDGE_VAULT_KEY the stored tokens cannot be opened)",
    ]
    if shadowed:  # a variable of the environment wins over .env: say so before it seals the database
        lines.append(
            f"warning: {', '.join(shadowed)} already set in this shell win over the new .env; unset them "
            "(or copy their values into .env) so every later shell uses the same keys"
        )
    if not setups:
        lines.append(
            "next: add your QuickBooks / Xero app under providers: in nudge.yaml (config.example.yaml shows every "
            "key), then `nudge serve` and `nudge worker` from this folder"
        )
    return lines


def _emulator_setups(base_url: str, offset: int) -> list[Any]:
    """Each installed emulator kit's LocalSetup (`nudge.emulators` entry points: a production install has none)."""
    setups = []
    for entry in sorted(entry_points(group="nudge.emulators"), key=lambda entry: entry.name):
        try:
            kit = entry.load()
        except ModuleNotFoundError:
            continue
        setups.append(kit.local_setup(base_url, offset))
    if not setups:
        raise click.ClickException("no emulators are installed here (a production install): run `nudge init` alone")
    return setups


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by the owner only from the first byte on."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def _env_text(env: dict[str, str]) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    header = (
        f"# Written by `nudge init` on {stamp}. Every Nudge process started in this folder (or with the nudge.yaml\n"
        "# beside this file) reads it; a variable already set in the environment wins. Keep it private.\n"
    )
    return header + "".join(f"{name}={value}\n" for name, value in env.items())


def _starter_config(base_url: str, port: int, *, database_url: bool, setups: list[Any]) -> str:
    """A commented nudge.yaml in the shape of config.example.yaml, with local defaults."""
    import yaml

    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    database = (
        "  url: ${NUDGE_DATABASE_URL}            # in .env\n"
        if database_url
        else "  # url: postgresql://user@host:5432/nudge   # default: SQLite under instance_path (zero set-up)\n"
    ) + "  pool_size: 5                           # PostgreSQL connections per process\n"
    parts = [
        f"# Written by `nudge init` on {stamp}. Every key and its default: config.example.yaml in Nudge's source.\n"
        "# Secrets are not in this file: ${NAME} reads NAME from the environment, else from .env beside this file.\n"
        "# Check it with `nudge check-config`.\n\n",
        "# The SQLite database and the development outbox (relative to this file).\n",
        "instance_path: instance\n\n",
        "# development: provider URLs may be a local emulator; production: only the providers' own https hosts.\n",
        f"mode: {'development' if setups else 'production'}\n\n",
        "database:\n",
        database,
        "\nvault:\n",
        "  active_key: k1\n",
        "  keys:\n",
        "    k1: ${NUDGE_VAULT_KEY}                # in .env: encrypts OAuth tokens at rest\n",
        "\nweb:\n",
        "  secret_key: ${NUDGE_SECRET_KEY}        # in .env: signs session cookies\n",
        f"  base_url: {base_url}\n",
        "  host: 127.0.0.1\n",
        f"  port: {port}\n",
        "  # Cookies only over https; `nudge dev` switches this off for its plain-http web app and says so.\n",
        "  session_cookie_secure: true\n",
        "  # /privacy and /terms: your own pages (privacy_url: https://...) or files shown in the site frame\n",
        "  # (privacy_file: privacy.md); a placeholder until then. The same for terms_url / terms_file.\n",
        "\nmail:\n",
        "  backend: maildir                       # reminders land as files under instance/outbox; smtp sends them\n",
        "  from_address: billing@example.com\n",
    ]
    if setups:
        parts += [
            "\nscheduler:\n",
            "  tick_seconds: 5                        # a worker looks for due work every 5 s (default 30)\n",
            "\n# The bundled emulators on 127.0.0.1 (`nudge dev` starts them); their ids and keys are in .env.\n",
            "# For a real app, set mode: production, remove api_base / identity_base / environment, put your\n",
            "# app's keys in .env and register the redirect URIs with the provider (docs/marketplace.md).\n",
            "providers:\n",
            _indented(yaml.safe_dump({setup.provider: setup.block for setup in setups}, sort_keys=False)),
        ]
    else:
        parts += ["\n# providers: your QuickBooks / Xero app (see config.example.yaml)\nproviders: {}\n"]
    parts += ["\n", _starter_library()]
    return "".join(parts)


def _indented(text: str) -> str:
    return "".join(f"  {line}" for line in text.splitlines(keepends=True))


def _starter_library() -> str:
    """The starter library (`cadences:` and `policies:`), as config.example.yaml documents it."""
    from importlib.resources import files

    return files("connector.library").joinpath("starter_library.yaml").read_text(encoding="utf-8")


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_context
def db_upgrade(context: _Context, revision: str) -> None:
    """Apply the Alembic migrations."""
    services = context.services()
    services.store.upgrade(revision)
    click.echo(f"database upgraded to {revision}")
    if revision == "head":
        seeded = seed_organizations(services.store, context.settings, services.clock.now())
        if seeded:
            click.echo(f"{seeded} organization(s) given the starter library (cadences, policies, templates)")


@main.group()
def keys() -> None:
    """Encryption keys for stored secrets."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new random key (put it in the environment, e.g. NUDGE_VAULT_KEY)."""
    from connector.vault.keyring import generate_key

    click.echo(generate_key())


@keys.command("rotate")
@pass_context
def keys_rotate(context: _Context) -> None:
    """Re-seal every stored secret with vault.active_key (safe while Nudge runs)."""
    from connector.vault.rotation import rotate

    services = context.services()
    report = rotate(services.store, services.vault)
    click.echo(
        f"re-sealed {report.resealed} secret(s) with key {services.vault.active_key_id!r}; "
        f"{report.already_current} already current"
    )
    if report.skipped_concurrent:
        click.echo(f"{report.skipped_concurrent} changed while rotating: run the command again", err=True)
        sys.exit(1)
    click.echo("older keys can now be removed from vault.keys")


@main.group()
def users() -> None:
    """Local user accounts."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--organization", "organization", required=True, help="Organization name (created if new).")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.OWNER.value, show_default=True)
@click.option("--name", "display_name", default="")
@click.option("--password", default=None, help="Prompted (hidden) when not given; unused for an existing user.")
@pass_context
def users_create(
    context: _Context, email: str, organization: str, role: str, display_name: str, password: str | None
) -> None:
    """Create a user and give them a role in an organization; for an existing user (one person, several
    organizations), add the role in that organization (their password stays as it is)."""
    services = context.services()
    with services.store.unit_of_work() as uow:
        user = uow.users.by_email(email)
        org = uow.organizations.by_name(organization)
        is_new = user is None
        if user is not None:
            if org is not None and uow.memberships.role(user.id, org.id) is not None:
                raise click.ClickException(f"a user with email {user.email} already exists in {org.name}")
            if password is not None:
                click.echo(f"{user.email} already has an account: --password is ignored", err=True)
        else:
            if password is None:
                password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
            try:
                user = create_user(uow, email, password or "", display_name)
            except ValueError as exc:
                raise click.ClickException(str(exc)) from None
        created = org is None
        org = org or create_organization(uow, organization, context.settings, datetime.now(UTC))
        uow.memberships.add(user.id, org.id, Role(role))
        uow.activities.record(org.id, "user.created" if is_new else "member.added", user.email, actor="cli")
        uow.commit()
        verb = "created" if is_new else "added"
        where = f"{org.name}, {'new ' if created else ''}organization id {org.id}"
        click.echo(f"{verb} {user.email} ({role} of {where})")


def _load_plugins() -> None:
    """Add the commands of the `nudge.commands` entry points; one whose module is not installed is skipped
    (a production wheel declares `demo` and `emulator` but ships without providers/_emulator)."""
    for entry in entry_points(group="nudge.commands"):
        if entry.name in main.commands:
            continue
        try:
            command = entry.load()
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if not missing or not (entry.module == missing or entry.module.startswith(f"{missing}.")):
                raise  # an installed module with a broken import is a bug, not an absent plugin
            continue
        main.add_command(command, entry.name)


_plugins_loaded = False


def entry() -> None:
    """Console-script entry point."""
    global _plugins_loaded
    if not _plugins_loaded:
        _load_plugins()
        _plugins_loaded = True
    load_env_files()  # before the options are read: ./.env may name NUDGE_CONFIG
    main()


@main.command()
@click.option("--connection", "connection_id", type=int, required=True, help="Connection (client) id.")
@click.option("--days", type=click.IntRange(1, 366), default=30, show_default=True)
@pass_context
def preview(context: _Context, connection_id: int, days: int) -> None:
    """Show exactly what would go out over the next DAYS days if nobody paid (nothing is sent)."""
    from sqlalchemy import select

    from connector.domain.fees import ReferenceRates
    from connector.outbox.planning import preview_connection
    from connector.storage.tables import Invoice

    services = context.services()
    settings = services.settings
    with services.store.unit_of_work() as uow:
        connection = uow.connections.by_id(connection_id)
        if connection is None:
            raise click.ClickException(f"no connection with id {connection_id}")
        numbers = dict(
            uow.session.execute(
                select(Invoice.external_id, Invoice.number).where(Invoice.connection_id == connection_id)
            ).all()
        )
        name, chasing = connection.name, connection.chasing
        managed_by = _organization_name(uow, connection.managed_by_organization_id)
        synced = bool(numbers) or _last_sync(uow, connection_id, ok_only=True) is not None
    if not synced:
        click.echo(f"no synced data yet for {name}: run `nudge run --connection {connection_id}` first")
        return
    if chasing == "managed_elsewhere":
        click.echo(f"{name} is managed by {managed_by or 'another organization'}: nothing is planned or sent from here")
        return
    rates = ReferenceRates(settings.statutory.uk_base_rate, settings.statutory.eu_reference_rate)
    rows = preview_connection(services.store, connection_id, settings.rules, services.clock.now(), days, rates=rates)
    click.echo(f"Preview for {name}: next {days} days, assuming nobody pays ({len(rows)} actions)")
    if chasing == "review":
        click.echo(
            f"(waiting for review: nothing goes out until approved; see `nudge review --connection {connection_id}`)"
        )
    header = f"{'date':<10}  {'customer':<24}  {'invoice':<16}  {'action':<15}  {'amount':>14}  rule"
    click.echo(header)
    click.echo("-" * len(header))
    for row in rows:
        invoices = ", ".join(numbers.get(i, i) for i in row.invoices)
        amount = f"{row.amount.amount:,} {row.amount.currency}" if row.amount else ""
        action = row.kind + (" (approval)" if row.requires_approval else "")
        click.echo(
            f"{row.local_date.isoformat():<10}  {row.customer[:24]:<24}  {invoices[:16]:<16}  {action:<15}  "
            f"{amount:>14}  {row.rule}"
        )


@main.command("report")
@click.option("--connection", "connection_id", type=int, help="Only this connection (default: every connection).")
@click.option(
    "--days", type=click.IntRange(1, 3660), default=90, show_default=True, help="Payments of the last DAYS days."
)
@pass_context
def report(context: _Context, connection_id: int | None, days: int) -> None:
    """Recovery per cadence step (reminders sent, invoices paid within 7 days, amount recovered) and
    the ledger documents Nudge created (fee invoices, credits) with the invoice each belongs to."""
    from datetime import timedelta

    from sqlalchemy import select

    from connector.outbox.attribution import recovery_by_step
    from connector.outbox.money import own_documents
    from connector.storage.tables import Connection, Invoice

    services = context.services()
    since = services.clock.now().date() - timedelta(days=days)
    with services.store.unit_of_work() as uow:
        query = select(Connection.id).order_by(Connection.id)
        if connection_id is not None:
            query = query.where(Connection.id == connection_id)
        ids = list(uow.session.scalars(query))
        if connection_id is not None and not ids:
            raise click.ClickException(f"no connection with id {connection_id}")
        steps = recovery_by_step(uow, ids, since)
        documents = [(cid, doc) for cid in ids for doc in own_documents(uow, cid).values()]
        numbers = dict(
            ((cid, ext), number)
            for cid, ext, number in uow.session.execute(
                select(Invoice.connection_id, Invoice.external_id, Invoice.number).where(Invoice.connection_id.in_(ids))
            )
        )
    click.echo(f"Recovery since {since.isoformat()} ({len(ids)} connection(s))")
    header = f"{'step':<32}  {'reminders':>9}  {'paid <=7d':>9}  {'payments':>8}  recovered"
    click.echo(header)
    click.echo("-" * len(header))
    for step in steps:
        click.echo(
            f"{step.step_id[:32]:<32}  {step.reminders_sent:>9}  {step.paid_within_7_days:>9}  "
            f"{step.payments:>8}  {step.recovered_text()}"
        )
    click.echo("")
    click.echo(f"Nudge's own documents ({len(documents)})")
    header = f"{'conn':>5}  {'document':<24}  {'kind':<15}  origin invoice"
    click.echo(header)
    click.echo("-" * len(header))
    for cid, doc in sorted(documents, key=lambda item: (item[0], item[1].external_ref)):
        origin = numbers.get((cid, doc.origin_invoice_external_id), doc.origin_invoice_external_id)
        is_invoice = doc.kind.value == "late_fee"  # credits' ids are not invoice ids
        document = numbers.get((cid, doc.external_ref), doc.external_ref) if is_invoice else doc.external_ref
        click.echo(f"{cid:>5}  {document[:24]:<24}  {doc.kind.value:<15}  {origin}")


@main.command("actions")
@click.option(
    "--state",
    type=click.Choice([state.value for state in ActionState]),
    help="Only actions in this state (uncertain: emails whose delivery is unknown, to review).",
)
@click.option("--connection", "connection_id", type=int, help="Only this connection's actions.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@pass_context
def actions_list(context: _Context, state: str | None, connection_id: int | None, limit: int) -> None:
    """List outbox actions (newest change first): id, connection, kind, invoice/customer, state, attempts, error."""
    from sqlalchemy import select

    from connector.storage.tables import Action

    query = select(Action).order_by(Action.updated_at.desc(), Action.id.desc()).limit(limit)
    if state:
        query = query.where(Action.state == state)
    if connection_id is not None:
        query = query.where(Action.connection_id == connection_id)
    with context.services().store.unit_of_work() as uow:
        rows = list(uow.session.scalars(query))
    header = (
        f"{'id':>6}  {'conn':>5}  {'kind':<15}  {'invoice/customer':<24}  {'state':<17}  {'tries':>5}  "
        f"{'updated':<16}  error"
    )
    click.echo(header)
    click.echo("-" * len(header))
    for row in rows:
        subject = f"{row.invoice_external_id}/{row.customer_external_id}"
        click.echo(
            f"{row.id:>6}  {row.connection_id:>5}  {row.kind:<15}  {subject[:24]:<24}  {row.state:<17}  "
            f"{row.attempts:>5}  {row.updated_at:%Y-%m-%d %H:%M}  {row.error}"
        )
    click.echo(f"{len(rows)} action(s)")


@main.command("retry")
@click.option("--action", "action_id", type=int, required=True, help="The failed action's id (see `nudge actions`).")
@click.option("--by", "--actor", "actor", default=None, help="Who retries (recorded; default: the OS user).")
@pass_context
def retry_command(context: _Context, action_id: int, actor: str | None) -> None:
    """Put a failed action back in the outbox (attempts reset, same idempotency key: never written twice)."""
    from connector.receivables.actions import organization_of_action, retry_action
    from connector.review.commands import _default_actor

    services = context.services()
    org_id = organization_of_action(services.store, action_id)
    view = retry_action(services.store, org_id, action_id, actor or _default_actor(), services.clock.now())
    click.echo(
        f"action {view.id} ({view.kind}, connection {view.connection_id}) is planned again: it runs at the next tick"
    )


@main.command("mark-sent")
@click.option("--action", "action_id", type=int, required=True, help="The uncertain email's id (see `nudge actions`).")
@click.option("--by", "--actor", "actor", default=None, help="Who checked it arrived (recorded; default: the OS user).")
@pass_context
def mark_sent_command(context: _Context, action_id: int, actor: str | None) -> None:
    """Record that an email whose delivery was uncertain did reach the customer (it then counts as sent)."""
    from connector.receivables.actions import mark_sent, organization_of_action
    from connector.review.commands import _default_actor

    services = context.services()
    org_id = organization_of_action(services.store, action_id)
    view = mark_sent(services.store, org_id, action_id, actor or _default_actor(), services.clock.now())
    click.echo(f"action {view.id} (reminder, connection {view.connection_id}) is recorded as sent")


def _organization_name(uow: Any, org_id: int | None) -> str:
    from connector.storage.tables import Organization

    organization = uow.session.get(Organization, org_id) if org_id is not None else None
    return organization.name if organization is not None else ""


def _last_sync(uow: Any, connection_id: int, *, ok_only: bool = False) -> Any:
    """The connection's latest sync run (the latest successful one with `ok_only`), or None."""
    from sqlalchemy import select

    from connector.storage.tables import SyncRun

    query = select(SyncRun).where(SyncRun.connection_id == connection_id)
    if ok_only:
        query = query.where(SyncRun.outcome == "ok")
    return uow.session.scalars(query.order_by(SyncRun.started_at.desc(), SyncRun.id.desc()).limit(1)).first()


def _chasing_words(connection: Any, managed_by: str) -> str:
    """`Connection.chasing` as a person says it."""
    if connection.chasing == "review":
        return "waiting for review"
    if connection.chasing == "managed_elsewhere":
        return f"managed by {managed_by or 'another organization'}"
    if connection.chasing_since is not None:
        return f"active since {connection.chasing_since:%Y-%m-%d}"
    return "active"


@main.command("connections")
@pass_context
def connections_command(context: _Context) -> None:
    """Every connection: id, organization, provider, name, status, who chases it, last sync, next run, last error."""
    from sqlalchemy import select

    from connector.storage.tables import Connection

    with context.services().store.unit_of_work() as uow:
        rows = []
        for connection in uow.session.scalars(select(Connection).order_by(Connection.id)):
            last = _last_sync(uow, connection.id)
            synced = "never" if last is None else f"{last.finished_at or last.started_at:%Y-%m-%d %H:%M} {last.outcome}"
            next_run = f"{connection.next_run_at:%Y-%m-%d %H:%M}" if connection.next_run_at else "-"
            status = {"needs_reauth": "needs reconnect"}.get(connection.status, connection.status)
            managed_by = _organization_name(uow, connection.managed_by_organization_id)
            rows.append(
                (
                    connection.id,
                    _organization_name(uow, connection.organization_id),
                    connection.provider,
                    connection.name,
                    status,
                    _chasing_words(connection, managed_by),
                    synced,
                    next_run,
                    connection.last_error,
                )
            )
    headers = (
        "id",
        "organization",
        "provider",
        "name",
        "status",
        "chasing",
        "last sync (UTC)",
        "next run (UTC)",
        "last error",
    )
    for line in _table(headers, [tuple(str(value) for value in row) for row in rows]):
        click.echo(line)
    click.echo(f"{len(rows)} connection(s)")


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]], widest: int = 60) -> list[str]:
    """Aligned text columns as wide as their longest value (at most `widest`; the last column is never cut)."""
    widths = [
        min(widest, max([len(header)] + [len(row[index]) for row in rows])) for index, header in enumerate(headers)
    ]

    def line(values: tuple[str, ...]) -> str:
        cells = [value[:width].ljust(width) for value, width in zip(values[:-1], widths, strict=False)]
        return "  ".join([*cells, values[-1]]).rstrip()

    header = line(headers)
    return [header, "-" * len(header), *(line(row) for row in rows)]


def _worker(services: Any, *, echo: bool) -> Any:
    from connector.worker.scheduler import Lease, Worker
    from connector.worker.turn import run_connection

    reminders = services.reminder_sender()

    def process(connection_id: int, lease: Lease) -> None:
        turn = run_connection(
            services, connection_id, lease.owner, reminders=reminders, renew=lease.renew, should_stop=lease.should_stop
        )
        if echo:
            done = turn.execution
            click.echo(
                f"connection {connection_id}: synced {turn.sync.changed} change(s) in {turn.sync.calls} call(s); "
                f"planned {turn.plan.planned} ({turn.plan.awaiting_approval} awaiting approval); "
                f"done {len(done.done)}, cancelled {len(done.cancelled)}, retrying {len(done.retried)}, "
                f"failed {len(done.failed)}, uncertain {len(done.uncertain)}"
            )

    # SQLite serializes writers: one connection at a time there; PostgreSQL takes the configured threads.
    concurrency = services.settings.scheduler.concurrency if services.store.dialect == "postgresql" else 1
    from connector.worker.replies import reply_jobs

    return Worker(
        services.store,
        process,
        services.settings.scheduler,
        services.clock,
        concurrency=concurrency,
        periodic=reply_jobs(services),
    )


@main.command("run")
@click.option("--connection", "connections", type=int, multiple=True, help="Only this connection (repeatable).")
@pass_context
def run_once(context: _Context, connections: tuple[int, ...]) -> None:
    """One pass: sync, plan and carry out what is due, for every due connection (or the ones named)."""
    services = context.services()
    named = list(dict.fromkeys(connections))
    with services.store.unit_of_work() as uow:
        unknown = [cid for cid in named if uow.connections.by_id(cid) is None]
    if unknown:  # before the vault check: a typo in the id is the thing to fix first
        for connection_id in unknown:
            click.echo(f"error: no connection with id {connection_id}", err=True)
        sys.exit(1)
    services.require_vault()  # fail closed (no key, or not this database's key) before touching any connection
    not_runnable = _not_runnable(services, named)
    worker = _worker(services, echo=True)
    runnable = [cid for cid in named if cid not in not_runnable]
    report = worker.tick(only=runnable) if named and runnable else worker.tick() if not named else None
    claimed = report.claimed if report is not None else []
    for connection_id, error in sorted(report.failed.items() if report is not None else ()):
        click.echo(f"connection {connection_id}: {error}", err=True)
    for connection_id in runnable:
        if connection_id not in claimed:
            not_runnable[connection_id] = "busy: another worker holds it right now; try again in a moment"
    for connection_id, reason in sorted(not_runnable.items()):
        click.echo(f"connection {connection_id} not run: {reason}", err=True)
    if not named and not claimed:
        click.echo("nothing due")
    failed = report.failed if report is not None else {}
    done = report.succeeded if report is not None else []
    click.echo(f"{len(done)} connection(s) done, {len(failed)} failed")
    if failed or not_runnable:
        sys.exit(1)


def _not_runnable(services: Any, connection_ids: list[int]) -> dict[int, str]:
    """Why each named connection cannot be run now (disconnected, needs reconnect); runnable ones are absent.

    A connection in review runs (sync and plan: its actions wait for approval); one managed elsewhere
    runs its sync only (nothing is planned for it)."""
    from connector.domain.model import ConnectionStatus

    reasons: dict[int, str] = {}
    with services.store.unit_of_work() as uow:
        for connection_id in connection_ids:
            connection = uow.connections.by_id(connection_id)
            if connection is None:
                reasons[connection_id] = f"no connection with id {connection_id}"
            elif connection.status == ConnectionStatus.DISCONNECTED.value:
                reasons[connection_id] = f"{connection.name} is disconnected; connect it again to chase it"
            elif connection.status == ConnectionStatus.NEEDS_REAUTH.value:
                reasons[connection_id] = (
                    f"{connection.name} needs to be reconnected (sign in to {connection.provider} again): "
                    f"{connection.last_error or 'access was refused'}"
                )
            elif connection.chasing == "review":
                click.echo(
                    f"connection {connection_id}: waiting for review, so planned actions wait for approval "
                    f"(nudge review --connection {connection_id})"
                )
            elif connection.chasing == "managed_elsewhere":
                manager = _organization_name(uow, connection.managed_by_organization_id) or "another organization"
                click.echo(f"connection {connection_id}: managed by {manager}, so it is synced only")
    return reasons


@main.command()
@pass_context
def worker(context: _Context) -> None:
    """Run in the background: every scheduler.tick_seconds, process due connections until SIGTERM."""
    import logging

    from connector.worker.scheduler import run_forever

    logging.basicConfig(level=context.settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    services = context.services()
    services.require_vault()
    click.echo(f"worker started (tick every {context.settings.scheduler.tick_seconds} s); stop with Ctrl-C or SIGTERM")
    if run_forever(_worker(services, echo=True), context.settings.scheduler):
        click.echo("worker stopped")
        return
    click.echo("worker stopped after the shutdown grace period with work in hand; its leases will expire", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(3)  # the thread in hand would keep the interpreter alive past the grace period


main.add_command(tasks_commands)  # `nudge tasks` and `nudge tasks done` (connector.tasks.commands)
main.add_command(library_commands)  # `nudge library export` and `import` (connector.library.commands)
for _command in review_commands:  # `nudge review`, `approve`, `skip`, `access` (connector.review.commands)
    main.add_command(_command)

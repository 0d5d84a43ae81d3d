"""`nudge demo`, `nudge emulator` and `nudge dev`: plugged into the `nudge` command through the `nudge.commands`
entry-point group, so connector/ never loads an emulator. Provider emulators arrive through the
`nudge.emulators` group (one `EmulatorKit` factory per provider key)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import click

from connector.config import load_settings
from providers._emulator.dev import WEBHOOK_KEY_VARIABLE, DevRun, plan
from providers._emulator.kit import emulator_kit, emulator_names


@click.command("emulator", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("provider")
@click.option(
    "--seed",
    type=click.Choice(["demo"]),
    default=None,
    help="Start with the demo's company (customers and open invoices around today), as `nudge dev` does.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port on 127.0.0.1.")
@click.option("--webhook-url", default="", help="With --seed: deliver the emulator's webhooks to this URL.")
@click.option("--webhook-key", default="", envvar=WEBHOOK_KEY_VARIABLE, help="... signed with this key.")
@click.pass_context
def emulator(
    ctx: click.Context, provider: str, seed: str | None, port: int | None, webhook_url: str, webhook_key: str
) -> None:
    """Run a provider's local emulator (e.g. `nudge emulator quickbooks --port 8101`; `--seed demo`)."""
    if provider not in emulator_names():
        raise click.ClickException(
            f"no emulator for provider {provider!r} (installed: {', '.join(emulator_names()) or 'none'})"
        )
    if seed is None:
        if webhook_url:
            raise click.UsageError("--webhook-url goes with --seed demo (the emulator's own options: --help)")
        arguments = [*(["--port", str(port)] if port is not None else []), *ctx.args]
        sys.exit(emulator_kit(provider).main(arguments))
    if ctx.args:
        raise click.UsageError(f"with --seed demo only --port and --webhook-url/--webhook-key apply: {ctx.args}")
    serve_seeded(provider, port, webhook_url, webhook_key)


def serve_seeded(provider: str, port: int | None, webhook_url: str, webhook_key: str) -> None:
    """Serve `provider`'s emulator with the demo's company until SIGTERM or Ctrl-C."""
    from providers._emulator.demo import seed_demo_company

    kit = emulator_kit(provider)
    kit_class = type(kit)
    chosen = port if port is not None else kit_class.local_setup("", 0).port  # type: ignore[attr-defined]
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    kit.start(port=chosen)
    try:
        tenant, customers, invoices = seed_demo_company(kit)
        click.echo(f"seeded the demo company {tenant} ({customers} customers, {invoices} invoices)")
        if webhook_url:
            kit.point_webhooks(webhook_url, webhook_key)  # type: ignore[attr-defined]
            click.echo(f"webhooks go to {webhook_url}")
        click.echo(f"{provider} emulator on {kit.url}", nl=True)
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    finally:
        kit.stop()


@click.command("dev")
@click.option("--stop-timeout", type=click.FloatRange(0.5, 120), default=10, show_default=True, hidden=True)
@click.pass_context
def dev(ctx: click.Context, stop_timeout: float) -> None:
    """Run the emulators (seeded with the demo's companies), the web app and a worker in one terminal, each line
    prefixed with its name; Ctrl-C stops them all. Local plain-http development only."""
    settings = getattr(ctx.obj, "settings", None) or load_settings()
    config = getattr(ctx.obj, "config", None)
    sys.exit(DevRun(plan(settings, config), stop_timeout=stop_timeout).run())


@click.command("demo")
@click.option("--days", type=click.IntRange(1, 365), default=60, show_default=True, help="Days to simulate.")
@click.option("--out", "out", type=click.Path(file_okay=False), default="demo-out", show_default=True)
@click.option("--seed", type=int, default=2026, show_default=True, help="Random seed (same seed, same story).")
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="First simulated day (YYYY-MM-DD, midnight UTC); default: DAYS days ago, so the last one is yesterday.",
)
def demo(days: int, out: str, seed: int, start: datetime | None) -> None:
    """Run the whole job against the bundled QuickBooks and Xero emulators and print what happened."""
    from providers._emulator.demo import run_demo

    first = start.replace(tzinfo=UTC) if start is not None else None
    summary = run_demo(days=days, out=Path(out), seed=seed, echo=click.echo, start=first)
    if summary.reminded_paid_invoices or summary.duplicate_keys:
        raise click.ClickException("the demo saw a reminder about a paid invoice or a duplicate effect")

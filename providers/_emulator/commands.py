"""`nudge demo` and `nudge emulator`: plugged into the `nudge` command through the `nudge.commands`
entry-point group, so connector/ never loads an emulator. Provider emulators arrive through the
`nudge.emulators` group (one `EmulatorKit` factory per provider key)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from providers._emulator.kit import emulator_kit, emulator_names


@click.command("emulator", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("provider")
@click.pass_context
def emulator(ctx: click.Context, provider: str) -> None:
    """Run a provider's local emulator (e.g. `nudge emulator quickbooks --port 8101`)."""
    if provider not in emulator_names():
        raise click.ClickException(
            f"no emulator for provider {provider!r} (installed: {', '.join(emulator_names()) or 'none'})"
        )
    sys.exit(emulator_kit(provider).main(list(ctx.args)))


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

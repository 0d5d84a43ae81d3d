"""Finding the installed provider emulators: the `nudge.emulators` entry-point group names one
kit factory per provider key (a development install has them; a production wheel has none)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

GROUP = "nudge.emulators"


def emulator_names() -> list[str]:
    """Provider keys whose emulator is installed."""
    return sorted(entry.name for entry in entry_points(group=GROUP))


def emulator_kit(name: str) -> Any:
    """A fresh kit for provider `name`'s emulator; LookupError when none is installed."""
    for entry in entry_points(group=GROUP):
        if entry.name == name:
            return entry.load()()
    raise LookupError(f"no emulator installed for provider {name!r}")

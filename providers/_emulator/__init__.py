"""Shared machinery of the local provider emulators (not a provider: the registry skips `_` names).

An emulator is a Flask app built by its provider's `emulator` package on top of `EmulatorCore`:
a movable clock, a call log, per-test fault injection, added latency, and per-tenant rate and
concurrency limits. Each provider formats limit and fault responses in its own wire shapes.
"""

from providers._emulator.admin import register_admin
from providers._emulator.core import (
    CallRecord,
    EmulatorClock,
    EmulatorCore,
    Fault,
    LimitDecision,
    RateLimits,
)
from providers._emulator.kit import ChildEmulator, EmulatorKit, KitBase, LocalSetup, PostalAddress
from providers._emulator.server import RunningServer, serve

__all__ = [
    "CallRecord",
    "ChildEmulator",
    "EmulatorClock",
    "EmulatorCore",
    "EmulatorKit",
    "Fault",
    "KitBase",
    "LimitDecision",
    "LocalSetup",
    "PostalAddress",
    "RateLimits",
    "RunningServer",
    "register_admin",
    "serve",
]

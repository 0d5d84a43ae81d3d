"""How the Xero emulator's module-level views reach the state of the app serving them."""

from __future__ import annotations

from flask import current_app

from providers.xero.emulator.state import XeroState

EXTENSION = "xero_emulator"  # the app.extensions key of the app's XeroState


def current() -> XeroState:
    """The XeroState of the app handling the current request."""
    state: XeroState = current_app.extensions[EXTENSION]
    return state

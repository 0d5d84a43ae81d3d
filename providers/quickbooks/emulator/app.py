"""Flask app of the QuickBooks Online emulator: OAuth + discovery (identity.py), the v3 accounting API
(api.py) and the admin routes (admin.py, plus the shared ones), all module-level views reading the
app's `Emulator` (runtime.py) from `app.extensions`.
"""

from __future__ import annotations

from flask import Flask

from providers._emulator import register_admin
from providers.quickbooks.emulator.admin import admin
from providers.quickbooks.emulator.api import api
from providers.quickbooks.emulator.identity import identity
from providers.quickbooks.emulator.runtime import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EXTENSION, Emulator

__all__ = ["DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "Emulator", "build_app"]


def build_app(emu: Emulator) -> Flask:
    """The emulator's WSGI app serving `emu`."""
    app = Flask("providers.quickbooks.emulator")
    app.config["MAX_CONTENT_LENGTH"] = 4 * 1024 * 1024
    app.extensions[EXTENSION] = emu
    app.register_blueprint(api)
    app.register_blueprint(identity)
    register_admin(app, emu.core)
    app.register_blueprint(admin)
    return app

"""A faithful local Xero: identity, /connections and the Accounting API on 127.0.0.1 (docs/design.md "Emulators").

    handle = start()                      # or: python -m providers.xero.emulator --port 8402
    handle.url                            # http://127.0.0.1:PORT  (identity_base)
    handle.api_base                       # http://127.0.0.1:PORT/api.xro/2.0
    tenant = handle.add_tenant("Demo Company (NZ)")
    tokens = handle.grant([tenant])       # consent without the browser: a token response dict
    handle.stop()

Admin API (JSON, under /__admin): clock, faults, calls, latency, limits (shared kit) and seed,
generate, payments, invoices/update, tenants/<id>, reminders, oauth, grant, tokens/expire, revoke,
throttle, connections/remove, webhooks, webhooks/intent, webhooks/flush, reset.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from dataclasses import dataclass
from typing import Any

from providers._emulator import EmulatorCore, RunningServer, serve
from providers.xero.emulator.app import XERO_LIMITS, create_app
from providers.xero.emulator.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, XeroState


@dataclass
class XeroEmulator:
    """A running emulator: `.url`, `.core`, `.state`, `.stop()`; a context manager."""

    server: RunningServer
    state: XeroState

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api_base(self) -> str:
        return f"{self.server.url}/api.xro/2.0"

    @property
    def core(self) -> EmulatorCore:
        return self.state.core

    def add_tenant(self, name: str, **kwargs: Any) -> str:
        """A new organisation; returns its tenantId."""
        return self.state.add_tenant(name, **kwargs).tenant_id

    def grant(self, tenants: list[str], scope: str = "") -> dict[str, Any]:
        """Consent for `tenants` without the authorize page: the token endpoint's JSON body."""
        with self.state.lock:
            scopes = (
                scope
                or "openid profile email offline_access accounting.transactions accounting.contacts "
                "accounting.settings.read"
            ).split()
            grant = self.state.approve(next(iter(self.state.clients)), tenants, scopes)
            return self.state.issue_tokens(grant)

    def stop(self) -> None:
        self.state.close()
        self.server.stop()

    def __enter__(self) -> XeroEmulator:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start(
    port: int = 0,
    *,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    redirect_uris: list[str] | None = None,
    limits: dict[str, int] | None = None,
) -> XeroEmulator:
    """Serve a fresh emulator on 127.0.0.1:`port` (0 = any free port) in a background thread."""
    app = create_app(client_id=client_id, client_secret=client_secret, redirect_uris=redirect_uris, limits=limits)
    state: XeroState = app.extensions["xero_emulator"]
    return XeroEmulator(serve(app, port=port), state)


def main(argv: list[str] | None = None) -> int:
    """`nudge emulator xero --port N`: run until interrupted."""
    parser = argparse.ArgumentParser(prog="nudge emulator xero", description="Run the local Xero emulator.")
    parser.add_argument("--port", type=int, default=8402)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--redirect-uri", action="append", default=[], help="allowed redirect URI (repeatable)")
    parser.add_argument("--no-limits", action="store_true", help="switch the Xero rate limits off")
    parser.add_argument("--demo", action="store_true", help="seed one organisation with a few invoices")
    args = parser.parse_args(argv)
    handle = start(
        args.port,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uri,
        limits={} if args.no_limits else None,
    )
    if args.demo:
        tenant = handle.add_tenant("Demo Company (NZ)")
        with handle.state.lock:
            handle.state.ledgers[tenant].bulk_invoices(25, 5, handle.state.now())
            handle.state.ledgers[tenant].events.clear()
    print(f"Xero emulator on {handle.url} (api {handle.api_base}; client_id {args.client_id})", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    handle.stop()
    return 0


__all__ = ["XERO_LIMITS", "XeroEmulator", "create_app", "main", "start"]

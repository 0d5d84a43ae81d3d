"""A local QuickBooks Online emulator: a real HTTP server on 127.0.0.1 that python-quickbooks and
intuit-oauth talk to (OAuth + discovery, v3 accounting API, CDC, batch, webhooks, faults, limits).

    handle = start()                       # in-process, any free port
    handle.url                             # http://127.0.0.1:PORT
    handle.discovery_url                   # AuthClient(environment=...) / ProviderSettings.environment
    handle.api_base                        # http://127.0.0.1:PORT/v3 (ProviderSettings.api_base)
    handle.emulator.store.add_company(...) # or the admin API under /__admin
    handle.stop()

From a shell: `python -m providers.quickbooks.emulator --port 8765 [--seed-invoices N]`.
Nothing is started at import time.
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass
from typing import Any

from flask import Flask

from providers._emulator import EmulatorCore, RateLimits, RunningServer, serve
from providers.quickbooks.emulator.app import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Emulator, build_app
from providers.quickbooks.emulator.auth import OAuthSettings
from providers.quickbooks.emulator.notify import WebhookConfig
from providers.quickbooks.emulator.store import Store

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "Emulator",
    "EmulatorHandle",
    "create_app",
    "main",
    "start",
]


def create_app(
    *,
    clients: dict[str, str] | None = None,
    limits: RateLimits | None = None,
    oauth: OAuthSettings | None = None,
    webhook: WebhookConfig | None = None,
) -> Flask:
    """The emulator's WSGI app; its state is `app.extensions["qbo_emulator"]` (an Emulator)."""
    return build_app(Emulator(clients=clients, limits=limits, oauth=oauth, webhook=webhook))


@dataclass
class EmulatorHandle:
    """A started emulator: its URLs, state and `stop()` (also a context manager)."""

    url: str
    emulator: Emulator
    server: RunningServer

    @property
    def core(self) -> EmulatorCore:
        return self.emulator.core

    @property
    def store(self) -> Store:
        return self.emulator.store

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid_configuration"

    @property
    def api_base(self) -> str:
        return f"{self.url}/v3"

    def data_calls(self, realm: str | None = None) -> int:
        """Number of v3 API calls answered so far (for call-count assertions)."""
        return len(self.core.calls("data", realm))

    def stop(self) -> None:
        self.emulator.notifier.stop()
        self.server.stop()

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(port: int = 0, **kwargs: Any) -> EmulatorHandle:
    """Serve a new emulator on 127.0.0.1:`port` (0 = any free port) in a background thread."""
    app = create_app(**kwargs)
    emulator: Emulator = app.extensions["qbo_emulator"]
    server = serve(app, port=port)
    emulator.base_url = server.url
    return EmulatorHandle(url=server.url, emulator=emulator, server=server)


def main(argv: list[str] | None = None) -> int:
    """CLI entry: run the emulator in the foreground until interrupted."""
    parser = argparse.ArgumentParser(prog="nudge emulator quickbooks", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--company", default="", help="create a company with this name at start")
    parser.add_argument("--realm", default="", help="realm id of that company (digits)")
    parser.add_argument("--seed-customers", type=int, default=0)
    parser.add_argument("--seed-invoices", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--webhook-url", default="")
    parser.add_argument("--verifier-token", default="")
    args = parser.parse_args(argv)
    handle = start(
        args.port,
        clients={args.client_id: args.client_secret},
        webhook=WebhookConfig(url=args.webhook_url, verifier_token=args.verifier_token),
    )
    handle.core.latency_s = args.latency_ms / 1000
    if args.company or args.seed_invoices or args.seed_customers:
        from providers.quickbooks.emulator.seed import seed

        company = handle.store.add_company(args.company or "Emulated Company", realm=args.realm)
        seed(handle.store, company.realm, customers=args.seed_customers or 10, invoices=args.seed_invoices)
        print(f"company {company.realm} seeded", flush=True)
    print(f"QuickBooks emulator on {handle.url} (discovery {handle.discovery_url})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()
    return 0

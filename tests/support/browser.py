"""The browser tests' shared parts: a live Nudge on 127.0.0.1, and the QuickBooks emulator's consent page used
as a person uses it (Playwright)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from werkzeug.serving import make_server


@contextmanager
def serving(app: Flask, port: int = 0) -> Iterator[str]:
    """Serve `app` (threaded Werkzeug) on 127.0.0.1:`port` (0: any free one) until exit; its base URL."""
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="nudge-live", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def consent_at_intuit(page: Any, intuit_user: str, realm: str = "") -> None:
    """On the QuickBooks emulator's consent page: signed in to Intuit as `intuit_user` (its `sub`), the company
    `realm` picked when Nudge asks for one, then Connect."""
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", name="Connect your QuickBooks company")).to_be_visible()
    page.get_by_label("Signed in to Intuit as").select_option(intuit_user)
    if realm:
        page.locator(f'input[name="realm"][value="{realm}"]').check()
    page.get_by_role("button", name="Connect").click()

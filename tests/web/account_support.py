"""Shared by the account-security web tests: an app with a fake clock and a maildir outbox, and the emails in it."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

import pyotp
from flask import Flask
from flask.testing import FlaskClient

from connector.bootstrap import build
from connector.config import Settings
from connector.storage import Store
from tests.support.clock import FakeClock
from web import create_app
from web.extensions import SERVICES_KEY

LINK = re.compile(r"https?://\S+")
TOTP_SECRET = re.compile(r'data-testid="totp-secret">([A-Z2-7]+)<')


def app_with_outbox(settings: Settings, outbox: Path, clock: FakeClock) -> Iterator[Flask]:
    """The app on `settings` with account emails written to `outbox` and `clock` as its time."""
    mail = replace(settings.mail, backend="maildir", outbox_path=str(outbox))
    services = build(replace(settings, mail=mail), clock=clock)
    services.store.create_all()
    app = create_app(services.settings, services)
    yield app
    services.store.dispose()


def fake_clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


def emails(outbox: Path) -> list[Message]:
    """Every email in the outbox, oldest first."""
    files = sorted(outbox.glob("*.eml"), key=lambda path: path.stat().st_mtime_ns) if outbox.exists() else []
    return [email.message_from_bytes(path.read_bytes()) for path in files]


def body(message: Message) -> str:
    part = message.get_payload(decode=True) if not message.is_multipart() else None
    if isinstance(part, bytes):
        return part.decode("utf-8")
    for sub in message.walk():
        if sub.get_content_type() == "text/plain":
            payload = sub.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode("utf-8")
    raise AssertionError("no text part")


def link_path(message: Message) -> str:
    """The path of the one link in an account email (the test client has no host)."""
    found = LINK.findall(body(message))
    assert len(found) == 1, found
    return "/" + found[0].split("/", 3)[3]


def code_now(secret: str, clock: FakeClock) -> str:
    return pyotp.TOTP(secret).at(clock.now())


def store_of(app: Flask) -> Store:
    store: Store = app.extensions[SERVICES_KEY].store
    return store


def signed_in_client(app: Flask) -> FlaskClient:
    return app.test_client()

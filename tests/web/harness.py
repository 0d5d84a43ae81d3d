"""A Nudge web app over the real emulators, for tests that drive the browser side (tests/reliability RS-09/14/15/30/31).

`web_world` starts the QuickBooks and Xero emulators in-process (real HTTP, real SDKs), builds the app on a
SQLite file with a FakeClock, and gives helpers to make users, sign in, press "Connect" and follow the
consent back into the callback. The emulators count their token-endpoint calls (`kit.token_calls()`).
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.routing import FloatConverter, IntegerConverter, Rule, UUIDConverter
from werkzeug.test import TestResponse

from connector.accounts.users import create_user
from connector.bootstrap import Services, build
from connector.config import Settings, settings_for_tests
from connector.domain.model import Role
from connector.storage import Store
from connector.storage.tables import Base, Connection
from providers._emulator.kit import EmulatorKit, emulator_kit
from tests.support.clock import FakeClock
from tests.support.databases import migrate
from web import create_app

PASSWORD = "correct horse battery staple"
WEBHOOK_KEYS = {"quickbooks": "harness-quickbooks-verifier", "xero": "harness-xero-signing-key"}
_TOKEN = re.compile(r'name="csrf_token"[^>]*\bvalue="([^"]+)"')
_AUTHORIZE = re.compile(r'<a class="authorize" href="([^"]+)"')
SAFE = {"HEAD", "OPTIONS"}  # methods no route of Nudge implements itself


def org_rules(app: Flask) -> list[Rule]:
    """Every URL rule naming `org_id` (the organization-scoped routes), read from the URL map."""
    rules = [rule for rule in app.url_map.iter_rules() if "org_id" in rule.arguments]
    assert rules, "no organization-scoped routes found: the enumeration itself is broken"
    return rules


def rule_url(app: Flask, rule: Rule, org_id: int, *, other_id: int = 1, text: str = "x") -> str:
    """A URL of `rule` for organization `org_id`, every other int argument `other_id`, strings `text`."""
    values: dict[str, Any] = {}
    for name in rule.arguments:
        converter = rule._converters.get(name)
        if name == "org_id":
            values[name] = org_id
        elif isinstance(converter, IntegerConverter):
            values[name] = other_id
        elif isinstance(converter, FloatConverter):
            values[name] = float(other_id)
        elif isinstance(converter, UUIDConverter):
            values[name] = uuid.uuid4()
        else:
            values[name] = text
    return app.url_map.bind("localhost").build(rule.endpoint, values, force_external=False)


def send(client: FlaskClient, method: str, url: str, token: str) -> TestResponse:
    """`method` on `url`, with `token` as the form's CSRF token for unsafe methods."""
    data = {"csrf_token": token} if method not in {"GET", "HEAD", "OPTIONS"} else None
    return client.open(url, method=method, data=data)


def csrf_token(page: str) -> str:
    """The CSRF token a rendered form carries."""
    match = _TOKEN.search(page)
    assert match, "the page has no csrf_token field"
    return match.group(1)


@dataclass(frozen=True)
class Account:
    """A user in an organization, with the password to sign in."""

    user_id: int
    org_id: int
    email: str
    role: Role


@dataclass
class WebWorld:
    """The app, its store and clock, and the two emulators."""

    app: Flask
    services: Services
    clock: FakeClock
    kits: dict[str, EmulatorKit]
    settings: Settings
    _serial: Iterator[int] = field(default_factory=lambda: iter(range(1, 100_000)))

    @property
    def store(self) -> Store:
        """The app's store."""
        return self.services.store

    def user(self, org_name: str, role: Role = Role.OWNER, org_id: int | None = None) -> Account:
        """A new user, member of a new organization `org_name` (or of `org_id`)."""
        email = f"user{next(self._serial)}@example.com"
        with self.store.unit_of_work() as uow:
            org = org_id if org_id is not None else uow.organizations.add(org_name).id
            user = create_user(uow, email, PASSWORD)
            uow.memberships.add(user.id, org, role)
            uow.commit()
            return Account(user.id, org, email, role)

    def client(self, account: Account | None = None) -> FlaskClient:
        """A browser; signed in as `account` when given."""
        client = self.app.test_client()
        if self.settings.web.base_url.startswith("https://"):  # production mode: a browser on https
            client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_REFERER": "https://localhost/"})
        if account is not None:
            page = client.get("/login")
            answer = client.post(
                "/login", data={"csrf_token": csrf_token(page.text), "email": account.email, "password": PASSWORD}
            )
            assert answer.status_code == 302, answer.text
        return client

    def start_connect(self, client: FlaskClient, org_id: int, provider: str) -> str:
        """Press "Connect <provider>" on the dashboard; the provider's authorize URL."""
        page = client.get(f"/orgs/{org_id}/")
        answer = client.post(f"/orgs/{org_id}/connect/{provider}", data={"csrf_token": csrf_token(page.text)})
        assert answer.status_code == 200, answer.text
        match = _AUTHORIZE.search(answer.text)
        assert match, "no authorize link"
        return html.unescape(match.group(1))

    def consent(self, client: FlaskClient, org_id: int, provider: str, tenant: str) -> dict[str, str]:
        """Start connecting and approve `tenant` at the emulator: the callback's query (not yet sent)."""
        return self.kits[provider].approve(self.start_connect(client, org_id, provider), [tenant])

    def callback(self, client: FlaskClient, provider: str, params: dict[str, str]) -> TestResponse:
        """The browser arriving back at Nudge's callback for `provider`."""
        return client.get(f"/oauth/{provider}/callback", query_string=params)

    def token_calls(self) -> int:
        """Token-endpoint calls both emulators answered so far."""
        return sum(kit.token_calls() for kit in self.kits.values())

    def connections(self, org_id: int | None = None) -> list[Connection]:
        """The stored connections (of `org_id`), detached."""
        with self.store.unit_of_work() as uow:
            query = select(Connection).order_by(Connection.id)
            if org_id is not None:
                query = query.where(Connection.organization_id == org_id)
            rows = list(uow.session.scalars(query))
            uow.session.expunge_all()
            return rows

    def row_counts(self) -> dict[str, int]:
        """Rows per table: a snapshot to show that a request changed nothing."""
        with self.store.unit_of_work() as uow:
            return {
                table.name: int(uow.session.scalar(select(func.count()).select_from(table)) or 0)
                for table in Base.metadata.sorted_tables
            }

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table (sorted): equal snapshots mean nothing was written.

        But for a session's "last seen" stamp: any signed-in request moves it (at most once a minute, for the
        sessions list), so it is bookkeeping of the request, not a change the request made."""
        with self.store.unit_of_work() as uow:
            return {
                table.name: sorted(
                    (
                        tuple(repr(value) for value in row)
                        for row in uow.session.execute(
                            select(*(column for column in table.columns if (table.name, column.name) not in UNWATCHED))
                        )
                    ),
                    key=str,
                )
                for table in Base.metadata.sorted_tables
            }


UNWATCHED = {("user_sessions", "last_seen_at")}  # moved by any signed-in request (WebWorld.snapshot)


@contextmanager
def web_world(folder: Path, *, production: bool = False, **web: Any) -> Iterator[WebWorld]:
    """Both emulators started, the app on `folder`/web.sqlite3 (migrated) with a FakeClock at the real now."""
    with ExitStack() as stack:
        kits: dict[str, EmulatorKit] = {}
        for key in ("quickbooks", "xero"):
            kit = emulator_kit(key, rate_limits=False) if key == "xero" else emulator_kit(key)
            kit.start()
            stack.callback(kit.stop)
            kits[key] = kit
        providers = {
            key: kit.settings(f"http://localhost/oauth/{key}/callback", webhook_key=WEBHOOK_KEYS[key])
            for key, kit in kits.items()
        }
        settings = settings_for_tests(f"sqlite:///{folder / 'web.sqlite3'}", providers=providers)
        if production or web:
            from dataclasses import replace

            base_url = "https://nudge.example" if production else settings.web.base_url
            settings = replace(
                settings,
                web=replace(settings.web, base_url=base_url, session_cookie_secure=production, **web),
            )
        clock = FakeClock(datetime.now(UTC))
        services = build(settings, clock=clock)
        stack.callback(services.store.dispose)
        migrate(services.store)
        app = create_app(settings, services)
        yield WebWorld(app, services, clock, kits, settings)

"""Fixtures for the web tests: an app on a fresh SQLite file, a test client, users in organizations.

CSRF stays ON in every web test: forms are posted with the token the page rendered.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from connector.accounts.users import create_user
from connector.config import Settings, settings_for_tests
from connector.domain.model import Role
from connector.ports import ProviderSettings
from connector.storage import Store
from web import create_app
from web.extensions import SERVICES_KEY

PASSWORD = "correct horse battery staple"
_TOKEN = re.compile(r'name="csrf_token"[^>]*\bvalue="([^"]+)"')


@dataclass(frozen=True)
class Account:
    """A user made by `make_user`, with the organization it was put in."""

    user_id: int
    org_id: int
    email: str
    password: str
    role: Role


def csrf_token(html: str) -> str:
    """The CSRF token a rendered form carries (fails the test if the page has none)."""
    match = _TOKEN.search(html)
    assert match, "the page has no csrf_token field"
    return match.group(1)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'web.sqlite3'}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for_tests(database_url)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    store: Store = app.extensions[SERVICES_KEY].store
    store.create_all()
    yield app
    store.dispose()


@pytest.fixture
def store(app: Flask) -> Store:
    return app.extensions[SERVICES_KEY].store


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_user(store: Store) -> Callable[..., Account]:
    """make_user(org_name, role, *, email=None, password=PASSWORD, display_name="") -> Account.

    Organizations are made once per name, so two calls with the same name share one organization.
    """
    organizations: dict[str, int] = {}
    serial = iter(range(1, 10_000))

    def make(
        org_name: str = "Acme Ltd",
        role: Role | str = Role.OWNER,
        *,
        email: str | None = None,
        password: str = PASSWORD,
        display_name: str = "",
    ) -> Account:
        address = email or f"user{next(serial)}@example.com"
        with store.unit_of_work() as uow:
            if org_name not in organizations:
                organizations[org_name] = uow.organizations.add(org_name).id
            org_id = organizations[org_name]
            user = create_user(uow, address, password, display_name=display_name)
            uow.memberships.add(user.id, org_id, Role(role))
            user_id = user.id
            uow.commit()
        return Account(user_id=user_id, org_id=org_id, email=address, password=password, role=Role(role))

    return make


@pytest.fixture
def login() -> Callable[..., TestResponse]:
    """login(client, email, password, next=None): fill in the login form as a browser would."""

    def submit(client: FlaskClient, email: str, password: str, next: str | None = None) -> TestResponse:
        path = "/login" if next is None else f"/login?next={next}"
        page = client.get(path)
        assert page.status_code == 200
        return client.post(path, data={"csrf_token": csrf_token(page.text), "email": email, "password": password})

    return submit


@pytest.fixture
def signed_in(client: FlaskClient, make_user: Callable[..., Account], login: Callable[..., TestResponse]) -> Account:
    """An owner of "Acme Ltd", signed in on `client`."""
    account = make_user("Acme Ltd", Role.OWNER)
    response = login(client, account.email, account.password)
    assert response.status_code == 302, response.text
    return account


@pytest.fixture
def token_of() -> Callable[[str], str]:
    """token_of(html): the CSRF token in a rendered page (tests post it as a browser would)."""
    return csrf_token


# --- Providers for the connection and webhook tests (the emulators start only where asked for) ---

QBO_CALLBACK = "http://localhost/oauth/quickbooks/callback"  # the test client's host
QBO_VERIFIER = "web-tests-verifier-token"


@pytest.fixture(scope="session")
def qbo_emulator() -> Iterator[Any]:
    """One QuickBooks emulator for the whole web test session (each test adds its own companies)."""
    from providers.quickbooks.emulator import start

    handle = start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def qbo_settings(qbo_emulator: Any) -> ProviderSettings:
    """QuickBooks configured against the emulator, with the test client's callback URL."""
    from tests.support.quickbooks import emulator_settings

    qbo_emulator.core.clear_faults()
    return emulator_settings(
        qbo_emulator, QBO_CALLBACK, webhook_key=QBO_VERIFIER, retry_base_s=0.01, max_retry_after_s=2, timeout_s=10
    )


def _consent(
    authorize_url: str,
    choice: str | list[str],
    *,
    field: str = "realm",
    approve: bool = True,
    extra: list[tuple[str, str]] | None = None,
) -> dict[str, str]:
    """Do what a browser does on an emulator's authorize page: load it, pick `choice`, press Connect or
    Cancel; returns the query of the redirect back to the app (code, state, realmId... or error).
    """
    page = requests.get(authorize_url, timeout=10)
    assert page.status_code == 200, page.text
    action = re.search(r'<form[^>]*action="([^"]+)"', page.text)
    assert action, "the authorize page has no form"
    form: list[tuple[str, str]] = [
        (html.unescape(name), html.unescape(value))
        for name, value in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', page.text)
    ]
    form += [(field, value) for value in ([choice] if isinstance(choice, str) else choice)]
    form += list(extra or [])  # e.g. [("user", id)]: who is signed in at the Xero emulator
    form.append(("decision", "approve" if approve else "deny"))
    answer = requests.post(
        urljoin(authorize_url, html.unescape(action.group(1))), data=form, allow_redirects=False, timeout=10
    )
    assert answer.status_code in (302, 303), answer.text
    return {key: values[0] for key, values in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


@pytest.fixture
def consent() -> Callable[..., dict[str, str]]:
    """consent(authorize_url, realm_or_tenants, *, field="realm", approve=True): the emulator's consent page
    as a browser would use it; returns the query string of the redirect back to Nudge's callback.
    """
    return _consent


XERO_CALLBACK = "http://localhost/oauth/xero/callback"
XERO_WEBHOOK_KEY = "web-tests-xero-webhook-key"


@pytest.fixture(scope="session")
def xero_emulator() -> Iterator[Any]:
    """One Xero emulator for the whole web test session (each test adds its own organisations)."""
    from providers.xero.emulator import start

    handle = start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def xero_settings(xero_emulator: Any) -> ProviderSettings:
    """Xero configured against the emulator (identity, /connections and the API on one host)."""
    from tests.support.xero import emulator_settings

    return emulator_settings(xero_emulator, XERO_CALLBACK, webhook_key=XERO_WEBHOOK_KEY)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def chromium_launch() -> dict[str, Any]:
    """Keyword arguments for `playwright.chromium.launch` (Debian's chromium, CHROMIUM_ARGS, headless).

    The same rules as test_web_browser.py: skipped when chromium is missing, unless
    NUDGE_REQUIRE_BROWSER=1, where a missing browser fails the test.
    """
    import os
    import shutil

    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path:
        return {"executable_path": path, "headless": True, "args": CHROMIUM_ARGS}
    reason = f"chromium not found at {CHROMIUM} or on PATH (install it with `make browser`)"
    if os.environ.get("NUDGE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"NUDGE_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)

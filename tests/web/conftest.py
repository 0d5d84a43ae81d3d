"""Fixtures for the web tests: an app on a fresh SQLite file, a test client, users in organizations.

CSRF stays ON in every web test: forms are posted with the token the page rendered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from connector.config import Settings, settings_for_tests
from connector.domain.model import Role
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
        org_name: str = "Acme Ltd", role: Role | str = Role.OWNER, *, email: str | None = None,
        password: str = PASSWORD, display_name: str = "",
    ) -> Account:
        address = email or f"user{next(serial)}@example.com"
        with store.unit_of_work() as uow:
            if org_name not in organizations:
                organizations[org_name] = uow.organizations.add(org_name).id
            org_id = organizations[org_name]
            user = uow.users.add(address, password, display_name=display_name)
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

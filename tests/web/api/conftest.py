"""Fixtures for the API tests: the app on SQLite and on PostgreSQL with a FakeClock, and ways to call it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from connector.accounts import tokens
from connector.bootstrap import Services
from connector.config import Settings
from connector.domain.model import Role
from connector.registry import Registry
from connector.storage import Store
from tests.support.clock import FakeClock
from tests.support.databases import Database
from web import create_app

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PROBLEM = "application/problem+json"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def app(settings: Settings, database: Database, clock: FakeClock) -> Iterator[Flask]:
    """The app over a fresh database of each backend (tests/conftest.py `database`)."""
    store = database.store()
    store.create_all()
    services = Services(settings=settings, store=store, registry=Registry.discover(settings.providers), clock=clock)
    app = create_app(settings, services)
    yield app
    store.dispose()


@pytest.fixture
def mint(store: Store) -> Callable[..., str]:
    """mint(account, role=None, name="test") -> secret: a personal API token made through the service."""

    def make(account: Any, role: Role | str | None = None, name: str = "test") -> str:
        with store.unit_of_work() as uow:
            created = tokens.create(
                uow,
                user_id=account.user_id,
                organization_id=account.org_id,
                name=name,
                role=role or account.role,
                now=NOW,
                actor=account.email,
            )
            uow.commit()
        return created.secret

    return make


@dataclass
class Caller:
    """A test client that sends a bearer token (or, with `session`, the signed-in session plus its CSRF token)."""

    client: FlaskClient
    secret: str = ""
    csrf: str = ""

    def call(self, method: str, url: str, json: Any = None, headers: dict[str, str] | None = None) -> TestResponse:
        sent = dict(headers or {})
        if self.secret:
            sent.setdefault("Authorization", f"Bearer {self.secret}")
        if self.csrf:
            sent.setdefault("X-CSRFToken", self.csrf)
        return self.client.open(url, method=method, json=json, headers=sent)

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        return self.call("GET", url, **kwargs)

    def post(self, url: str, json: Any = None, **kwargs: Any) -> TestResponse:
        return self.call("POST", url, json=json, **kwargs)

    def patch(self, url: str, json: Any = None, **kwargs: Any) -> TestResponse:
        return self.call("PATCH", url, json=json, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> TestResponse:
        return self.call("DELETE", url, **kwargs)


@pytest.fixture
def bearer(app: Flask) -> Callable[[str], Caller]:
    """bearer(secret): a fresh client calling with that token."""
    return lambda secret: Caller(app.test_client(), secret=secret)


@pytest.fixture
def session_caller(app: Flask, login: Callable[..., TestResponse]) -> Callable[[Any], Caller]:
    """session_caller(account): a fresh client signed in as `account`, sending the session's CSRF token."""

    def make(account: Any) -> Caller:
        client = app.test_client()
        assert login(client, account.email, account.password).status_code == 302
        csrf = client.get("/api/v1/me").get_json()["csrf_token"]
        return Caller(client, csrf=csrf)

    return make

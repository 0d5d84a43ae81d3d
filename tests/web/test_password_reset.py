"""Password reset by email through the real forms: the same answer for every address, a 30-minute single-use
link, the password rules, every session ended, refused links said clearly, throttled requests."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from connector.config import Settings
from connector.storage import Store
from tests.support.clock import FakeClock
from tests.web.account_support import app_with_outbox, emails, fake_clock, link_path
from web.account import PASSWORD_SET

NEW_PASSWORD = "a brand new long passphrase"


@pytest.fixture
def clock() -> FakeClock:
    return fake_clock()


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def app(settings: Settings, outbox: Path, clock: FakeClock) -> Iterator[Flask]:
    yield from app_with_outbox(settings, outbox, clock)


def _ask(client: FlaskClient, token_of: Callable[[str], str], email: str) -> TestResponse:
    page = client.get("/password/forgot")
    assert page.status_code == 200
    return client.post("/password/forgot", data={"csrf_token": token_of(page.text), "email": email})


def _set(
    client: FlaskClient, token_of: Callable[[str], str], path: str, password: str, again: str = ""
) -> TestResponse:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return client.post(
        path, data={"csrf_token": token_of(page.text), "password": password, "confirm": again or password}
    )


def _without_tokens(page: TestResponse) -> str:
    text = re.sub(r'(name="csrf_token"[^>]*value=")[^"]+', r"\1TOKEN", page.text)
    return re.sub(r'(name="csrf-token" content=")[^"]+', r"\1TOKEN", text)


def test_the_login_page_offers_a_reset(client: FlaskClient) -> None:
    assert '<a href="/password/forgot">Forgot your password?</a>' in client.get("/login").text


def test_known_and_unknown_addresses_get_the_same_answer_and_only_the_account_gets_mail(
    client: FlaskClient, make_user: Callable[..., Any], token_of: Callable[[str], str], outbox: Path
) -> None:
    account = make_user("Acme Ltd")
    known = _ask(client, token_of, account.email)
    unknown = _ask(client, token_of, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert "If an account exists for that address" in known.text
    assert _without_tokens(known) == _without_tokens(unknown)
    (message,) = emails(outbox)
    assert message["To"] == account.email
    assert message["Subject"] == "Reset your Nudge password"
    assert "/password/reset/" in link_path(message)


def test_a_reset_sets_the_password_ends_every_session_and_works_once(
    app: Flask,
    client: FlaskClient,
    signed_in: Any,
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
    outbox: Path,
) -> None:
    other = app.test_client()  # another browser, signed in too
    assert login(other, signed_in.email, signed_in.password).status_code == 302
    home = f"/orgs/{signed_in.org_id}/"
    assert other.get(home).status_code == 200

    stranger = app.test_client()
    assert _ask(stranger, token_of, signed_in.email).status_code == 200
    path = link_path(emails(outbox)[-1])
    weak = _set(stranger, token_of, path, "password123")
    assert weak.status_code == 200
    assert "commonly used passwords" in weak.text
    mismatch = _set(stranger, token_of, path, NEW_PASSWORD, "something else entirely")
    assert "The two passwords are not the same." in mismatch.text

    done = _set(stranger, token_of, path, NEW_PASSWORD)
    assert (done.status_code, done.location) == (303, "/login")
    assert PASSWORD_SET in stranger.get("/login").text

    assert client.get(home).status_code == 302  # every session ended
    assert other.get(home).status_code == 302
    assert login(app.test_client(), signed_in.email, signed_in.password).status_code == 200  # old password refused
    assert login(app.test_client(), signed_in.email, NEW_PASSWORD).status_code == 302

    again = stranger.get(path)
    assert again.status_code == 400
    assert "This link was already used" in again.text


def test_an_expired_link_is_refused_clearly(
    client: FlaskClient, make_user: Callable[..., Any], token_of: Callable[[str], str], outbox: Path, clock: FakeClock
) -> None:
    account = make_user("Acme Ltd")
    _ask(client, token_of, account.email)
    path = link_path(emails(outbox)[-1])
    clock.advance(timedelta(minutes=31))
    page = client.get(path)
    assert page.status_code == 400
    assert "This link has expired: ask for a new one." in page.text
    assert 'href="/password/forgot"' in page.text


@pytest.mark.parametrize("tamper", ["flip", "cut", "junk", "long"])
def test_a_tampered_link_is_refused_clearly(
    client: FlaskClient, make_user: Callable[..., Any], token_of: Callable[[str], str], outbox: Path, tamper: str
) -> None:
    account = make_user("Acme Ltd")
    _ask(client, token_of, account.email)
    path = link_path(emails(outbox)[-1])
    altered = {
        "flip": path[:-1] + ("A" if path[-1] != "A" else "B"),
        "cut": path[:-5],
        "junk": "/password/reset/%00%0d%0a<script>",
        "long": path + "x" * 5000,
    }[tamper]
    page = client.get(altered)
    assert page.status_code in (400, 404)
    if page.status_code == 400:
        assert "This link is not valid" in page.text
    posted = client.post(altered, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert posted.status_code in (400, 404)


def test_requests_are_throttled_per_address_typed(
    client: FlaskClient, make_user: Callable[..., Any], token_of: Callable[[str], str], outbox: Path
) -> None:
    account = make_user("Acme Ltd")
    for _ in range(3):
        assert _ask(client, token_of, account.email).status_code == 200
    throttled = _ask(client, token_of, account.email.upper())
    assert throttled.status_code == 429
    assert "Too many reset requests" in throttled.text
    assert int(throttled.headers["Retry-After"]) > 0
    assert len(emails(outbox)) == 3


def test_an_account_without_a_password_can_set_one(
    app: Flask, store: Store, token_of: Callable[[str], str], login: Callable[..., TestResponse], outbox: Path
) -> None:
    with store.unit_of_work() as uow:
        uow.users.add_external("xero.user@example.com", "Xero User", "xero", "subject-1")
        uow.commit()
    client = app.test_client()
    _ask(client, token_of, "xero.user@example.com")
    assert _set(client, token_of, link_path(emails(outbox)[-1]), NEW_PASSWORD).status_code == 303
    assert login(app.test_client(), "xero.user@example.com", NEW_PASSWORD).status_code == 302

"""TOTP two-factor through the web: enrolment with a QR code, recovery codes shown once, the second sign-in step
(throttled, each code once, recovery codes once), turning it off, and the organization's rule for owners."""

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
from connector.domain.model import Role
from connector.storage import Store
from tests.support.clock import FakeClock
from tests.web.account_support import TOTP_SECRET, app_with_outbox, code_now, fake_clock
from web.auth import WRONG_CODE
from web.sessions import start_session
from web.users import WebUser

STEP = timedelta(seconds=30)


@pytest.fixture
def clock() -> FakeClock:
    return fake_clock()


@pytest.fixture
def app(settings: Settings, tmp_path: Path, clock: FakeClock) -> Iterator[Flask]:
    yield from app_with_outbox(settings, tmp_path / "outbox", clock)


def _post(client: FlaskClient, token_of: Callable[[str], str], page_path: str, path: str, **form: str) -> TestResponse:
    page = client.get(page_path)
    assert page.status_code == 200, page.text
    return client.post(path, data={"csrf_token": token_of(page.text), **form})


def _enrol(client: FlaskClient, token_of: Callable[[str], str], clock: FakeClock) -> tuple[str, list[str]]:
    started = _post(client, token_of, "/account/two-factor", "/account/two-factor/begin")
    assert started.status_code == 200
    assert re.search(r'<img src="data:image/svg\+xml[^"]+" alt="QR code', started.text)
    secret_match = TOTP_SECRET.search(started.text)
    assert secret_match
    secret = secret_match.group(1)
    wrong = client.post("/account/two-factor/confirm", data={"csrf_token": token_of(started.text), "code": "12345x"})
    assert "That code is not right" in wrong.text
    assert TOTP_SECRET.search(wrong.text)  # the set-up is still there to try again
    done = client.post(
        "/account/two-factor/confirm", data={"csrf_token": token_of(started.text), "code": code_now(secret, clock)}
    )
    assert done.status_code == 200
    codes = re.findall(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", done.text)
    assert len(codes) == 10
    assert "They are shown only now" in done.text
    return secret, codes


def _password_step(client: FlaskClient, login: Callable[..., TestResponse], account: Any) -> TestResponse:
    first = login(client, account.email, account.password)
    assert (first.status_code, first.location) == (302, "/login/two-factor")
    return first


def _code_step(client: FlaskClient, token_of: Callable[[str], str], code: str) -> TestResponse:
    page = client.get("/login/two-factor")
    assert page.status_code == 200
    return client.post("/login/two-factor", data={"csrf_token": token_of(page.text), "code": code})


def test_enrolment_then_sign_in_asks_for_a_code_after_the_password(
    app: Flask,
    client: FlaskClient,
    signed_in: Any,
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
    clock: FakeClock,
) -> None:
    secret, _ = _enrol(client, token_of, clock)
    assert "recovery-codes" not in client.get("/account/two-factor").text  # shown once
    assert "10 recovery codes left" in client.get("/account/two-factor").text

    browser = app.test_client()
    _password_step(browser, login, signed_in)
    home = f"/orgs/{signed_in.org_id}/"
    assert browser.get(home).location.startswith("/login")  # not signed in yet
    wrong = _code_step(browser, token_of, "000000" if code_now(secret, clock) != "000000" else "111111")
    assert wrong.status_code == 200
    assert WRONG_CODE in wrong.text
    clock.advance(STEP)
    code = code_now(secret, clock)
    signed = _code_step(browser, token_of, code)
    assert (signed.status_code, signed.location) == (302, "/")
    assert browser.get(home).status_code == 200

    replay = app.test_client()  # the same code, seen over someone's shoulder, works no second time
    _password_step(replay, login, signed_in)
    assert WRONG_CODE in _code_step(replay, token_of, code).text


def test_a_recovery_code_signs_in_once(
    app: Flask,
    client: FlaskClient,
    signed_in: Any,
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
    clock: FakeClock,
) -> None:
    _, codes = _enrol(client, token_of, clock)
    browser = app.test_client()
    _password_step(browser, login, signed_in)
    assert _code_step(browser, token_of, codes[3].upper()).status_code == 302
    again = app.test_client()
    _password_step(again, login, signed_in)
    assert WRONG_CODE in _code_step(again, token_of, codes[3]).text
    assert "9 recovery codes left" in client.get("/account").text


def test_the_code_step_expires_and_needs_the_password_first(
    app: Flask, signed_in: Any, login: Callable[..., TestResponse], token_of: Callable[[str], str], clock: FakeClock
) -> None:
    client = app.test_client()
    assert client.get("/login/two-factor").location == "/login"  # no password given
    owner = app.test_client()
    login(owner, signed_in.email, signed_in.password)
    secret, _ = _enrol(owner, token_of, clock)
    browser = app.test_client()
    _password_step(browser, login, signed_in)
    clock.advance(timedelta(minutes=11))
    late = browser.get("/login/two-factor")
    assert late.location == "/login"
    assert "Your sign-in took too long" in browser.get("/login").text
    assert secret


def test_wrong_codes_are_throttled(
    app: Flask,
    client: FlaskClient,
    signed_in: Any,
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
    clock: FakeClock,
) -> None:
    secret, _ = _enrol(client, token_of, clock)
    browser = app.test_client()
    _password_step(browser, login, signed_in)
    for _ in range(5):
        assert _code_step(browser, token_of, "999999x").status_code == 200
    clock.advance(STEP)
    throttled = _code_step(browser, token_of, code_now(secret, clock))
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0


def test_turning_it_off_needs_a_code_or_the_password(
    app: Flask,
    client: FlaskClient,
    signed_in: Any,
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
    clock: FakeClock,
) -> None:
    _enrol(client, token_of, clock)
    refused = _post(client, token_of, "/account/two-factor", "/account/two-factor/disable", code="", password="nope")
    assert refused.status_code == 200
    assert "to turn it off" in refused.text
    done = _post(client, token_of, "/account/two-factor", "/account/two-factor/disable", password=signed_in.password)
    assert (done.status_code, done.location) == (303, "/account/two-factor")
    assert login(app.test_client(), signed_in.email, signed_in.password).location == "/"


def test_owners_of_an_organization_that_requires_it_enrol_before_anything_else(
    app: Flask,
    client: FlaskClient,
    signed_in: Any,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
    clock: FakeClock,
) -> None:
    settings_page = f"/orgs/{signed_in.org_id}/settings"
    page = client.get(settings_page)
    assert "Owners must use two-factor sign-in" in page.text
    viewer = make_user("Acme Ltd", Role.VIEWER)
    viewer_client = app.test_client()
    login(viewer_client, viewer.email, viewer.password)
    viewer_page = viewer_client.get(settings_page)
    assert (
        viewer_client.post(
            f"{settings_page}/two-factor",
            data={"csrf_token": token_of(viewer_page.text), "owners_need_two_factor": "on"},
        ).status_code
        == 403
    )

    turned = client.post(
        f"{settings_page}/two-factor", data={"csrf_token": token_of(page.text), "owners_need_two_factor": "on"}
    )
    assert (turned.status_code, turned.location) == (303, settings_page)
    sent = client.get(f"/orgs/{signed_in.org_id}/")
    assert (sent.status_code, sent.location) == (303, "/account/two-factor")
    assert "requires two-factor sign-in: set it up to continue" in client.get("/account/two-factor").text
    assert viewer_client.get(f"/orgs/{signed_in.org_id}/").status_code == 200  # the rule is for owners

    _enrol(client, token_of, clock)
    assert client.get(f"/orgs/{signed_in.org_id}/").status_code == 200


def test_a_provider_sign_in_asks_for_the_code_too(
    app: Flask, store: Store, client: FlaskClient, signed_in: Any, token_of: Callable[[str], str], clock: FakeClock
) -> None:
    """web.signup calls start_session after the provider's ID token: with two-factor on, the code step follows."""
    _enrol(client, token_of, clock)
    with store.unit_of_work() as uow:
        user = uow.users.get(signed_in.user_id)
        assert user is not None
        web_user = WebUser.from_model(user)
    with app.test_request_context("/signup/xero/callback"):
        answer = start_session(web_user, "/")
        assert answer.status_code == 302  # type: ignore[union-attr]
        assert answer.location == "/login/two-factor"  # type: ignore[union-attr]

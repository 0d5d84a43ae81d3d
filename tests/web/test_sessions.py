"""Per-session records through the web: "Your sessions", sign out one session or everywhere, and the loader
refusing any cookie without an open session row."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from connector.accounts.users import end_sessions
from connector.storage import Store

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Safari/605.1"


def _browser(app: Flask, agent: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = agent
    return client


def _session_ids(page: str) -> list[int]:
    return [int(found) for found in re.findall(r'data-testid="session-(\d+)"', page)]


def test_the_account_page_links_to_the_sessions_and_lists_each_one(
    app: Flask, make_user: Callable[..., Any], login: Callable[..., TestResponse]
) -> None:
    account = make_user("Acme Ltd")
    laptop, phone = _browser(app, FIREFOX), _browser(app, IPHONE)
    assert login(laptop, account.email, account.password).status_code == 302
    assert login(phone, account.email, account.password).status_code == 302

    home = laptop.get(f"/orgs/{account.org_id}/")
    assert 'href="/account"' in home.text
    overview = laptop.get("/account")
    assert overview.status_code == 200
    assert 'href="/account/sessions"' in overview.text
    assert "signed in on 2 devices" in overview.text

    page = laptop.get("/account/sessions")
    assert page.status_code == 200
    assert "<title>Your sessions · Nudge</title>" in page.text
    assert "Firefox on Linux" in page.text
    assert "Safari on iPhone" in page.text
    assert page.text.count("This session") == 1
    assert "127.0.0.1" in page.text
    assert len(_session_ids(page.text)) == 2


def test_signing_out_one_session_ends_only_that_one(
    app: Flask, make_user: Callable[..., Any], login: Callable[..., TestResponse], token_of: Callable[[str], str]
) -> None:
    account = make_user("Acme Ltd")
    laptop, phone = _browser(app, FIREFOX), _browser(app, IPHONE)
    login(laptop, account.email, account.password)
    login(phone, account.email, account.password)
    page = laptop.get("/account/sessions")
    phone_row = re.search(r'data-testid="session-(\d+)">\s*<td>Safari on iPhone', page.text)
    assert phone_row
    ended = laptop.post(f"/account/sessions/{phone_row.group(1)}/end", data={"csrf_token": token_of(page.text)})
    assert (ended.status_code, ended.location) == (303, "/account/sessions")
    home = f"/orgs/{account.org_id}/"
    assert phone.get(home).location.startswith("/login")
    assert laptop.get(home).status_code == 200
    assert len(_session_ids(laptop.get("/account/sessions").text)) == 1


def test_another_users_session_cannot_be_ended(
    app: Flask, make_user: Callable[..., Any], login: Callable[..., TestResponse], token_of: Callable[[str], str]
) -> None:
    mallory, victim = make_user("Acme Ltd"), make_user("Acme Ltd")
    attacker, browser = app.test_client(), app.test_client()
    login(attacker, mallory.email, mallory.password)
    login(browser, victim.email, victim.password)
    (victim_session,) = _session_ids(browser.get("/account/sessions").text)
    page = attacker.get("/account/sessions")
    answer = attacker.post(f"/account/sessions/{victim_session}/end", data={"csrf_token": token_of(page.text)})
    assert answer.status_code == 303
    assert browser.get(f"/orgs/{victim.org_id}/").status_code == 200
    assert (
        attacker.post("/account/sessions/99999999999/end", data={"csrf_token": token_of(page.text)}).status_code == 404
    )


def test_sign_out_everywhere_ends_this_session_and_the_others(
    app: Flask, make_user: Callable[..., Any], login: Callable[..., TestResponse], token_of: Callable[[str], str]
) -> None:
    account = make_user("Acme Ltd")
    laptop, phone = _browser(app, FIREFOX), _browser(app, IPHONE)
    login(laptop, account.email, account.password)
    login(phone, account.email, account.password)
    page = laptop.get("/account/sessions")
    out = laptop.post("/account/sessions/end-all", data={"csrf_token": token_of(page.text)})
    assert (out.status_code, out.location) == (303, "/login")
    assert "signed out everywhere" in laptop.get("/login").text
    home = f"/orgs/{account.org_id}/"
    assert laptop.get(home).location.startswith("/login")
    assert phone.get(home).location.startswith("/login")
    assert login(laptop, account.email, account.password).status_code == 302  # signing in again works


def test_signing_out_ends_this_session_only(
    app: Flask, make_user: Callable[..., Any], login: Callable[..., TestResponse], token_of: Callable[[str], str]
) -> None:
    account = make_user("Acme Ltd")
    laptop, phone = _browser(app, FIREFOX), _browser(app, IPHONE)
    login(laptop, account.email, account.password)
    login(phone, account.email, account.password)
    home = f"/orgs/{account.org_id}/"
    page = laptop.get(home)
    assert laptop.post("/logout", data={"csrf_token": token_of(page.text)}).status_code == 302
    assert laptop.get(home).location.startswith("/login")
    assert phone.get(home).status_code == 200


def test_ending_every_session_from_the_connector_signs_out_every_browser(
    app: Flask, store: Store, make_user: Callable[..., Any], login: Callable[..., TestResponse]
) -> None:
    """What the team screen's "remove member" does through connector.accounts.users.end_sessions."""
    account = make_user("Acme Ltd")
    laptop = app.test_client()
    login(laptop, account.email, account.password)
    home = f"/orgs/{account.org_id}/"
    assert laptop.get(home).status_code == 200
    with store.unit_of_work() as uow:
        end_sessions(uow, account.user_id)
        uow.commit()
    assert laptop.get(home).location.startswith("/login")


def test_a_cookie_without_a_session_row_signs_nobody_in(
    app: Flask, make_user: Callable[..., Any], login: Callable[..., TestResponse]
) -> None:
    account = make_user("Acme Ltd")
    home = f"/orgs/{account.org_id}/"
    for forged in (f"{account.user_id}:0", f"{account.user_id}:0:", f"{account.user_id}:0:made-up", "1:x:y", "::"):
        browser = app.test_client()
        with browser.session_transaction() as session:
            session["_user_id"] = forged
            session["_fresh"] = True
        answer = browser.get(home)
        assert answer.status_code == 302, forged
        assert answer.location.startswith("/login")

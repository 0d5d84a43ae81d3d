"""Local accounts through the real forms: sign in, sign out, wrong credentials, CSRF, safe redirects."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from connector.accounts.users import create_user
from connector.domain.model import Role
from connector.storage import Store
from web.auth import INVALID_CREDENTIALS, SIGNED_OUT


def test_login_page_renders(client: FlaskClient, token_of: Callable[[str], str]) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "<title>Sign in · Nudge</title>" in page.text
    assert re.search(r'<form method="post" action="/login"', page.text)
    assert re.search(r'<input[^>]*name="email"[^>]*type="email"', page.text)
    assert re.search(r'<input[^>]*name="password"[^>]*type="password"', page.text)
    assert token_of(page.text)
    assert 'href="/static/nudge.css"' in page.text


def test_sign_in_shows_the_home_page_and_sign_out_ends_the_session(
    client: FlaskClient,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
    token_of: Callable[[str], str],
) -> None:
    account = make_user("Acme Ltd", Role.OWNER, display_name="Ada Lovelace")
    response = login(client, account.email, account.password)
    assert (response.status_code, response.location) == (302, "/")

    home = client.get("/")
    assert (home.status_code, home.location) == (302, f"/orgs/{account.org_id}/")
    page = client.get(home.location)
    assert page.status_code == 200
    assert "Acme Ltd" in page.text
    assert "Ada Lovelace" in page.text
    assert "No clients connected yet" in page.text
    assert ">Sign out</button>" in page.text

    out = client.post("/logout", data={"csrf_token": token_of(page.text)})
    assert (out.status_code, out.location) == (302, "/login")
    assert SIGNED_OUT in client.get("/login").text
    again = client.get(f"/orgs/{account.org_id}/")
    assert again.status_code == 302
    assert again.location.startswith("/login")
    assert client.get("/").location.startswith("/login")


def test_email_is_case_insensitive(
    client: FlaskClient,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
) -> None:
    account = make_user("Acme Ltd", Role.VIEWER, email="Mixed.Case@Example.com")
    assert login(client, "  MIXED.case@example.COM ", account.password).status_code == 302


def _normalized(page: TestResponse, email: str) -> str:
    text = re.sub(r'(name="csrf_token"[^>]*value=")[^"]+', r"\1TOKEN", page.text)
    text = re.sub(r'(name="csrf-token" content=")[^"]+', r"\1TOKEN", text)
    return text.replace(email, "EMAIL")


def test_bad_password_and_unknown_email_get_the_same_clear_message(
    client: FlaskClient,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
) -> None:
    account = make_user("Acme Ltd", Role.OWNER)
    wrong_password = login(client, account.email, "not the password at all")
    unknown_user = login(client, "nobody@example.com", "not the password at all")
    for response in (wrong_password, unknown_user):
        assert response.status_code == 200
        assert INVALID_CREDENTIALS in response.text
        assert "not the password at all" not in response.text  # the password is never echoed
    # Nothing but the echoed email (and the fresh CSRF token) tells the two apart.
    assert _normalized(wrong_password, account.email) == _normalized(unknown_user, "nobody@example.com")
    assert client.get("/").location.startswith("/login")  # still signed out


def test_empty_fields_are_reported_per_field(client: FlaskClient, login: Callable[..., TestResponse]) -> None:
    response = login(client, "", "")
    assert response.status_code == 200
    assert response.text.count("This field is required.") == 2
    assert INVALID_CREDENTIALS not in response.text


def test_login_post_without_csrf_token_is_rejected(
    client: FlaskClient,
    make_user: Callable[..., Any],
    app: Any,
) -> None:
    account = make_user("Acme Ltd", Role.OWNER)
    response = client.post("/login", data={"email": account.email, "password": account.password})
    assert response.status_code == 400
    assert "Form expired" in response.text
    assert client.get("/").location.startswith("/login")

    # A token from another browser's session is no good either.
    other = app.test_client()
    foreign = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', other.get("/login").text)
    assert foreign
    client.get("/login")
    response = client.post(
        "/login", data={"csrf_token": foreign.group(1), "email": account.email, "password": account.password}
    )
    assert response.status_code == 400
    assert client.get("/").location.startswith("/login")


def test_logout_needs_post_and_a_csrf_token(client: FlaskClient, signed_in: Any) -> None:
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/").location == f"/orgs/{signed_in.org_id}/"  # still signed in


def test_next_is_followed_only_within_the_site(
    app: Any,
    make_user: Callable[..., Any],
    login: Callable[..., TestResponse],
) -> None:
    account = make_user("Acme Ltd", Role.OWNER)
    cases = {
        f"/orgs/{account.org_id}/": f"/orgs/{account.org_id}/",
        "https://evil.example/": "/",
        "//evil.example/": "/",
        "/\\evil.example/": "/",
        "javascript:alert(1)": "/",
    }
    for target, expected in cases.items():
        client = app.test_client()
        response = login(client, account.email, account.password, next=target)
        assert (response.status_code, response.location) == (302, expected), target


def test_anonymous_visit_returns_to_the_page_after_sign_in(
    client: FlaskClient,
    make_user: Callable[..., Any],
    token_of: Callable[[str], str],
) -> None:
    account = make_user("Acme Ltd", Role.OWNER)
    bounce = client.get(f"/orgs/{account.org_id}/")
    assert bounce.status_code == 302
    page = client.get(bounce.location)
    assert "Please sign in to continue." in page.text
    response = client.post(
        bounce.location, data={"csrf_token": token_of(page.text), "email": account.email, "password": account.password}
    )
    assert (response.status_code, response.location) == (302, f"/orgs/{account.org_id}/")


def test_signed_in_user_visiting_login_goes_home(client: FlaskClient, signed_in: Any) -> None:
    assert client.get("/login").location == "/"


def test_user_without_organization_sees_the_no_organization_page(
    client: FlaskClient,
    store: Store,
    login: Callable[..., TestResponse],
) -> None:
    with store.unit_of_work() as uow:
        create_user(uow, "loner@example.com", "a long enough password")
        uow.commit()
    assert login(client, "loner@example.com", "a long enough password").status_code == 302
    page = client.get("/")
    assert page.status_code == 200
    assert "No organization yet" in page.text


def test_deactivated_user_is_signed_out_and_cannot_sign_in(
    client: FlaskClient,
    store: Store,
    signed_in: Any,
    login: Callable[..., TestResponse],
) -> None:
    with store.unit_of_work() as uow:
        user = uow.users.get(signed_in.user_id)
        assert user is not None
        user.is_active = False
        uow.commit()
    assert client.get(f"/orgs/{signed_in.org_id}/").location.startswith("/login")
    response = login(client, signed_in.email, signed_in.password)
    assert response.status_code == 200
    assert INVALID_CREDENTIALS in response.text


# --- Issue 10 item 6: throttling, sessions that really end, common passwords ---


def test_failed_sign_ins_are_throttled_per_account_before_any_password_check(
    client: FlaskClient, make_user: Callable[..., Any], login: Callable[..., TestResponse]
) -> None:
    account = make_user("Throttle Co", Role.OWNER)
    answers = [login(client, account.email, f"wrong password {n}").status_code for n in range(5)]
    assert answers == [200] * 5
    refused = login(client, account.email, account.password)  # even the right password waits now
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many failed sign-in attempts" in refused.text
    other = make_user("Throttle Co", Role.VIEWER)  # another account from the same address still signs in
    assert login(client, other.email, other.password).status_code == 302


def test_failed_sign_ins_are_throttled_per_address(
    client: FlaskClient, make_user: Callable[..., Any], login: Callable[..., TestResponse]
) -> None:
    for n in range(20):
        assert login(client, f"nobody{n}@example.com", "wrong password!").status_code == 200
    account = make_user("Address Co", Role.OWNER)
    assert login(client, account.email, account.password).status_code == 429


def test_a_session_cookie_copied_before_sign_out_no_longer_works(
    app: Any, client: FlaskClient, signed_in: Any, token_of: Callable[[str], str]
) -> None:
    home = f"/orgs/{signed_in.org_id}/"
    page = client.get(home)
    assert page.status_code == 200
    copy = app.test_client()
    with client.session_transaction() as session:
        captured = dict(session)
    with copy.session_transaction() as session:
        session.update(captured)
    assert copy.get(home).status_code == 200  # the copy works while the session lives
    assert client.post("/logout", data={"csrf_token": token_of(page.text)}).status_code == 302
    after = copy.get(home)
    assert after.status_code == 302
    assert after.location.startswith("/login")


def test_a_password_change_ends_every_session(
    app: Any, store: Store, client: FlaskClient, signed_in: Any, login: Callable[..., TestResponse]
) -> None:
    from connector.accounts.users import change_password

    home = f"/orgs/{signed_in.org_id}/"
    assert client.get(home).status_code == 200
    with store.unit_of_work() as uow:
        change_password(uow, signed_in.user_id, signed_in.password, "a brand new long passphrase")
        uow.commit()
    assert client.get(home).status_code == 302
    assert login(client, signed_in.email, "a brand new long passphrase").status_code == 302


def test_common_passwords_are_refused_when_set(store: Store) -> None:
    import pytest

    with store.unit_of_work() as uow, pytest.raises(ValueError, match="commonly used passwords"):
        create_user(uow, "common@example.com", "password123")
    with store.unit_of_work() as uow, pytest.raises(ValueError, match="at least 10 characters"):
        create_user(uow, "short@example.com", "x7#k")

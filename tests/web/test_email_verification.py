"""Address checks for password accounts: the banner with "resend", the emailed single-use link, and
`send_verification` (what account creation calls)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connector.accounts.security import send_verification
from connector.accounts.users import create_user
from connector.config import Settings
from connector.storage import Store
from tests.support.clock import FakeClock
from tests.web.account_support import app_with_outbox, emails, fake_clock, link_path
from web.account import VERIFY_DONE
from web.extensions import SERVICES_KEY
from web.users import WebUser


@pytest.fixture
def clock() -> FakeClock:
    return fake_clock()


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def app(settings: Settings, outbox: Path, clock: FakeClock) -> Iterator[Flask]:
    yield from app_with_outbox(settings, outbox, clock)


def test_an_unconfirmed_account_sees_the_banner_and_confirms_with_the_emailed_link(
    client: FlaskClient, signed_in: Any, token_of: Callable[[str], str], outbox: Path
) -> None:
    home = f"/orgs/{signed_in.org_id}/"
    page = client.get(home)
    assert 'data-testid="verify-banner"' in page.text
    assert "Not confirmed yet" in client.get("/account").text
    sent = client.post("/account/verify/resend", data={"csrf_token": token_of(page.text)})
    assert (sent.status_code, sent.location) == (303, "/account")
    assert f"We sent a new confirmation link to {signed_in.email}" in client.get("/account").text
    (message,) = emails(outbox)
    assert message["To"] == signed_in.email
    assert message["Subject"] == "Confirm your email address for Nudge"
    path = link_path(message)
    assert path.startswith("/account/verify/")

    confirmed = client.get(path)
    assert (confirmed.status_code, confirmed.location) == (303, "/account")
    account_page = client.get("/account")
    assert VERIFY_DONE in account_page.text
    assert "Confirmed" in account_page.text
    assert 'data-testid="verify-banner"' not in client.get(home).text

    used = client.get(path)
    assert used.status_code == 400
    assert "This link was already used" in used.text


def test_a_link_works_signed_out_and_expires_after_three_days(
    app: Flask, store: Store, outbox: Path, clock: FakeClock
) -> None:
    services = app.extensions[SERVICES_KEY]
    with store.unit_of_work() as uow:
        user = create_user(uow, "new.person@example.com", "correct horse battery staple")
        send_verification(uow, services.account_mailer(), user, "https://nudge.example", clock.now())
        send_verification(uow, services.account_mailer(), user, "https://nudge.example", clock.now())
        uow.commit()
    first, second = emails(outbox)
    browser = app.test_client()
    assert browser.get(link_path(first)).status_code == 400  # the newer link retired it
    clock.advance(timedelta(days=3, seconds=1))
    expired = browser.get(link_path(second))
    assert expired.status_code == 400
    assert "This link has expired" in expired.text
    clock.advance(timedelta(days=-1))
    answer = browser.get(link_path(second))
    assert (answer.status_code, answer.location) == (303, "/login")
    with store.unit_of_work() as uow:
        found = uow.users.by_email("new.person@example.com")
        assert found is not None
        assert found.email_verified_at == clock.now()


def test_a_provider_account_sees_no_banner(store: Store) -> None:
    """The provider vouched for the address when it signed the person up: no password account to confirm."""
    with store.unit_of_work() as uow:
        user = uow.users.add_external("xero.user@example.com", "Xero User", "xero", "subject-1")
        uow.commit()
        assert not WebUser.from_model(user).needs_email_check


def test_a_garbled_link_is_refused_clearly(client: FlaskClient) -> None:
    page = client.get("/account/verify/not-a-real-token")
    assert page.status_code == 400
    assert "This link is not valid" in page.text


def test_changing_the_address_needs_the_password_and_sends_a_link_to_the_new_one(
    client: FlaskClient, signed_in: Any, make_user: Callable[..., Any], token_of: Callable[[str], str], outbox: Path
) -> None:
    other = make_user("Acme Ltd", email="taken@example.com")
    page = client.get("/account")
    assert "Change your email address" in page.text
    token = token_of(page.text)
    wrong = client.post("/account/email", data={"csrf_token": token, "email": "new@example.com", "current": "nope"})
    assert wrong.status_code == 200
    assert "The password is not correct." in wrong.text
    taken = client.post(
        "/account/email", data={"csrf_token": token, "email": other.email, "current": signed_in.password}
    )
    assert "Another account uses taken@example.com." in taken.text
    junk = client.post(
        "/account/email", data={"csrf_token": token, "email": "no at sign", "current": signed_in.password}
    )
    assert "Not an email address" in junk.text
    assert emails(outbox) == []

    moved = client.post(
        "/account/email", data={"csrf_token": token, "email": " New@Example.com ", "current": signed_in.password}
    )
    assert (moved.status_code, moved.location) == (303, "/account")
    link, notice = sorted(emails(outbox), key=lambda message: message["Subject"])
    assert (link["To"], notice["To"]) == ("new@example.com", signed_in.email)
    assert notice["Subject"] == "Your Nudge email address was changed"
    assert 'data-testid="verify-banner"' in client.get("/account").text
    assert client.get(link_path(link)).status_code == 303
    assert "Confirmed" in client.get("/account").text


def test_changing_the_password_ends_every_session(
    app: Flask, client: FlaskClient, signed_in: Any, login: Callable[..., Any], token_of: Callable[[str], str]
) -> None:
    page = client.get("/account")
    token = token_of(page.text)
    form = {"csrf_token": token, "current": "wrong password", "password": "a brand new long passphrase"}
    refused = client.post("/account/password", data={**form, "confirm": form["password"]})
    assert refused.status_code == 200
    assert "The current password is not correct." in refused.text
    form["current"] = signed_in.password
    mismatch = client.post("/account/password", data={**form, "confirm": "something else"})
    assert "The two new passwords are not the same." in mismatch.text
    done = client.post("/account/password", data={**form, "confirm": form["password"]})
    assert (done.status_code, done.location) == (303, "/login")
    assert client.get(f"/orgs/{signed_in.org_id}/").location.startswith("/login")
    assert login(app.test_client(), signed_in.email, "a brand new long passphrase").status_code == 302

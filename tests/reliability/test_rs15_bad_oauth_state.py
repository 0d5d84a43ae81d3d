"""RS-15 — callbacks with a missing, mismatched, expired or reused `state`; a state issued for Intuit arriving
on the Xero callback; a missing PKCE verifier.

The real parts: the Flask app and its server-side pending state (SQLite, FakeClock for the 10-minute
lifetime), the QuickBooks and Xero emulators over HTTP, whose token-endpoint calls are counted. Every
callback below carries a real, unused authorization `code` from the emulator's consent page, so a callback
that reached the token endpoint would be counted and would store a connection.
Expected (catalogue): 400, no token-endpoint call, nothing stored.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from connector.connections import pending
from connector.connections.pending import PendingFlow
from tests.web.harness import Account, WebWorld, web_world
from web.oauth_flow import BROWSER_KEY


@pytest.fixture
def world(tmp_path: Path) -> Iterator[WebWorld]:
    with web_world(tmp_path) as world:
        yield world


@dataclass
class Owner:
    """An owner signed in on `browser` (the test client whose session holds the pending round trips)."""

    account: Account
    browser: FlaskClient


@pytest.fixture
def owner(world: WebWorld) -> Owner:
    account = world.user("State Practice")
    return Owner(account, world.client(account))


def _refused(world: WebWorld, browser: FlaskClient, provider: str, params: dict[str, str]) -> None:
    """The callback answers 400 with no token-endpoint call and nothing stored."""
    calls = world.token_calls()
    before = world.snapshot()
    answer = world.callback(browser, provider, params)
    assert answer.status_code == 400, answer.text
    assert "Nothing was stored" in answer.text
    assert world.token_calls() == calls
    assert world.connections() == []
    assert world.snapshot() == before  # not even the pending entry was touched


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_rs15_missing_or_mismatched_state_is_400_without_a_token_call(
    world: WebWorld, owner: Owner, provider: str
) -> None:
    """Missing or mismatched `state` → 400, no token-endpoint call, nothing stored; the good entry still works."""
    browser = owner.browser
    tenant = world.kits[provider].add_company("State Co")
    params = world.consent(browser, owner.account.org_id, provider, tenant)
    missing = {k: v for k, v in params.items() if k != "state"}
    _refused(world, browser, provider, missing)
    _refused(world, browser, provider, {**params, "state": secrets.token_urlsafe(32)})
    _refused(world, browser, provider, {**params, "state": ""})
    _refused(world, world.client(owner.account), provider, params)  # the right state from another browser
    # None of those cancelled the round trip in progress: its own callback still completes.
    assert world.callback(browser, provider, params).status_code == 303
    assert len(world.connections()) == 1


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_rs15_expired_or_reused_state_is_400_without_a_token_call(world: WebWorld, owner: Owner, provider: str) -> None:
    """Expired (over 10 minutes) or reused `state` → 400, no token-endpoint call, nothing stored."""
    browser = owner.browser
    tenant = world.kits[provider].add_company("Slow Co")
    params = world.consent(browser, owner.account.org_id, provider, tenant)
    world.clock.advance(timedelta(minutes=10, seconds=1))
    _refused(world, browser, provider, params)
    # Reused: a fresh round trip completes once; its state used again is refused.
    world.clock.advance(timedelta(minutes=1))
    params = world.consent(browser, owner.account.org_id, provider, tenant)
    assert world.callback(browser, provider, params).status_code == 303
    [stored] = world.connections()
    calls = world.token_calls()
    answer = world.callback(browser, provider, params)
    assert answer.status_code == 400
    assert world.token_calls() == calls
    [after] = world.connections()
    assert after.tokens_sealed == stored.tokens_sealed


def test_rs15_a_state_issued_for_intuit_is_refused_on_the_xero_callback(world: WebWorld, owner: Owner) -> None:
    """A state issued for Intuit arriving on the Xero callback → 400, no token-endpoint call (OAuth mix-up)."""
    browser = owner.browser
    realm = world.kits["quickbooks"].add_company("Mix-up Books")
    params = world.consent(browser, owner.account.org_id, "quickbooks", realm)
    _refused(world, browser, "xero", params)
    xero_tenant = world.kits["xero"].add_company("Mix-up Joinery")
    xero_params = world.consent(browser, owner.account.org_id, "xero", xero_tenant)
    _refused(world, browser, "quickbooks", xero_params)
    # Each entry is left for its own provider's callback.
    assert world.callback(browser, "quickbooks", params).status_code == 303
    assert world.callback(browser, "xero", xero_params).status_code == 303


def test_rs15_a_sign_up_state_is_refused_on_the_connect_callback(world: WebWorld, owner: Owner) -> None:
    """A state issued for another purpose (a sign-in round trip) → 400 on the connect callback, no token call."""
    browser = owner.browser
    tenant = world.kits["xero"].add_company("Purpose Ltd")
    params = world.consent(browser, owner.account.org_id, "xero", tenant)
    other_state = secrets.token_urlsafe(32)
    with browser.session_transaction() as session:
        browser_id = session[BROWSER_KEY]
    flow = PendingFlow("xero", pending.SIGNUP, other_state, "v" * 64, "nonce", None, None, {})
    pending.start(world.store, world.services.vault, browser_id, flow, world.clock.now())
    _refused(world, browser, "xero", {**params, "state": other_state})


def test_rs15_a_missing_pkce_verifier_is_400_without_a_token_call(world: WebWorld, owner: Owner) -> None:
    """A missing PKCE verifier → 400, no token-endpoint call, nothing stored."""
    browser = owner.browser
    tenant = world.kits["xero"].add_company("Verifier Ltd")
    params = world.consent(browser, owner.account.org_id, "xero", tenant)
    stripped = secrets.token_urlsafe(32)
    with browser.session_transaction() as session:
        browser_id = session[BROWSER_KEY]
    # The same round trip as Nudge stores it, but with the verifier lost (e.g. an entry written by a bug).
    flow = PendingFlow("xero", pending.CONNECT, stripped, "", "", owner.account.user_id, owner.account.org_id, {})
    pending.start(world.store, world.services.vault, browser_id, flow, world.clock.now())
    _refused(world, browser, "xero", {**params, "state": stripped})

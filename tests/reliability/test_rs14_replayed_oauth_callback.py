"""RS-14 — the OAuth callback replayed with the same `code`, and a second tab completing after the first.

The real parts: the Flask app with its server-side pending state (web.oauth_flow over
connector.connections.pending, SQLite), the QuickBooks and Xero emulators over HTTP with intuit-oauth and
xero-python, the emulators' own count of token-endpoint calls. Expected (catalogue): the second exchange
is refused locally (no token-endpoint call) and the stored good token is untouched.

A "second tab" here is what oauth-jsclient #173 describes: the same callback URL (same `code` and `state`)
loaded again, in another tab of the same browser or with a copy of the session cookie taken before the
callback. Two tabs that each press "Connect" start two round trips with two states; each is used once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.harness import WebWorld, web_world

TENANTS = {"quickbooks": "Replay Books Inc", "xero": "Replay Joinery Ltd"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[WebWorld]:
    with web_world(tmp_path) as world:
        yield world


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_rs14_replayed_callback_is_refused_locally_and_the_good_token_untouched(world: WebWorld, provider: str) -> None:
    """The second exchange is refused locally (no token-endpoint call) and the stored good token is untouched."""
    owner = world.user("Replay Practice")
    tab = world.client(owner)
    tenant = world.kits[provider].add_company(TENANTS[provider])
    params = world.consent(tab, owner.org_id, provider, tenant)
    with tab.session_transaction() as session:
        cookie_before_callback = dict(session)  # what an attacker (or a restored tab) could replay

    first = world.callback(tab, provider, params)
    assert first.status_code == 303, first.text
    [good] = world.connections(owner.org_id)
    assert good.status == "active"
    calls = world.token_calls()
    assert calls >= 1  # the good exchange did reach the emulator's token endpoint

    again = world.callback(tab, provider, params)  # the same tab reloads the callback URL
    assert again.status_code == 400
    assert "already used" in again.text
    other_tab = world.client(owner)  # a second tab of the same session, or a copied pre-callback cookie
    with other_tab.session_transaction() as session:
        session.clear()
        session.update(cookie_before_callback)
    late = world.callback(other_tab, provider, params)
    assert late.status_code == 400
    assert "already used" in late.text

    assert world.token_calls() == calls  # refused before the token endpoint
    [after] = world.connections(owner.org_id)
    assert (after.id, after.status, after.tokens_sealed) == (good.id, "active", good.tokens_sealed)


def test_rs14_two_tabs_each_use_their_own_round_trip_once(world: WebWorld) -> None:
    """Each tab's round trip completes once; replaying the first after the second is refused, tokens untouched."""
    owner = world.user("Two Tabs Practice")
    browser = world.client(owner)
    realm = world.kits["quickbooks"].add_company("Two Tabs Co")
    first = world.consent(browser, owner.org_id, "quickbooks", realm)
    second = world.consent(browser, owner.org_id, "quickbooks", realm)
    assert first["state"] != second["state"]

    assert world.callback(browser, "quickbooks", first).status_code == 303
    assert world.callback(browser, "quickbooks", second).status_code == 303  # a reconnect: same row, new tokens
    [row] = world.connections(owner.org_id)
    calls = world.token_calls()
    for params in (first, second):
        assert world.callback(browser, "quickbooks", params).status_code == 400
    assert world.token_calls() == calls
    [after] = world.connections(owner.org_id)
    assert after.tokens_sealed == row.tokens_sealed

"""web.oauth_flow: the OAuth round trip's pending state in the session, shared by connecting and signing up."""

from __future__ import annotations

from flask import Flask, session

from web import connections, signup
from web.oauth_flow import PendingFlow, PendingFlows, redirect_page

KEY = "test.pending"


def _app() -> Flask:
    app = Flask(__name__)
    app.secret_key = "test secret"
    return app


def test_a_remembered_flow_is_taken_back_once() -> None:
    flows = PendingFlows(KEY)
    with _app().test_request_context():
        flows.remember("xero", PendingFlow("the-state", "the-verifier", "the-nonce", {"mode": "signup"}))
        assert session[KEY] == {
            "xero": {"state": "the-state", "verifier": "the-verifier", "nonce": "the-nonce", "mode": "signup"}
        }
        taken = flows.take("xero")
        assert taken == PendingFlow("the-state", "the-verifier", "the-nonce", {"mode": "signup"})
        assert KEY not in session  # the last entry gone, the key goes too
        assert flows.take("xero") is None  # single use


def test_a_flow_without_a_nonce_stores_none() -> None:
    flows = PendingFlows(KEY)
    with _app().test_request_context():
        flows.remember("quickbooks", PendingFlow("s", "v", context={"org_id": 3, "user_id": 7}))
        assert session[KEY]["quickbooks"] == {"state": "s", "verifier": "v", "org_id": 3, "user_id": 7}
        taken = flows.take("quickbooks")
        assert taken is not None
        assert taken.nonce == ""
        assert taken.context == {"org_id": 3, "user_id": 7}


def test_providers_are_kept_apart_and_a_new_start_replaces_the_old() -> None:
    flows = PendingFlows(KEY)
    with _app().test_request_context():
        flows.remember("quickbooks", PendingFlow("qb-1", "v1"))
        flows.remember("xero", PendingFlow("xero-1", "v2"))
        flows.remember("quickbooks", PendingFlow("qb-2", "v3"))
        taken = flows.take("quickbooks")
        assert taken is not None
        assert taken.state == "qb-2"
        assert list(session[KEY]) == ["xero"]  # the other provider's round trip is untouched


def test_context_cannot_overwrite_what_the_callback_checks() -> None:
    flows = PendingFlows(KEY)
    with _app().test_request_context():
        flows.remember("xero", PendingFlow("real", "real-v", context={"state": "forged", "mode": "signin"}))
        taken = flows.take("xero")
        assert taken is not None
        assert taken.state == "real"
        assert taken.context == {"mode": "signin"}


def test_nothing_pending_or_a_damaged_entry_is_none() -> None:
    flows = PendingFlows(KEY)
    with _app().test_request_context():
        assert flows.take("xero") is None
        assert KEY not in session
        session[KEY] = {"xero": "not a dict", "quickbooks": {"state": "s", "verifier": "v"}}
        assert flows.take("xero") is None
        assert list(session[KEY]) == ["quickbooks"]  # the damaged entry is still used up


def test_connecting_and_signing_up_keep_separate_session_keys() -> None:
    assert connections.PENDING.session_key == connections.PENDING_KEY == "nudge.oauth_pending"
    assert signup.PENDING.session_key == signup.PENDING_KEY == "nudge.signup_pending"


def test_the_redirect_page_moves_the_browser_on(app: Flask) -> None:
    url = "https://provider.example/authorize?state=abc&client_id=x"
    with app.test_request_context():
        page = redirect_page(url, "Example Books")
    escaped = "https://provider.example/authorize?state=abc&amp;client_id=x"
    assert f'<meta http-equiv="refresh" content="0; url={escaped}">' in page
    assert f'href="{escaped}"' in page
    assert "Connecting Example Books" in page

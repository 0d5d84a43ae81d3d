"""The OAuth round trip's pending state, server-side (connector.connections.pending, used by web.oauth_flow).

On SQLite and PostgreSQL: one entry per round trip, single use, 10 minutes, bound to browser, provider
and purpose; a refused callback leaves the good entry usable; of racing callbacks exactly one wins.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from connector.connections import pending
from connector.connections.pending import CONNECT, SIGNUP, PendingError, PendingFlow
from connector.storage import Store
from connector.storage.tables import OAuthPending
from connector.vault.keyring import Vault, generate_key
from tests.support.databases import Database
from web.oauth_flow import redirect_page

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BROWSER = "browser-one"


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    """A migrated store on SQLite and on PostgreSQL (not the web app's)."""
    result = database.store()
    result.upgrade()
    try:
        yield result
    finally:
        result.dispose()


@pytest.fixture
def vault() -> Vault:
    return Vault.from_keys({"k1": generate_key()}, "k1")


def _flow(
    state: str = "the-state", provider: str = "xero", purpose: str = CONNECT, verifier: str = "v" * 43
) -> PendingFlow:
    return PendingFlow(provider, purpose, state, verifier, "the-nonce", None, None, {"mode": "signup"})


def _take(
    store: Store, vault: Vault, *, state: str = "the-state", browser: str = BROWSER, **kwargs: object
) -> PendingFlow:
    options: dict[str, object] = {
        "provider": "xero",
        "purpose": CONNECT,
        "provider_name": "Xero",
        "state": state,
        "now": NOW + timedelta(minutes=1),
        "require_verifier": True,
    }
    options.update(kwargs)
    return pending.take(store, vault, browser, **options)  # type: ignore[arg-type]


def test_a_flow_is_taken_back_once(store: Store, vault: Vault) -> None:
    pending.start(store, vault, BROWSER, _flow(), NOW)
    taken = _take(store, vault)
    assert (taken.state, taken.verifier, taken.nonce, dict(taken.context)) == (
        "the-state",
        "v" * 43,
        "the-nonce",
        {"mode": "signup"},
    )
    with pytest.raises(PendingError, match="already used"):
        _take(store, vault)


def test_nothing_secret_is_stored_in_clear(store: Store, vault: Vault) -> None:
    pending.start(store, vault, BROWSER, _flow(), NOW)
    with store.unit_of_work() as uow:
        [row] = uow.session.scalars(select(OAuthPending)).all()
        stored = f"{row.state_hash}|{row.browser_hash}|{row.secrets_sealed}|{row.context}"
    for secret in ("the-state", BROWSER, "v" * 43, "the-nonce"):
        assert secret not in stored


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"state": ""}, "no Xero connection in progress"),
        ({"state": "another-state"}, "no Xero connection in progress"),
        ({"browser": "browser-two"}, "state mismatch"),
        ({"browser": ""}, "no Xero connection in progress"),
        ({"provider": "quickbooks"}, "mix-up"),
        ({"purpose": SIGNUP}, "mix-up"),
    ],
)
def test_a_refused_callback_leaves_the_good_entry_alone(
    store: Store, vault: Vault, change: dict[str, object], message: str
) -> None:
    pending.start(store, vault, BROWSER, _flow(), NOW)
    with pytest.raises(PendingError, match=message):
        _take(store, vault, **change)  # type: ignore[arg-type]
    assert _take(store, vault).state == "the-state"  # still usable by its own callback


def test_an_entry_expires_after_ten_minutes(store: Store, vault: Vault) -> None:
    pending.start(store, vault, BROWSER, _flow(), NOW)
    with pytest.raises(PendingError, match="expired after 10 minutes"):
        _take(store, vault, now=NOW + timedelta(minutes=10, seconds=1))


def test_a_missing_verifier_is_refused_where_pkce_is_required(store: Store, vault: Vault) -> None:
    pending.start(store, vault, BROWSER, _flow(verifier=""), NOW)
    with pytest.raises(PendingError, match="no PKCE verifier"):
        _take(store, vault)
    pending.start(store, vault, BROWSER, _flow("qbo-state", "quickbooks", verifier=""), NOW)
    assert _take(store, vault, state="qbo-state", provider="quickbooks", require_verifier=False).verifier == ""


def test_racing_callbacks_use_the_entry_once(store: Store, vault: Vault) -> None:
    pending.start(store, vault, BROWSER, _flow(), NOW)
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def callback() -> None:
        barrier.wait()
        try:
            _take(store, vault)
            outcomes.append("taken")
        except PendingError:
            outcomes.append("refused")
        except Exception as exc:  # SQLite may refuse a concurrent writer outright: still not a second take
            outcomes.append(f"error {type(exc).__name__}")

    threads = [threading.Thread(target=callback) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes.count("taken") == 1, outcomes


def test_old_entries_are_purged_when_a_new_one_starts(store: Store, vault: Vault) -> None:
    pending.start(store, vault, BROWSER, _flow("old"), NOW - timedelta(days=2))
    pending.start(store, vault, BROWSER, _flow("new"), NOW)
    with store.unit_of_work() as uow:
        assert len(uow.session.scalars(select(OAuthPending)).all()) == 1


def test_the_redirect_page_moves_the_browser_on(app: Flask) -> None:
    url = "https://provider.example/authorize?state=abc&client_id=x"
    with app.test_request_context():
        page = redirect_page(url, "Example Books")
    escaped = "https://provider.example/authorize?state=abc&amp;client_id=x"
    assert f'<meta http-equiv="refresh" content="0; url={escaped}">' in page
    assert f'href="{escaped}"' in page
    assert "Connecting Example Books" in page

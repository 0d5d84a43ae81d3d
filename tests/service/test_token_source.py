"""Single-flight token refresh over the database, with a strict rotating token endpoint."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from connector.connections.token_source import StoredTokenSource
from connector.domain.model import ChangeNotice, ConnectionInfo
from connector.errors import AuthError
from connector.ports import AccountingAdapter, ProviderSettings, ProviderSpec, TokenSet, TokenSource
from connector.storage import Store
from connector.vault.keyring import Vault, generate_key
from connector.vault.tokens import open_tokens, seal_tokens

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class StrictTokenEndpoint:
    """Rotates on every refresh; a refresh token works once (the emulators' strict mode)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.valid_refresh = "refresh-0000000000"
        self.calls = 0
        self.revoked = False

    def refresh(self, settings: ProviderSettings, tokens: TokenSet, now: datetime) -> TokenSet:
        time.sleep(0.05)  # a slow token endpoint widens any race
        with self.lock:
            self.calls += 1
            if self.revoked or tokens.refresh_token != self.valid_refresh:
                raise AuthError("the grant is no longer valid (invalid_grant)", provider="fake")
            self.valid_refresh = f"refresh-{self.calls:010d}"
            return TokenSet(f"access-{self.calls:010d}", self.valid_refresh, now + timedelta(hours=1))


def _spec(endpoint: StrictTokenEndpoint) -> ProviderSpec:
    def unused(*_: object) -> object:
        raise AssertionError("not used in this test")

    def adapter(tenant: str, tokens: TokenSource, settings: ProviderSettings) -> AccountingAdapter:
        raise AssertionError("not used")

    def connect(s: ProviderSettings, p: Mapping[str, str], t: TokenSet) -> list[ConnectionInfo]:
        return []

    def parse(body: bytes) -> list[ChangeNotice]:
        return []

    return ProviderSpec(
        key="fake",
        display_name="Fake Books",
        authorization_url=lambda s, st, c: "",
        exchange_code=unused,  # type: ignore[arg-type]
        refresh=endpoint.refresh,
        revoke=lambda s, t: None,
        connect=connect,
        verify_webhook=lambda b, s, k: False,
        parse_webhook=parse,
        adapter=adapter,
    )


SETTINGS = ProviderSettings(key="fake", client_id="id", client_secret="secret", redirect_uri="http://127.0.0.1/cb")


def _connection(store: Store, vault: Vault, expires_at: datetime) -> int:
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        connection = uow.connections.add(org.id, "fake", "t1", "Fake file")
        seal_tokens(vault, connection, TokenSet("access-initial", "refresh-0000000000", expires_at))
        uow.commit()
        return connection.id


def test_fresh_tokens_are_used_without_refresh(store: Store) -> None:
    vault = Vault.from_keys({"k1": generate_key()}, "k1")
    endpoint = StrictTokenEndpoint()
    cid = _connection(store, vault, NOW + timedelta(hours=1))
    source = StoredTokenSource(store, vault, _spec(endpoint), SETTINGS, cid, lambda: NOW)
    assert source.current().access_token == "access-initial"
    assert endpoint.calls == 0


def test_eight_threads_near_expiry_cause_exactly_one_refresh(store: Store) -> None:
    vault = Vault.from_keys({"k1": generate_key()}, "k1")
    endpoint = StrictTokenEndpoint()
    cid = _connection(store, vault, NOW + timedelta(seconds=30))
    spec = _spec(endpoint)
    barrier = threading.Barrier(8)
    seen: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        source = StoredTokenSource(store, vault, spec, SETTINGS, cid, lambda: NOW)  # one per thread, as adapters are
        barrier.wait()
        try:
            seen.append(source.current().access_token)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert endpoint.calls == 1
    assert seen == ["access-0000000001"] * 8
    with store.unit_of_work() as uow:
        stored = open_tokens(vault, uow.connections.by_id(cid))  # type: ignore[arg-type]
        assert stored.refresh_token == endpoint.valid_refresh  # the rotated token was persisted


def test_a_401_refreshes_once_even_when_many_callers_report_it(store: Store) -> None:
    vault = Vault.from_keys({"k1": generate_key()}, "k1")
    endpoint = StrictTokenEndpoint()
    cid = _connection(store, vault, NOW + timedelta(hours=1))
    spec = _spec(endpoint)
    sources = [StoredTokenSource(store, vault, spec, SETTINGS, cid, lambda: NOW) for _ in range(3)]
    rejected = sources[0].current().access_token
    results = [source.refreshed(rejected).access_token for source in sources]
    assert endpoint.calls == 1
    assert results == ["access-0000000001"] * 3


def test_invalid_grant_marks_the_connection_needs_reauth(store: Store) -> None:
    vault = Vault.from_keys({"k1": generate_key()}, "k1")
    endpoint = StrictTokenEndpoint()
    endpoint.revoked = True
    cid = _connection(store, vault, NOW - timedelta(minutes=1))
    source = StoredTokenSource(store, vault, _spec(endpoint), SETTINGS, cid, lambda: NOW)
    with pytest.raises(AuthError, match="invalid_grant"):
        source.current()
    with store.unit_of_work() as uow:
        connection = uow.connections.by_id(cid)
        assert connection is not None
        assert connection.status == "needs_reauth"
        assert [a.kind for a in uow.activities.for_organization(connection.organization_id)] == [
            "connection.needs_reauth"
        ]
    with pytest.raises(AuthError, match="needs to be reconnected"):
        source.current()
    assert endpoint.calls == 1  # a dead connection is not hammered

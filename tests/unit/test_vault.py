"""Vault: sealing tokens bound to their row, key rotation, and no secret in logs or errors."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from connector.errors import VaultError
from connector.ports import TokenSet
from connector.storage import Store
from connector.vault import redaction
from connector.vault.keyring import Binding, Vault, generate_key
from connector.vault.rotation import rotate
from connector.vault.tokens import open_tokens, seal_tokens

ACCESS = "eyJhbGciOiJIUzI1NiJ9.access-token-value-0123456789"
REFRESH = "AB11700000000refresh-token-value-abcdefghijkl"


def _tokens() -> TokenSet:
    return TokenSet(
        ACCESS, REFRESH, datetime(2026, 11, 23, 10, tzinfo=UTC), scope=("com.intuit.quickbooks.accounting",)
    )


def _vault(*key_ids: str, active: str | None = None, keys: dict[str, str] | None = None) -> Vault:
    ring = keys or {key_id: generate_key() for key_id in key_ids}
    return Vault.from_keys(ring, active or key_ids[0])


def test_round_trip_and_random_nonces() -> None:
    vault = _vault("k1")
    binding = Binding("xero", 7, "tenant-a", "tokens")
    first, second = vault.seal("s3cret-value", binding), vault.seal("s3cret-value", binding)
    assert first != second and "s3cret" not in first
    assert vault.open(first, binding) == vault.open(second, binding) == "s3cret-value"


def test_ciphertext_moved_to_another_connection_fails(store: Store) -> None:
    vault = _vault("k1")
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        mine = uow.connections.add(org.id, "quickbooks", "111", "mine")
        other = uow.connections.add(org.id, "quickbooks", "222", "other")
        seal_tokens(vault, mine, _tokens())
        uow.commit()
        assert open_tokens(vault, mine).refresh_token == REFRESH
        other.tokens_sealed = mine.tokens_sealed  # a row swap, as an attacker with DB access might try
        with pytest.raises(VaultError, match="belongs to another connection") as error:
            open_tokens(vault, other)
        assert REFRESH not in str(error.value) and ACCESS not in str(error.value)
    for changed in (Binding("quickbooks", 1, "111", "id_token"), Binding("xero", 1, "111", "tokens")):
        sealed = vault.seal("x" * 20, Binding("quickbooks", 1, "111", "tokens"))
        with pytest.raises(VaultError):
            vault.open(sealed, changed)


def test_tampered_or_unknown_key_is_rejected() -> None:
    vault = _vault("k1")
    binding = Binding("xero", 1, "t", "tokens")
    sealed = vault.seal("value-1234", binding)
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(VaultError):
        vault.open(flipped, binding)
    with pytest.raises(VaultError, match="not in the key ring"):
        _vault("k2").open(sealed, binding)
    with pytest.raises(VaultError, match="malformed"):
        vault.open("garbage", binding)


def test_rotation_reseals_everything_and_old_key_can_be_retired(store: Store) -> None:
    old_key, new_key = generate_key(), generate_key()
    old = Vault.from_keys({"k1": old_key}, "k1")
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        connections = [uow.connections.add(org.id, "xero", f"t{i}", f"c{i}") for i in range(5)]
        uow.flush()
        for connection in connections:
            seal_tokens(old, connection, _tokens())
        uow.commit()
    both = Vault.from_keys({"k1": old_key, "k2": new_key}, "k2")
    report = rotate(store, both, batch_size=2)
    assert (report.resealed, report.already_current, report.skipped_concurrent) == (5, 0, 0)
    assert rotate(store, both).already_current == 5  # a second run has nothing to do
    retired = Vault.from_keys({"k2": new_key}, "k2")
    with store.unit_of_work() as uow:
        for connection in uow.connections.for_organization(org.id):
            assert retired.key_id_of(connection.tokens_sealed) == "k2"
            assert open_tokens(retired, connection).access_token == ACCESS


def test_start_up_fails_closed_without_a_key() -> None:
    with pytest.raises(VaultError, match="NUDGE_VAULT_KEY"):
        Vault.from_keys({"k1": ""}, "k1", variable="NUDGE_VAULT_KEY")
    with pytest.raises(VaultError, match="32 bytes"):
        Vault.from_keys({"k1": "c2hvcnQ"}, "k1")
    with pytest.raises(VaultError, match="active_key"):
        Vault.from_keys({"k1": generate_key()}, "k9")


def test_reprs_never_show_secrets() -> None:
    key = generate_key()
    vault = Vault.from_keys({"k1": key}, "k1")
    tokens = _tokens()
    for text in (repr(vault), str(vault), repr(tokens), str(tokens), f"{tokens}"):
        assert key not in text and ACCESS not in text and REFRESH not in text


def test_no_token_reaches_logs_or_formatted_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    redaction.install()
    vault = _vault("k1")
    binding = Binding("quickbooks", 3, "999", "tokens")
    opened = vault.open(vault.seal(REFRESH, binding), binding)  # opening registers the secret
    logger = logging.getLogger("some.sdk")
    with caplog.at_level(logging.DEBUG):
        logger.debug("refreshing with %s", opened)
        logger.info("headers: {'Authorization': 'Bearer %s'}", ACCESS)
        logger.warning('body: {"access_token": "%s", "refresh_token": "%s"}', ACCESS, REFRESH)
        try:
            raise RuntimeError(f"token endpoint said no for {REFRESH}")
        except RuntimeError:
            logger.exception("refresh failed")
    handler_output = "\n".join(logging.Formatter().format(record) for record in caplog.records)
    everything = caplog.text + handler_output
    assert ACCESS not in everything and REFRESH not in everything
    assert "<redacted>" in everything and "refresh failed" in everything and "RuntimeError" in everything


def test_oauth_codes_in_access_log_lines_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    redaction.install()
    with caplog.at_level(logging.INFO):
        logging.getLogger("werkzeug").info(
            '127.0.0.1 - - "GET /oauth/quickbooks/callback?code=AB11secretcode123&state=xyz&realmId=9130 HTTP/1.1" '
            "302 -"
        )
    assert "AB11secretcode123" not in caplog.text
    assert "code=<redacted>&state=xyz&realmId=9130" in caplog.text

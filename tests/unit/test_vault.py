"""Vault: sealing bound to a row, tampering, fail-closed start-up, and no secret in logs or errors.

Sealing tokens into connection rows and key rotation over a store are in tests/service/test_vault_storage.py.
"""

from __future__ import annotations

import logging

import pytest

from connector.errors import VaultError
from connector.vault import redaction
from connector.vault.keyring import Binding, Vault, generate_key
from tests.support.tokens import ACCESS, REFRESH, sample_tokens, vault_with


def test_round_trip_and_random_nonces() -> None:
    vault = vault_with("k1")
    binding = Binding("xero", 7, "tenant-a", "tokens")
    first, second = vault.seal("s3cret-value", binding), vault.seal("s3cret-value", binding)
    assert first != second
    assert "s3cret" not in first
    assert vault.open(first, binding) == vault.open(second, binding) == "s3cret-value"


def test_tampered_or_unknown_key_is_rejected() -> None:
    vault = vault_with("k1")
    binding = Binding("xero", 1, "t", "tokens")
    sealed = vault.seal("value-1234", binding)
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(VaultError):
        vault.open(flipped, binding)
    with pytest.raises(VaultError, match="not in the key ring"):
        vault_with("k2").open(sealed, binding)
    with pytest.raises(VaultError, match="malformed"):
        vault.open("garbage", binding)


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
    tokens = sample_tokens()
    for text in (repr(vault), str(vault), repr(tokens), str(tokens), f"{tokens}"):
        assert key not in text
        assert ACCESS not in text
        assert REFRESH not in text


def test_no_token_reaches_logs_or_formatted_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    redaction.install()
    vault = vault_with("k1")
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
    assert ACCESS not in everything
    assert REFRESH not in everything
    assert "<redacted>" in everything
    assert "refresh failed" in everything
    assert "RuntimeError" in everything


def test_oauth_codes_in_access_log_lines_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    redaction.install()
    with caplog.at_level(logging.INFO):
        logging.getLogger("werkzeug").info(
            '127.0.0.1 - - "GET /oauth/quickbooks/callback?code=AB11secretcode123&state=xyz&realmId=9130 HTTP/1.1" '
            "302 -"
        )
    assert "AB11secretcode123" not in caplog.text
    assert "code=<redacted>&state=xyz&realmId=9130" in caplog.text

"""RS-16: a full database dump holds no secret in plain text; a sealed token moved to another row never opens."""

from __future__ import annotations

import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from connector.errors import VaultError
from connector.storage import Store
from connector.vault.keyring import Binding
from connector.vault.tokens import open_tokens, seal_tokens
from tests.support.pipeline import Pipeline, pipeline, rules
from tests.support.tokens import ACCESS, REFRESH, sample_tokens, vault_with
from tests.support.workers import customer_email

RULES = rules([{"id": "late", "offset": 3, "remind": "firm", "note": "Overdue: reminder sent by Nudge"}])
WEBHOOK_KEY = "rs16-webhook-signing-key-0123456789"


def _tenant(world: Pipeline, name: str) -> int:
    kit = world.kit
    tenant = kit.add_company(name)
    customer = kit.add_customer(tenant, f"{name} Payer", customer_email(f"{name} Payer"))
    due = world.clock.now().date() - timedelta(days=10)
    kit.add_invoice(tenant, customer, f"{name[:2]}-1", Decimal("90.00"), "", due - timedelta(days=30), due)
    return world.connect(tenant)


def _dump(world: Pipeline) -> str:
    """Every byte the database holds, as a full SQL dump (pg_dump of the schema; SQLite's iterdump and file)."""
    url = make_url(world.database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        raw = sqlite3.connect(url.database)
        try:
            text = "\n".join(raw.iterdump())
        finally:
            raw.close()
        return text + Path(url.database).read_bytes().decode("latin-1")
    schema = str(url.query["options"]).removeprefix("-csearch_path=")
    plain = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    result = subprocess.run(
        ["pg_dump", "--no-owner", "--schema", schema, plain], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_rs16_a_full_dump_holds_no_token_client_secret_or_webhook_key(database: str, tmp_path: Path) -> None:
    """Expected: no plaintext token, client secret or webhook key substring in a full SQL dump."""
    with pipeline("quickbooks", tmp_path, RULES, database=database, webhook_key=WEBHOOK_KEY) as world:
        connections = [_tenant(world, "Dump Co"), _tenant(world, "Other Co")]
        for connection in connections:
            world.turn(connection)  # synced invoices, actions, activities, notes: a realistic dump
        services = world.services
        secrets = {
            "client secret": services.registry.settings("quickbooks").client_secret,
            "webhook key": WEBHOOK_KEY,
            "vault key": next(iter(services.settings.vault.keys.values())),
        }
        with services.store.unit_of_work() as uow:
            for connection_id in connections:
                row = uow.connections.by_id(connection_id)
                assert row is not None
                tokens = open_tokens(services.vault, row)
                secrets[f"access token {connection_id}"] = tokens.access_token
                secrets[f"refresh token {connection_id}"] = tokens.refresh_token
        dump = _dump(world)
        assert "CREATE TABLE" in dump.upper()
        assert "Dump Co" in dump  # the dump is complete: the tenants' rows are in it
        for name, secret in secrets.items():
            assert len(secret) >= 16, name
            for start in range(0, len(secret) - 15, 8):  # any 16-character substring
                assert secret[start : start + 16] not in dump, f"{name} found in the dump"


def test_rs16_ciphertext_moved_to_another_connection_fails(store: Store) -> None:
    """Expected: a token ciphertext copied from tenant B's row to tenant A's fails to decrypt (InvalidTag).

    Moved from tests/service/test_vault_storage.py (SQLite and PostgreSQL, every assertion kept).
    """
    vault = vault_with("k1")
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        mine = uow.connections.add(org.id, "quickbooks", "111", "mine")
        other = uow.connections.add(org.id, "quickbooks", "222", "other")
        seal_tokens(vault, mine, sample_tokens())
        uow.commit()
        assert open_tokens(vault, mine).refresh_token == REFRESH
        other.tokens_sealed = mine.tokens_sealed  # a row swap, as an attacker with DB access might try
        with pytest.raises(VaultError, match="belongs to another connection") as error:
            open_tokens(vault, other)
        assert REFRESH not in str(error.value)
        assert ACCESS not in str(error.value)
    for changed in (Binding("quickbooks", 1, "111", "id_token"), Binding("xero", 1, "111", "tokens")):
        sealed = vault.seal("x" * 20, Binding("quickbooks", 1, "111", "tokens"))
        with pytest.raises(VaultError):
            vault.open(sealed, changed)


def test_rs16_a_swapped_row_shows_a_clear_error_and_the_other_tenant_runs(tmp_path: Path) -> None:
    """Expected: a ciphertext from B's row in A's fails to decrypt and the connection shows a clear error."""
    with pipeline("quickbooks", tmp_path, RULES, start=datetime.now(UTC)) as world:
        victim, source = _tenant(world, "Victim Co"), _tenant(world, "Source Co")
        services = world.services
        with services.store.unit_of_work() as uow:
            a, b = uow.connections.by_id(victim), uow.connections.by_id(source)
            assert a is not None
            assert b is not None
            stolen = open_tokens(services.vault, b)
            a.tokens_sealed = b.tokens_sealed
            uow.commit()

        tick = world.worker().tick()

        assert tick.succeeded == [source]
        message = tick.failed[victim]
        assert "another connection" in message, message
        assert stolen.access_token not in message
        assert stolen.refresh_token not in message
        with services.store.unit_of_work() as uow:
            row = uow.connections.by_id(victim)
            assert row is not None
            assert row.last_error == message
        assert world.actions(victim) == []

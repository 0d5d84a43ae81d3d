"""Vault over a store (SQLite and PostgreSQL): sealed tokens bound to their connection row, key rotation."""

from __future__ import annotations

import pytest

from connector.errors import VaultError
from connector.storage import Store
from connector.vault.keyring import Binding, Vault, generate_key
from connector.vault.rotation import rotate
from connector.vault.tokens import open_tokens, seal_tokens
from tests.support.tokens import ACCESS, REFRESH, sample_tokens, vault_with


def test_ciphertext_moved_to_another_connection_fails(store: Store) -> None:
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


def test_rotation_reseals_everything_and_old_key_can_be_retired(store: Store) -> None:
    old_key, new_key = generate_key(), generate_key()
    old = Vault.from_keys({"k1": old_key}, "k1")
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        connections = [uow.connections.add(org.id, "xero", f"t{i}", f"c{i}") for i in range(5)]
        uow.flush()
        for connection in connections:
            seal_tokens(old, connection, sample_tokens())
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

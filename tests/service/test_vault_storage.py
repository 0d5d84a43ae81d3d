"""Vault over a store (SQLite and PostgreSQL): key rotation (the row-swap test is RS-16 in tests/reliability)."""

from __future__ import annotations

from connector.storage import Store
from connector.vault.keyring import Vault, generate_key
from connector.vault.rotation import rotate
from connector.vault.tokens import open_tokens, seal_tokens
from tests.support.tokens import ACCESS, sample_tokens


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

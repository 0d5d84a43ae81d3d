"""The vault canary over a store (SQLite and PostgreSQL): a wrong key is refused at start-up, rotation reseals it."""

from __future__ import annotations

import pytest

from connector.errors import VaultError
from connector.storage import Store
from connector.vault.canary import check_canary
from connector.vault.keyring import Vault, generate_key
from connector.vault.rotation import rotate


def test_a_wrong_vault_key_is_caught_at_start_up_by_the_canary(store: Store) -> None:
    """Issue 10 item 18 (RS-17): the first start seals a canary; a later start with another key is refused."""
    right = Vault.from_keys({"k1": generate_key()}, "k1", variable="NUDGE_VAULT_KEY")
    check_canary(store, right, variable="NUDGE_VAULT_KEY")  # first start: written
    check_canary(store, right, variable="NUDGE_VAULT_KEY")  # next start: opens
    wrong = Vault.from_keys({"k1": generate_key()}, "k1", variable="NUDGE_VAULT_KEY")
    with pytest.raises(VaultError, match="NUDGE_VAULT_KEY") as error:
        check_canary(store, wrong, variable="NUDGE_VAULT_KEY")
    assert "does not open" in error.value.user_message
    other_id = Vault.from_keys({"k9": generate_key()}, "k9", variable="NUDGE_VAULT_KEY")
    with pytest.raises(VaultError, match="NUDGE_VAULT_KEY"):
        check_canary(store, other_id, variable="NUDGE_VAULT_KEY")


def test_rotation_reseals_the_canary_so_the_old_key_can_go(store: Store) -> None:
    """Issue 10 item 18 (RS-17): after `keys rotate`, a start with only the new key passes the canary."""
    old_key, new_key = generate_key(), generate_key()
    check_canary(store, Vault.from_keys({"k1": old_key}, "k1"))
    both = Vault.from_keys({"k1": old_key, "k2": new_key}, "k2")
    check_canary(store, both)
    rotate(store, both)
    check_canary(store, Vault.from_keys({"k2": new_key}, "k2"))

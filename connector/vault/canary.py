"""The vault canary: catch a wrong or missing key at start-up, before any token is opened.

The first start seals a known text with the active key into `vault_canary`; every start of `serve`,
`worker` and `run` opens it. A key ring that cannot open it would open no stored secret either, so the
process exits naming the variable to fix. `nudge keys rotate` reseals it with the new active key.
"""

from __future__ import annotations

import logging

from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from connector.errors import StorageError, VaultError
from connector.storage import Store
from connector.storage.tables import VaultCanary
from connector.vault.keyring import Binding, Vault

log = logging.getLogger(__name__)

CANARY_ID = 1
CANARY_TEXT = "nudge vault canary v1"
CANARY_BINDING = Binding("nudge", 0, "vault-canary", "canary")


def check_canary(store: Store, vault: Vault, *, variable: str = "NUDGE_VAULT_KEY") -> None:
    """Open the canary (sealing it on first start); VaultError naming `variable` when the key is wrong.

    A database that is not migrated yet holds no secret to protect; one that cannot be reached is
    logged and skipped (the process reports it where it needs the database).
    """
    try:
        if not _has_table(store):
            return
        _open_or_seal(store, vault, variable)
    except StorageError as exc:
        log.warning("could not check the vault key against the database: %s", exc.user_message)


def reseal_canary(store: Store, vault: Vault) -> bool:
    """Seal the canary again with the active key (key rotation); True when it changed."""
    if not _has_table(store):
        return False
    with store.unit_of_work() as uow:
        row = uow.session.get(VaultCanary, CANARY_ID)
        if row is None:
            return False
        new = vault.reseal(row.sealed, CANARY_BINDING)
        if new is None:
            return False
        row.sealed = new
        uow.commit()
        return True


def _has_table(store: Store) -> bool:
    try:
        with store.engine.connect() as connection:
            return bool(inspect(connection).has_table(VaultCanary.__tablename__))
    except SQLAlchemyError as exc:
        raise StorageError(f"database unavailable: {type(exc).__name__}") from exc


def _open_or_seal(store: Store, vault: Vault, variable: str) -> None:
    with store.unit_of_work() as uow:
        sealed = uow.session.scalar(select(VaultCanary.sealed).where(VaultCanary.id == CANARY_ID))
        if sealed is None:
            uow.session.add(VaultCanary(id=CANARY_ID, sealed=vault.seal(CANARY_TEXT, CANARY_BINDING)))
            try:
                uow.commit()
                return
            except IntegrityError:  # another process sealed it first: open theirs
                uow.rollback()
                sealed = uow.session.scalar(select(VaultCanary.sealed).where(VaultCanary.id == CANARY_ID))
    if sealed is None:
        return
    try:
        opened = vault.open(sealed, CANARY_BINDING)
    except VaultError as exc:
        raise VaultError(_wrong_key(variable, vault, sealed, exc)) from None
    if opened != CANARY_TEXT:
        raise VaultError(_wrong_key(variable, vault, sealed, None))


def _wrong_key(variable: str, vault: Vault, sealed: str, exc: VaultError | None) -> str:
    key_id = vault.key_id_of(sealed)
    why = "is not in the key ring" if key_id not in vault.key_ids else "does not match"
    return (
        f"the vault key in {variable} (vault.keys) does not open this database's secrets: they were sealed with "
        f"key {key_id!r}, which {why}. Set {variable} to the key the database was sealed with (after a rotation, "
        "keep the old key until `nudge keys rotate` has run). The `.env` file `nudge init` wrote next to the config "
        "may be missing, or come from another install; Nudge refuses to start rather than read garbage"
    )

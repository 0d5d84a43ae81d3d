"""`nudge keys rotate`: re-seal every stored secret with the active key, online, in small batches."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update

from connector.storage import Store
from connector.storage.tables import Connection
from connector.vault.canary import reseal_canary
from connector.vault.keyring import Vault
from connector.vault.tokens import token_binding


@dataclass(frozen=True)
class RotationReport:
    """What a key rotation did: tokens resealed, already current, skipped as concurrently changed."""

    resealed: int
    already_current: int
    skipped_concurrent: int


def rotate(store: Store, vault: Vault, batch_size: int = 100) -> RotationReport:
    """Re-seal secrets not sealed with the active key.

    Each row is updated only if its ciphertext is unchanged since it was read, so a token refresh
    racing the rotation wins (its new ciphertext is already sealed with the active key).
    """
    resealed = current = skipped = 0
    after = 0
    while True:
        with store.unit_of_work() as uow:
            rows = uow.connections.all_sealed(after, batch_size)
            if not rows:
                break
            for row in rows:
                after = row.id
                new = vault.reseal(row.tokens_sealed, token_binding(row))
                if new is None:
                    current += 1
                    continue
                result = uow.session.execute(
                    update(Connection)
                    .where(Connection.id == row.id, Connection.tokens_sealed == row.tokens_sealed)
                    .values(tokens_sealed=new)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    resealed += 1
                else:
                    skipped += 1
            uow.commit()
    reseal_canary(store, vault)  # the start-up check must pass with only the new key
    return RotationReport(resealed, current, skipped)

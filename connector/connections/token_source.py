"""Database-backed TokenSource: one refresh per expiry across threads, processes and machines.

A refresh takes an in-process lock (threads of one worker queue behind it), then the connection's
row lock (other processes queue behind that), re-reads the row, and refreshes only if nobody else
already did. The rotated refresh token is committed before the new access token is used, because
providers may kill the previous refresh token on first use (QuickBooks after 24 h, Xero after
30 minutes, the emulators' strict mode at once).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import update

from connector.domain.model import ConnectionStatus
from connector.errors import AuthError
from connector.ports import ProviderSettings, ProviderSpec, TokenSet
from connector.storage import Store
from connector.storage.tables import Connection
from connector.vault.keyring import Vault
from connector.vault.tokens import open_tokens, seal_tokens

REFRESH_MARGIN_S = 300.0

_locks_guard = threading.Lock()
_locks: dict[tuple[str, int], threading.Lock] = {}


def _process_lock(store: Store, connection_id: int) -> threading.Lock:
    key = (str(store.engine.url), connection_id)
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


class StoredTokenSource:
    """Tokens of one connection, kept sealed in its row and refreshed single-flight."""

    def __init__(
        self,
        store: Store,
        vault: Vault,
        spec: ProviderSpec,
        settings: ProviderSettings,
        connection_id: int,
        now: Callable[[], datetime],
        margin_s: float = REFRESH_MARGIN_S,
    ) -> None:
        self._store = store
        self._vault = vault
        self._spec = spec
        self._settings = settings
        self._connection_id = connection_id
        self._now = now
        self._margin_s = margin_s
        self._cached: TokenSet | None = None
        self.refresh_calls = 0  # token-endpoint calls this source made (tests and metrics)

    def __repr__(self) -> str:
        return f"StoredTokenSource(connection_id={self._connection_id}, provider={self._spec.key!r})"

    def current(self) -> TokenSet:
        """Tokens valid for at least the margin, refreshing first when they are not."""
        tokens = self._cached
        if tokens is None or tokens.expires_within(self._margin_s, self._now()):
            tokens = self._load()
        if tokens.expires_within(self._margin_s, self._now()):
            tokens = self._refresh(lambda fresh: not fresh.expires_within(self._margin_s, self._now()))
        return tokens

    def refreshed(self, rejected_access_token: str) -> TokenSet:
        """After a 401: refresh once, unless another caller already replaced the rejected token."""
        return self._refresh(lambda fresh: fresh.access_token != rejected_access_token)

    def _load(self) -> TokenSet:
        with self._store.unit_of_work() as uow:
            connection = uow.connections.by_id(self._connection_id)
            if connection is None:
                raise AuthError(f"connection {self._connection_id} no longer exists", provider=self._spec.key)
            self._check_usable(connection)
            self._cached = open_tokens(self._vault, connection)
            return self._cached

    def _check_usable(self, connection: Connection) -> None:
        if connection.status != ConnectionStatus.ACTIVE.value:
            raise AuthError(
                f"{self._spec.display_name} connection {connection.name!r} needs to be reconnected "
                f"(status: {connection.status})",
                provider=self._spec.key,
            )

    def _refresh(self, already_fresh: Callable[[TokenSet], bool]) -> TokenSet:
        with _process_lock(self._store, self._connection_id), self._store.unit_of_work() as uow:
            # Take the row lock before reading: PostgreSQL FOR UPDATE; on SQLite the no-op write
            # takes the database's write lock, which serializes processes the same way.
            uow.session.execute(
                update(Connection)
                .where(Connection.id == self._connection_id)
                .values(lease_owner=Connection.lease_owner)
                .execution_options(synchronize_session=False)
            )
            connection = uow.connections.lock(self._connection_id)
            if connection is None:
                raise AuthError(f"connection {self._connection_id} no longer exists", provider=self._spec.key)
            self._check_usable(connection)
            stored = open_tokens(self._vault, connection)
            if already_fresh(stored):
                self._cached = stored
                return stored
            self.refresh_calls += 1
            try:
                fresh = self._spec.refresh(self._settings, stored, self._now())
            except AuthError as exc:
                connection.status = ConnectionStatus.NEEDS_REAUTH.value
                connection.last_error = exc.user_message
                uow.activities.record(
                    connection.organization_id,
                    "connection.needs_reauth",
                    connection.name,
                    connection_id=connection.id,
                    detail={"reason": exc.user_message},
                )
                uow.commit()
                raise
            seal_tokens(self._vault, connection, fresh)
            uow.commit()
            self._cached = fresh
            return fresh

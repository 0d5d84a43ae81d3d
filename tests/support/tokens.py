"""The one in-memory TokenSource of the tests (the contract suite and the QuickBooks tests use it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from connector.ports import ProviderSettings, TokenSet
from connector.vault.keyring import Vault, generate_key


class MemoryTokenSource:
    """In-memory TokenSource: refreshes through the provider's `refresh`, single-flight per instance."""

    def __init__(
        self,
        settings: ProviderSettings,
        tokens: TokenSet,
        refresh: Callable[[ProviderSettings, TokenSet, datetime], TokenSet],
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.refreshes = 0
        self._refresh_fn = refresh
        self._lock = threading.Lock()

    def current(self) -> TokenSet:
        with self._lock:
            if self.tokens.expires_within(60, datetime.now(UTC)):
                self._refresh()
            return self.tokens

    def refreshed(self, rejected_access_token: str) -> TokenSet:
        with self._lock:
            if self.tokens.access_token == rejected_access_token:
                self._refresh()
            return self.tokens

    def _refresh(self) -> None:
        self.tokens = self._refresh_fn(self.settings, self.tokens, datetime.now(UTC))
        self.refreshes += 1


# Token values that look real enough for the redaction and vault tests to hunt for.
ACCESS = "eyJhbGciOiJIUzI1NiJ9.access-token-value-0123456789"
REFRESH = "AB11700000000refresh-token-value-abcdefghijkl"


def sample_tokens() -> TokenSet:
    """A QuickBooks-like TokenSet holding ACCESS and REFRESH."""
    return TokenSet(
        ACCESS, REFRESH, datetime(2026, 11, 23, 10, tzinfo=UTC), scope=("com.intuit.quickbooks.accounting",)
    )


def vault_with(*key_ids: str, active: str | None = None, keys: dict[str, str] | None = None) -> Vault:
    """A Vault over fresh keys named `key_ids` (or the given `keys`), the first (or `active`) one active."""
    ring = keys or {key_id: generate_key() for key_id in key_ids}
    return Vault.from_keys(ring, active or key_ids[0])

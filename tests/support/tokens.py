"""The one in-memory TokenSource of the tests (the contract suite and the QuickBooks tests use it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from connector.ports import ProviderSettings, TokenSet


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

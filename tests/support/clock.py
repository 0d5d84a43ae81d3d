"""The one fake clock of the tests: it answers `moment` until the test moves it."""

from __future__ import annotations

from datetime import datetime, timedelta


class FakeClock:
    """A connector.ports.Clock the test sets (`moment = ...`) or moves (`advance(...)`)."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment

    def advance(self, delta: timedelta) -> datetime:
        self.moment += delta
        return self.moment

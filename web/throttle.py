"""Sign-in throttling: failed password attempts are counted per account and per client address.

Each app gets its own `LoginThrottle` (`app.extensions[THROTTLE_KEY]`) over the `limits` library (the
engine of Flask-Limiter) with a moving window. Only failures count, so signing in normally never uses
the allowance up; once an account or an address is over its limit, the login form answers 429 with
Retry-After *before* any password is checked, so a throttled attacker costs no Argon2 time either.

Storage is `web.ratelimit_storage_uri`: `memory://` keeps counts in the process (development, or a
single process), `redis://host:6379/0` shares them across gunicorn workers and machines. Accounts are
keyed by a hash of the normalized email, never the email itself.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from flask import Flask, current_app
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

THROTTLE_KEY = "nudge.login_throttle"


@dataclass(frozen=True)
class Verdict:
    """Whether an attempt may go ahead, and if not, how many seconds until it may."""

    allowed: bool
    retry_after: int = 0


class LoginThrottle:
    """Per-account and per-address limits on failed sign-ins."""

    def __init__(self, storage_uri: str, per_account: str, per_address: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._per_account = parse_many(per_account)
        self._per_address = parse_many(per_address)

    def _keys(self, email: str, address: str) -> list[tuple[RateLimitItem, str, str]]:
        account = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return [(item, "login-account", account) for item in self._per_account] + [
            (item, "login-address", address or "unknown") for item in self._per_address
        ]

    def check(self, email: str, address: str) -> Verdict:
        """May this attempt be checked at all? (does not count it)."""
        wait = 0
        for item, scope, key in self._keys(email, address):
            if not self._limiter.test(item, scope, key):
                reset = self._limiter.get_window_stats(item, scope, key).reset_time
                wait = max(wait, int(reset - time.time()) + 1)
        return Verdict(allowed=wait == 0, retry_after=wait)

    def failed(self, email: str, address: str) -> None:
        """Count one failed attempt against the account and the address."""
        for item, scope, key in self._keys(email, address):
            self._limiter.hit(item, scope, key)


def init_app(app: Flask, storage_uri: str, per_account: str, per_address: str) -> None:
    """Give `app` its own throttle."""
    app.extensions[THROTTLE_KEY] = LoginThrottle(storage_uri, per_account, per_address)


def throttle() -> LoginThrottle:
    """The throttle of the app handling the current request."""
    throttle: LoginThrottle = current_app.extensions[THROTTLE_KEY]
    return throttle

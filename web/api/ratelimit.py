"""Rate limits of the API: per token (token requests) or per user (session requests), from `api.rate_limit`.

Counted with the `limits` library in a moving window over `web.ratelimit_storage_uri` (memory:// or a shared
redis://), like the sign-in throttle. Every counted response carries `RateLimit-Limit`, `RateLimit-Remaining`
and `RateLimit-Reset` (seconds); over the limit the answer is a 429 problem with `Retry-After`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from flask import Flask, Response, abort, current_app, g
from flask_login import current_user  # type: ignore[import-untyped, unused-ignore]
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

LIMITER_KEY = "nudge.api_limiter"
DEFAULT_RATE_LIMIT = "600 per minute"


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a caller stands against the tightest of its limits."""

    limit: int
    remaining: int
    reset_seconds: int


class ApiLimiter:
    """The app's API limits: every item of `api.rate_limit` applies to each caller."""

    def __init__(self, storage_uri: str, rate_limit: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._items: list[RateLimitItem] = parse_many(rate_limit)

    def hit(self, key: str) -> tuple[bool, Standing]:
        """Count one request of `key`; (allowed, standing). A refused request is not counted."""
        allowed = True
        standing: Standing | None = None
        for item in self._items:
            if not self._limiter.hit(item, "api", key):
                allowed = False
            stats = self._limiter.get_window_stats(item, "api", key)
            reset = max(0, math.ceil(stats.reset_time - time.time()))
            here = Standing(item.amount, max(0, stats.remaining), reset)
            if standing is None or here.remaining < standing.remaining:
                standing = here
        assert standing is not None  # parse_many never returns an empty list
        return allowed, standing


def caller_key() -> str:
    """The request's rate-limit key: its token, else its user."""
    token = g.get("api_token")
    if token is not None:
        return f"token:{token.token_id}"
    return f"user:{current_user.user_id}"


def hit() -> None:
    """Count the current API request; 429 (problem, with Retry-After) when the caller is over its limit."""
    limiter: ApiLimiter = current_app.extensions[LIMITER_KEY]
    allowed, standing = limiter.hit(caller_key())
    g.api_rate_standing = standing
    if not allowed:
        from flask_smorest import abort as smorest_abort

        smorest_abort(
            429,
            message="Too many requests: wait before trying again.",
            headers={"Retry-After": str(max(1, standing.reset_seconds)), **_headers(standing)},
        )
        abort(429)  # not reached: smorest_abort raises


def _headers(standing: Standing) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(standing.limit),
        "RateLimit-Remaining": str(standing.remaining),
        "RateLimit-Reset": str(standing.reset_seconds),
    }


def _add_headers(response: Response) -> Response:
    standing = g.get("api_rate_standing")
    if standing is not None:
        for name, value in _headers(standing).items():
            response.headers.setdefault(name, value)
    return response


def init_app(app: Flask, storage_uri: str, rate_limit: str) -> None:
    """Give `app` its own API limiter and the RateLimit headers on counted responses."""
    app.extensions[LIMITER_KEY] = ApiLimiter(storage_uri, rate_limit)
    app.after_request(_add_headers)

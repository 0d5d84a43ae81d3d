"""The OAuth round trip's pending state for web.connections and web.signup (kept server-side by
`connector.connections.pending`).

The session holds only a random browser id (`BROWSER_KEY`); the state, the PKCE verifier, the nonce and
the caller's context live in the oauth_pending table, bound to that browser id, the provider and the
purpose, used once and valid for 10 minutes. A replayed callback (the same `code` and `state` again,
even with a copy of the session cookie taken before the callback) finds its entry used and is refused
before any call to the token endpoint; a callback with a wrong state leaves the good entry alone.

The start answers with a page that moves the browser on to the provider (meta refresh plus a link)
rather than a 303: under the strict CSP (`form-action 'self'`) browsers refuse a form whose redirect
leaves the site.
"""

from __future__ import annotations

import secrets

from flask import render_template, request, session

from connector.connections import pending
from connector.connections.pending import PendingError, PendingFlow
from connector.ports import ProviderSpec
from web.extensions import services

__all__ = ["BROWSER_KEY", "PendingError", "PendingFlow", "redirect_page", "remember", "take"]

BROWSER_KEY = "nudge.oauth_browser"


def _browser(create: bool) -> str:
    """This browser's random id in the session (made on first use when `create`)."""
    value = session.get(BROWSER_KEY)
    if isinstance(value, str) and value:
        return value
    if not create:
        return ""
    value = secrets.token_urlsafe(32)
    session[BROWSER_KEY] = value
    return value


def remember(flow: PendingFlow) -> None:
    """Keep `flow` server-side for this browser until its callback."""
    pending.start(services().store, services().vault, _browser(True), flow, services().clock.now())


def take(spec: ProviderSpec, purpose: str) -> PendingFlow:
    """The round trip the callback's `state` names, used up; PendingError before any provider call otherwise."""
    return pending.take(
        services().store,
        services().vault,
        _browser(False),
        provider=spec.key,
        purpose=purpose,
        provider_name=spec.display_name,
        state=request.args.get("state", ""),
        now=services().clock.now(),
        require_verifier=spec.supports_pkce,
    )


def redirect_page(url: str, provider_name: str) -> str:
    """The page sending the browser on to the provider's authorize `url` (a meta refresh and a link)."""
    return render_template("oauth_redirect.html", url=url, provider_name=provider_name)

"""The OAuth round trip's pending state, kept in the signed session (used by web.connections and web.signup).

Starting a round trip remembers one entry per provider under the caller's session key: the `state`, the
PKCE verifier, the OpenID Connect nonce where there is one, and whatever the caller needs back at the
callback (the organization and user that started connecting, or whether it is a sign-up or a sign-in).
The callback takes the entry out of the session whatever happens, so an entry is used at most once, and
hands state, verifier and nonce to the connector, which checks them against what the provider sent.

The start answers with a page that moves the browser on to the provider (meta refresh plus a link)
rather than a 303: under the strict CSP (`form-action 'self'`) browsers refuse a form whose redirect
leaves the site.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import render_template, session

__all__ = ["PendingFlow", "PendingFlows", "redirect_page"]

_SECRETS = ("state", "verifier", "nonce")


@dataclass(frozen=True)
class PendingFlow:
    """One round trip in progress: what the callback checks, and the caller's own context."""

    state: str
    verifier: str
    nonce: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)


class PendingFlows:
    """The round trips in progress in this browser's session under `session_key`, one per provider."""

    def __init__(self, session_key: str) -> None:
        self.session_key = session_key

    def remember(self, provider: str, flow: PendingFlow) -> None:
        """Keep `flow` for `provider`, replacing any round trip to that provider started before."""
        entry: dict[str, Any] = {"state": flow.state, "verifier": flow.verifier}
        if flow.nonce:
            entry["nonce"] = flow.nonce
        entry.update({name: value for name, value in flow.context.items() if name not in _SECRETS})
        pending: dict[str, Any] = dict(session.get(self.session_key) or {})
        pending[provider] = entry
        session[self.session_key] = pending

    def take(self, provider: str) -> PendingFlow | None:
        """Remove and return the round trip in progress for `provider` (single use), or None."""
        pending: dict[str, Any] = dict(session.get(self.session_key) or {})
        if provider not in pending:
            return None
        entry = pending.pop(provider)
        if pending:
            session[self.session_key] = pending
        else:
            session.pop(self.session_key, None)
        if not isinstance(entry, dict):
            return None
        return PendingFlow(
            state=str(entry.get("state") or ""),
            verifier=str(entry.get("verifier") or ""),
            nonce=str(entry.get("nonce") or ""),
            context={name: value for name, value in entry.items() if name not in _SECRETS},
        )


def redirect_page(url: str, provider_name: str) -> str:
    """The page sending the browser on to the provider's authorize `url` (a meta refresh and a link)."""
    return render_template("oauth_redirect.html", url=url, provider_name=provider_name)

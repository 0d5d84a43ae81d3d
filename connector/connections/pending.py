"""The OAuth round trip's pending state, kept server-side (table oauth_pending) from the start to the callback.

`start` stores one entry per round trip: the SHA-256 of `state` (the look-up key), the SHA-256 of a random
id the web layer keeps in the browser's session (the binding to that browser), the provider, the purpose
("connect" or "signup"), the user and organization that started it, and the PKCE verifier and OpenID
Connect nonce sealed by the vault. `take` is the callback's check, before any call to the provider:

- no `state`, or a `state` no entry has → refused;
- an entry of another browser, another provider (OAuth mix-up) or another purpose → refused, and the
  entry is left as it is, so a bad callback never cancels the round trip the user has in progress;
- an entry already used (a replayed callback, a second tab) or older than PENDING_LIFETIME → refused;
- a provider that needs PKCE and an entry without a verifier → refused;
- otherwise the entry is marked used by one conditional UPDATE (of two racing callbacks, one wins).

Every refusal is a PendingError: nothing reached the token endpoint and nothing was stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connector.connections.connect import ConnectError
from connector.errors import NudgeError
from connector.storage import Store
from connector.storage.repositories import OAuthPendings
from connector.storage.tables import OAuthPending
from connector.vault.keyring import Binding, Vault

PENDING_LIFETIME = timedelta(minutes=10)
PURGE_AFTER = timedelta(days=1)
CONNECT, SIGNUP = "connect", "signup"
_FIELD = "oauth_pending"


class PendingError(ConnectError):
    """The callback matches no usable round trip in progress; nothing was exchanged or stored."""


@dataclass(frozen=True)
class PendingFlow:
    """One round trip in progress, as the callback gets it back."""

    provider: str
    purpose: str
    state: str
    verifier: str
    nonce: str = ""
    user_id: int | None = None
    org_id: int | None = None
    context: Mapping[str, Any] = field(default_factory=dict)


def digest(text: str) -> str:
    """SHA-256 hex of `text` (how states and browser ids are stored)."""
    return hashlib.sha256(text.encode()).hexdigest()


def _binding(provider: str, state_hash: str) -> Binding:
    return Binding(provider, 0, state_hash, _FIELD)


def start(store: Store, vault: Vault, browser: str, flow: PendingFlow, now: datetime) -> None:
    """Remember `flow` for the browser whose session holds the random id `browser`."""
    if not browser or not flow.state:
        raise ValueError("a pending OAuth round trip needs a browser id and a state")
    state_hash = digest(flow.state)
    sealed = vault.seal(
        json.dumps({"verifier": flow.verifier, "nonce": flow.nonce}), _binding(flow.provider, state_hash)
    )
    with store.unit_of_work() as uow:
        repository = OAuthPendings(uow.session)
        repository.purge(now - PURGE_AFTER)
        repository.add(
            OAuthPending(
                state_hash=state_hash,
                browser_hash=digest(browser),
                provider=flow.provider,
                purpose=flow.purpose,
                user_id=flow.user_id,
                organization_id=flow.org_id,
                secrets_sealed=sealed,
                context=dict(flow.context),
                created_at=now,
            )
        )
        uow.commit()


def take(
    store: Store,
    vault: Vault,
    browser: str,
    *,
    provider: str,
    purpose: str,
    provider_name: str,
    state: str,
    now: datetime,
    require_verifier: bool,
) -> PendingFlow:
    """The round trip `state` names, used up; PendingError (entry untouched) when the callback may not use it."""
    name = provider_name
    not_here = (
        f"this browser has no {name} {_what(purpose)} in progress with this state (it may have expired, or "
        "was started in another browser). Nothing was connected; start again"
    )
    if not state or not browser:
        raise PendingError(not_here)
    with store.unit_of_work() as uow:
        repository = OAuthPendings(uow.session)
        entry = repository.by_state_hash(digest(state))
        if entry is None:
            raise PendingError(not_here)
        if not hmac.compare_digest(entry.browser_hash, digest(browser)):
            raise PendingError(
                f"the {name} answer did not match this browser session (state mismatch). Nothing was connected; "
                "start again"
            )
        if entry.provider != provider or entry.purpose != purpose:
            raise PendingError(
                f"this answer does not belong to a {name} {_what(purpose)} (OAuth mix-up refused). "
                "Nothing was connected; start again"
            )
        if entry.used_at is not None:
            raise PendingError(f"this {name} answer was already used. Nothing more was connected")
        if now - entry.created_at > PENDING_LIFETIME:
            minutes = int(PENDING_LIFETIME.total_seconds() // 60)
            raise PendingError(f"the {name} {_what(purpose)} expired after {minutes} minutes. Start again")
        secrets = _open(vault, entry)
        if require_verifier and not secrets.get("verifier"):
            raise PendingError(f"the {name} {_what(purpose)} has no PKCE verifier. Nothing was connected; start again")
        if not repository.mark_used(entry.id, now):
            raise PendingError(f"this {name} answer was already used. Nothing more was connected")
        uow.commit()
        return PendingFlow(
            provider=entry.provider,
            purpose=entry.purpose,
            state=state,
            verifier=str(secrets.get("verifier") or ""),
            nonce=str(secrets.get("nonce") or ""),
            user_id=entry.user_id,
            org_id=entry.organization_id,
            context=dict(entry.context or {}),
        )


def _what(purpose: str) -> str:
    return "connection" if purpose == CONNECT else "sign-in"


def _open(vault: Vault, entry: OAuthPending) -> dict[str, Any]:
    """The sealed verifier and nonce; an entry that no longer opens (key retired) counts as expired."""
    try:
        data = json.loads(vault.open(entry.secrets_sealed, _binding(entry.provider, entry.state_hash)))
    except (NudgeError, ValueError):
        raise PendingError("this sign-in round trip can no longer be read (expired). Start again") from None
    return data if isinstance(data, dict) else {}

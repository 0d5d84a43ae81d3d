"""Connecting accounting files: OAuth start and callback, reconnect, disconnect (provider-neutral).

The web layer keeps `state` and the PKCE verifier in the signed session; these services do the rest.

Careful by default (issue 12): a newly connected file starts in review (`Connection.chasing = "review"`:
it syncs and plans, nothing goes out until a person approves the first plan, see connector.review), with
its holiday calendar and time zone taken from the ledger's own country and zone when the provider names
them. One ledger, one chaser: a file another organization already chases is stored "managed_elsewhere"
(it syncs, so its owner sees its invoices and an approved access request starts its review at once, but
it never plans or acts) and `ConnectedFile.managed_by` names that organization (connector.connections.ownership).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select

from connector.connections.token_source import StoredTokenSource
from connector.domain.calendar import is_time_zone
from connector.domain.model import ConnectionInfo, ConnectionStatus
from connector.errors import AuthError, NudgeError, ProviderError
from connector.ports import AccountingAdapter, ProviderSettings, ProviderSpec, TokenSet
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Connection, Invoice, Organization
from connector.vault.keyring import Vault
from connector.vault.tokens import open_tokens, seal_tokens


class ConnectError(NudgeError):
    """The OAuth callback cannot be completed (denied, state mismatch, missing company id...)."""


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the user, and what to remember in their session until the callback."""

    url: str
    state: str
    code_verifier: str


def begin_connect(spec: ProviderSpec, settings: ProviderSettings) -> AuthorizationRequest:
    """A fresh `state` (and PKCE verifier where the provider supports it) and the authorize URL."""
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64) if spec.supports_pkce else ""
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=") if verifier else ""
    )
    return AuthorizationRequest(spec.authorization_url(settings, state, challenge), state, verifier)


@dataclass(frozen=True)
class ConnectedFile:
    """One accounting file a connect flow stored, and whether it was new."""

    connection_id: int
    name: str
    created: bool
    kept_disconnected: bool = False  # disconnected earlier and not chosen again: left disconnected, no tokens
    chasing: str = "review"  # review | active | managed_elsewhere (Connection.chasing)
    managed_by: str = ""  # the organization that already chases this ledger (chasing "managed_elsewhere")

    @property
    def message(self) -> str:
        """One sentence for the user about what happens next with this file."""
        if self.kept_disconnected:
            return f"{self.name} stays disconnected (disconnected earlier and not chosen to reconnect)"
        if self.chasing == MANAGED_ELSEWHERE:
            return (
                f"{self.name} is already managed by {self.managed_by or 'another organization'}; "
                "ask them for access (nothing is sent from here meanwhile)"
            )
        if self.chasing == REVIEW:
            return f"{self.name} is connected: nothing goes out until you approve its first plan (nudge review)"
        return f"{self.name} is connected"


REVIEW = "review"
ACTIVE = "active"
MANAGED_ELSEWHERE = "managed_elsewhere"
# Holiday country: ISO 3166-1 alpha-2; subdivision: the holidays library's codes (letters, digits).
_COUNTRY_LENGTH = 2
_SUBDIV_MAX = 10


def complete_connect(
    store: Store,
    vault: Vault,
    spec: ProviderSpec,
    settings: ProviderSettings,
    org_id: int,
    params: Mapping[str, str],
    expected_state: str,
    code_verifier: str,
    now: datetime,
    *,
    actor: str = "",
    reactivate: Collection[str] = frozenset(),
) -> list[ConnectedFile]:
    """Finish the OAuth callback: check state, exchange the code, store one connection per file.

    Reconnecting a file already connected to this organization updates that connection (new tokens,
    status active) instead of creating a duplicate. A file the user disconnected stays disconnected
    unless its tenant id is in `reactivate` (see `store_connections`).
    """
    if params.get("error"):
        reason = params.get("error_description") or params["error"]
        raise ConnectError(f"{spec.display_name} did not grant access ({reason}); nothing was connected")
    state = params.get("state", "")
    if not expected_state or not hmac.compare_digest(state.encode(), expected_state.encode()):
        raise ConnectError(
            f"the {spec.display_name} sign-in did not match this browser session (state mismatch); start again"
        )
    if not params.get("code"):
        raise ConnectError(f"{spec.display_name} returned no authorization code; start again")
    try:
        tokens = spec.exchange_code(settings, params, code_verifier, now)
        files = spec.connect(settings, params, tokens)
    except ProviderError as exc:
        raise ConnectError(f"connecting to {spec.display_name} failed: {exc.user_message}") from exc
    if not files:
        raise ConnectError(f"{spec.display_name} named no company or organisation to connect")
    with store.unit_of_work() as uow:
        results = store_connections(
            uow, vault, spec.key, org_id, files, tokens, now, actor=actor, reactivate=reactivate
        )
        uow.commit()
    return results


def store_connections(
    uow: UnitOfWork,
    vault: Vault,
    provider: str,
    org_id: int,
    files: list[ConnectionInfo],
    tokens: TokenSet,
    now: datetime,
    *,
    actor: str = "",
    reactivate: Collection[str] = frozenset(),
) -> list[ConnectedFile]:
    """One active connection per consented file, tokens sealed, due for a first sync now (in `uow`).

    A file already connected to this organization is updated (new tokens, active again), never duplicated.
    A file the user DISCONNECTED stays disconnected — no tokens stored, not chased — unless its tenant id
    is in `reactivate`: a consent screen may list (or pre-tick) it, so coming back in a connect is not
    the user's choice; the caller passes the tenants the user explicitly picked to reconnect (the web's
    "Reconnect" of that connection, or a picker). It is reported with `kept_disconnected=True`.
    """
    results: list[ConnectedFile] = []
    for info in files:
        connection = uow.connections.by_tenant(org_id, provider, info.tenant_id)
        created = connection is None
        if connection is not None and not _may_reactivate(connection, info, reactivate):
            uow.activities.record(
                org_id,
                "connection.kept_disconnected",
                connection.name,
                connection_id=connection.id,
                actor=actor,
                detail={"reason": "disconnected earlier and not chosen to reconnect"},
                at=now,
            )
            results.append(ConnectedFile(connection.id, connection.name, False, kept_disconnected=True))
            continue
        if connection is None:
            connection = uow.connections.add(
                org_id, provider, info.tenant_id, info.name, next_run_at=now, chasing=REVIEW
            )
            manager = managing_connection(uow, provider, info.tenant_id, exclude_org_id=org_id)
            if manager is not None:  # one ledger, one chaser: the other organization keeps chasing it
                connection.chasing = MANAGED_ELSEWHERE
                connection.managed_by_organization_id = manager.organization_id
        else:
            _settle_chaser(uow, connection, provider, info.tenant_id, org_id)
        connection.name = info.name or connection.name
        if info.extra.get("home_currency"):
            connection.home_currency = info.extra["home_currency"]
        _apply_ledger_locale(uow, connection, info, now, actor)
        connection.status = ConnectionStatus.ACTIVE.value
        connection.last_error = ""
        connection.failures = 0
        connection.next_run_at = now
        seal_tokens(vault, connection, tokens)
        uow.activities.record(
            org_id,
            "connection.connected" if created else "connection.reconnected",
            connection.name,
            connection_id=connection.id,
            actor=actor,
            at=now,
        )
        if connection.chasing == MANAGED_ELSEWHERE:
            uow.activities.record(
                org_id,
                "connection.managed_elsewhere",
                connection.name,
                connection_id=connection.id,
                actor=actor,
                detail={"managed_by": _organization_name(uow, connection.managed_by_organization_id)},
                at=now,
            )
        results.append(
            ConnectedFile(
                connection.id,
                connection.name,
                created,
                chasing=connection.chasing,
                managed_by=_organization_name(uow, connection.managed_by_organization_id)
                if connection.chasing == MANAGED_ELSEWHERE
                else "",
            )
        )
    return results


def _settle_chaser(uow: UnitOfWork, connection: Connection, provider: str, tenant_id: str, org_id: int) -> None:
    """On a reconnect, who chases the ledger now: one managed elsewhere whose manager let go (disconnected) starts
    with a review; one that chased it but was disconnected while another organization took over is now managed
    elsewhere (never a second chaser)."""
    manager = managing_connection(uow, provider, tenant_id, exclude_org_id=org_id)
    if connection.chasing == MANAGED_ELSEWHERE and manager is None:
        connection.chasing = REVIEW
        connection.managed_by_organization_id = None
        connection.chasing_since = None
    elif connection.chasing in (REVIEW, ACTIVE) and manager is not None:
        connection.chasing = MANAGED_ELSEWHERE
        connection.managed_by_organization_id = manager.organization_id
        connection.chasing_since = None


def managing_connection(
    uow: UnitOfWork, provider: str, tenant_id: str, *, exclude_org_id: int | None = None
) -> Connection | None:
    """The connection (of another organization than `exclude_org_id`) that chases this ledger: not disconnected
    (one waiting to be reconnected still chases it) and chasing "review" or "active"; the oldest when there
    are several (pre-issue-12 data)."""
    candidates = [
        other
        for other in uow.connections.with_tenant(provider, tenant_id)
        if other.organization_id != exclude_org_id
        and other.status != ConnectionStatus.DISCONNECTED.value
        and other.chasing in (REVIEW, ACTIVE)
    ]
    return min(candidates, key=lambda other: other.id, default=None)


def _organization_name(uow: UnitOfWork, org_id: int | None) -> str:
    """The organization's name, "" when unknown."""
    if org_id is None:
        return ""
    organization = uow.session.get(Organization, org_id)
    return organization.name if organization is not None else ""


def _apply_ledger_locale(
    uow: UnitOfWork, connection: Connection, info: ConnectionInfo, now: datetime, actor: str
) -> None:
    """Default the holiday calendar and time zone from the ledger's own country and zone (`info.extra`
    keys `country`, `subdivision`, `time_zone`) where the user has not set them ("UTC" counts as unset).

    The values come from the provider: one that does not validate is left out with an activity note.
    """
    extra = info.extra or {}
    ignored: dict[str, str] = {}
    country = str(extra.get("country") or "").strip().upper()
    subdivision = str(extra.get("subdivision") or "").strip().upper()
    time_zone = str(extra.get("time_zone") or "").strip()
    if country and not connection.holiday_country:
        if len(country) == _COUNTRY_LENGTH and country.isascii() and country.isalpha():
            connection.holiday_country = country
            if subdivision and not connection.holiday_subdiv:
                if len(subdivision) <= _SUBDIV_MAX and subdivision.isascii() and subdivision.isalnum():
                    connection.holiday_subdiv = subdivision
                else:
                    ignored["subdivision"] = subdivision[:40]
        else:
            ignored["country"] = country[:40]
    if time_zone and (not connection.time_zone or connection.time_zone == "UTC"):
        if is_time_zone(time_zone) and len(time_zone) <= 64:
            connection.time_zone = time_zone
        else:
            ignored["time_zone"] = time_zone[:80]
    if ignored:
        uow.activities.record(
            connection.organization_id,
            "connection.locale_ignored",
            connection.name,
            connection_id=connection.id,
            actor=actor,
            detail={"ignored": ignored, "reason": "not a valid country, subdivision or IANA time zone"},
            at=now,
        )


def _may_reactivate(connection: Connection, info: ConnectionInfo, reactivate: Collection[str]) -> bool:
    """Whether a connect may (re)activate an existing connection: not one the user disconnected, unless chosen."""
    return connection.status != ConnectionStatus.DISCONNECTED.value or info.tenant_id in reactivate


def disconnect(
    store: Store,
    vault: Vault,
    spec: ProviderSpec,
    settings: ProviderSettings,
    org_id: int,
    connection_id: int,
    now: datetime,
    *,
    actor: str = "",
) -> bool:
    """End Nudge's access at the provider (best effort when the grant is already dead), forget the tokens,
    mark the connection disconnected so no job runs for it.

    Providers with `disconnect_tenants` (Xero) end the access to this one file only (DELETE
    /connections/{id}) — revoking would cut every file of the provider user, other Nudge organizations'
    included — and skip even that while another live Nudge connection (any organization) uses the same
    file. Others (QuickBooks) revoke the grant unless another connection of this organization still uses it.
    """
    with store.unit_of_work() as uow:
        connection = uow.connections.get(org_id, connection_id)
        if connection is None:
            return False
        if _already_disconnected(connection):  # a second submit of the same intent: nothing more to do
            return True
        tokens = _try_open(vault, connection)
        active = connection.status == ConnectionStatus.ACTIVE.value
        kept = _still_used(uow, vault, spec, connection, tokens)
        tenant_id = connection.tenant_id
    if tokens is not None and active and not kept:
        tokens = _fresh_tokens(store, vault, spec, settings, connection_id, now, tokens)
    note = "" if tokens is None else _end_access(spec, settings, tenant_id, tokens, kept)
    with store.unit_of_work() as uow:
        connection = uow.connections.get(org_id, connection_id)
        if connection is None:
            return False
        if _already_disconnected(connection):  # a concurrent submit finished first: one activity
            return True
        connection.status = ConnectionStatus.DISCONNECTED.value
        connection.tokens_sealed = ""
        connection.next_run_at = None
        uow.activities.record(
            org_id,
            "connection.disconnected",
            connection.name,
            connection_id=connection.id,
            actor=actor,
            detail={"note": note} if note else {},
            at=now,
        )
        uow.commit()
        return True


def _already_disconnected(connection: Connection) -> bool:
    """Disconnected with no tokens left: disconnecting it again changes nothing (RS-09)."""
    return connection.status == ConnectionStatus.DISCONNECTED.value and not connection.tokens_sealed


def _still_used(
    uow: UnitOfWork, vault: Vault, spec: ProviderSpec, connection: Connection, tokens: TokenSet | None
) -> bool:
    """Whether ending the access at the provider would cut another live Nudge connection."""
    if tokens is None:
        return False
    if spec.disconnect_tenants is not None:
        return any(
            other.id != connection.id and other.status != ConnectionStatus.DISCONNECTED.value
            for other in uow.connections.with_tenant(connection.provider, connection.tenant_id)
        )
    others = [
        _try_open(vault, other)
        for other in uow.connections.for_organization(connection.organization_id)
        if other.id != connection.id and other.provider == connection.provider
    ]
    return any(other is not None and hmac.compare_digest(other.refresh_token, tokens.refresh_token) for other in others)


def _fresh_tokens(
    store: Store,
    vault: Vault,
    spec: ProviderSpec,
    settings: ProviderSettings,
    connection_id: int,
    now: datetime,
    stored: TokenSet,
) -> TokenSet:
    """The connection's tokens with a live access token (refreshed and stored when expired), else `stored`."""
    try:
        return StoredTokenSource(store, vault, spec, settings, connection_id, lambda: now).current()
    except NudgeError:
        return stored  # the grant is dead: the provider call below is best effort


def _end_access(spec: ProviderSpec, settings: ProviderSettings, tenant_id: str, tokens: TokenSet, kept: bool) -> str:
    """End Nudge's access to the file at the provider; a note for the activity log ("" when all went well)."""
    if kept:
        return f"access kept at {spec.display_name}: another Nudge connection still uses this file"
    try:
        if spec.disconnect_tenants is not None:
            spec.disconnect_tenants(settings, tokens, [tenant_id])
        else:
            spec.revoke(settings, tokens)
    except ProviderError as exc:
        return f"ending the access at {spec.display_name} failed ({exc.user_message}); it may already be gone"
    return ""


def disconnected_at_provider(store: Store, connection_id: int, now: datetime, reason: str) -> bool:
    """Mark a connection disconnected because the provider confirmed the file was disconnected there.

    Call it only after an API call proved it (ProviderDisconnected), never on a hint such as a
    marketplace redirect. The tokens are forgotten and no job runs for the connection afterwards;
    reconnecting it is the user's explicit choice (`reactivate`). False when it does not exist.
    """
    with store.unit_of_work() as uow:
        connection = uow.connections.by_id(connection_id)
        if connection is None:
            return False
        connection.status = ConnectionStatus.DISCONNECTED.value
        connection.tokens_sealed = ""
        connection.next_run_at = None
        connection.last_error = reason
        uow.activities.record(
            connection.organization_id,
            "connection.disconnected_at_provider",
            connection.name,
            connection_id=connection.id,
            detail={"reason": reason},
            at=now,
        )
        uow.commit()
        return True


def _try_open(vault: Vault, connection: Connection) -> TokenSet | None:
    """The connection's tokens, or None when it holds none (or they no longer open)."""
    if not connection.tokens_sealed:
        return None
    try:
        return open_tokens(vault, connection)
    except NudgeError:
        return None


class ProviderCheck(StrEnum):
    """What asking the provider about a connection proved."""

    DISCONNECTED = "disconnected"  # an API call failed with an auth error: marked disconnected
    CONNECTED = "connected"  # the call succeeded: the connection stays active
    UNKNOWN = "unknown"  # the call failed otherwise (network, limit...): nothing changed
    NOT_ACTIVE = "not_active"  # not an active connection: nothing to check, nothing changed


@dataclass(frozen=True)
class DisconnectCheck:
    """The outcome of `check_disconnected_at_provider`, with a sentence for the user where there is one."""

    outcome: ProviderCheck
    message: str = ""


def check_disconnected_at_provider(
    store: Store,
    vault: Vault,
    spec: ProviderSpec,
    settings: ProviderSettings,
    connection_id: int,
    now: datetime,
) -> DisconnectCheck:
    """Ask the provider (one read call) whether the file was disconnected there; mark it only when proven.

    For a hint such as the marketplace's Disconnect URL. An auth error on the call (the grant refused,
    or the provider's ProviderDisconnected) proves it and the connection is marked disconnected; nothing
    is revoked. A call that succeeds leaves the connection active; any other failure changes nothing.
    """
    with store.unit_of_work() as uow:
        connection = uow.connections.by_id(connection_id)
        if connection is None or connection.status != ConnectionStatus.ACTIVE.value:
            return DisconnectCheck(ProviderCheck.NOT_ACTIVE)
        tenant_id, home_currency = connection.tenant_id, connection.home_currency
        probe = uow.session.scalars(
            select(Invoice.external_id).where(Invoice.connection_id == connection_id).limit(1)
        ).first()
    if home_currency:
        settings = replace(settings, options={**settings.options, "home_currency": home_currency})
    tokens = StoredTokenSource(store, vault, spec, settings, connection_id, lambda: now)
    try:
        _probe(spec.adapter(tenant_id, tokens, settings), probe)
    except AuthError as exc:
        reason = f"disconnected at {spec.display_name} ({exc.user_message})"
        disconnected_at_provider(store, connection_id, now, reason)
        return DisconnectCheck(ProviderCheck.DISCONNECTED, reason)
    except NudgeError as exc:
        return DisconnectCheck(ProviderCheck.UNKNOWN, exc.user_message)
    return DisconnectCheck(ProviderCheck.CONNECTED)


def _probe(adapter: AccountingAdapter, invoice_id: str | None) -> None:
    """One cheap read: a synced invoice by id, else the first page of open invoices (stored nowhere)."""
    if invoice_id is not None:
        adapter.get_invoice(invoice_id)
        return
    pages = adapter.changed_invoices(None)
    try:
        next(iter(pages), None)
    finally:
        close = getattr(pages, "close", None)
        if callable(close):
            close()

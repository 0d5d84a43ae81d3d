"""Connecting accounting files (generic over the registry): connect, OAuth callback, reconnect, disconnect,
and the app-marketplace "launch" and "disconnect" URLs.

The OAuth round trip's pending entry (`state`, the PKCE verifier, the organization and the user who
started it) is kept server-side, bound to this browser, single use and valid 10 minutes (`web.oauth_flow`).
The callback (one path per provider, against OAuth mix-up) takes that entry before anything reaches the
provider, re-checks that the signed-in user is still that user and still may connect files to that
organization, and hands the rest to `connector.connections.connect`.
Error pages name what went wrong; they never show the code or a token.
"Connect" answers with `web.oauth_flow.redirect_page`, not a 303 (the CSP's `form-action 'self'`).
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required  # type: ignore[import-untyped, unused-ignore]

from connector.accounts.signup import supports_signup
from connector.connections import pending
from connector.connections.connect import (
    MANAGED_ELSEWHERE,
    REVIEW,
    ConnectedFile,
    ConnectError,
    DisconnectCheck,
    ProviderCheck,
    begin_connect,
    check_disconnected_at_provider,
    complete_connect,
    disconnect,
)
from connector.domain.model import ConnectionStatus, Role
from connector.errors import NudgeError
from connector.ports import ProviderSettings, ProviderSpec
from web import oauth_flow
from web.access import require_role
from web.extensions import login_manager, services
from web.oauth_flow import PendingError, PendingFlow, redirect_page
from web.wording import sentence

bp = Blueprint("connections", __name__)
log = logging.getLogger(__name__)

CONNECT_ROLES = (Role.OWNER, Role.ACCOUNTANT)


def _provider(key: str) -> tuple[ProviderSpec, ProviderSettings]:
    """The configured provider `key`, else 404 (unknown and unconfigured look the same)."""
    registry = services().registry
    if key not in registry:
        abort(404)
    return registry.spec(key), registry.settings(key)


def _actor() -> str:
    return f"user:{current_user.user_id}"


def connected_message(file: ConnectedFile) -> str:
    """What the user reads after connecting one file: connected, and what happens next (review, managed elsewhere)."""
    if file.kept_disconnected:
        return f"{file.name} stays disconnected: use its Reconnect button to chase it again"
    done = f"{'Connected' if file.created else 'Reconnected'} {file.name}"
    if file.chasing == MANAGED_ELSEWHERE:
        manager = file.managed_by or "another Nudge organization"
        return (
            f"{done}, but {manager} already chases this ledger in Nudge, so nothing will be sent from here. "
            f"Ask {manager} for access from the Team page."
        )
    if file.chasing == REVIEW:
        # Read in the browser (often straight from an app store): the review is in the Inbox, not a command.
        full_stop = "" if done.endswith(".") else "."  # "Kowhai Catering Co." ends its own sentence
        return (
            f"{done}{full_stop} Its invoices are syncing; nothing is sent or written to the ledger until you have "
            "reviewed and approved its first plan in the Inbox."
        )
    return done


def _failure(title: str, message: str, status: int = 400) -> ResponseReturnValue:
    return render_template("connections/error.html", title=title, message=message), status


def _start(org_id: int, key: str, reconnect_tenant: str = "") -> ResponseReturnValue:
    """Remember a fresh state (and PKCE verifier) for this org and user, then send the browser to the provider.

    `reconnect_tenant` is the ledger the user chose to reconnect: only that one may come back from disconnected.
    """
    spec, settings = _provider(key)
    try:
        authorization = begin_connect(spec, settings)
    except NudgeError as exc:
        log.warning("could not start connecting %s: %s", key, exc.user_message)
        return _failure(f"Could not start connecting {spec.display_name}", exc.user_message, 502)
    oauth_flow.remember(
        PendingFlow(
            provider=key,
            purpose=pending.CONNECT,
            state=authorization.state,
            verifier=authorization.code_verifier,
            user_id=current_user.user_id,
            org_id=org_id,
            context={"reconnect_tenant": reconnect_tenant} if reconnect_tenant else {},
        )
    )
    return redirect_page(authorization.url, spec.display_name)


def _chosen_to_reconnect(flow: PendingFlow) -> frozenset[str]:
    """The ledger the user pressed Reconnect on, if this round trip began there."""
    tenant = flow.context.get("reconnect_tenant")
    return frozenset({tenant}) if isinstance(tenant, str) and tenant else frozenset()


def _role_in(org_id: int) -> Role | None:
    with services().store.unit_of_work() as uow:
        role = uow.memberships.role(current_user.user_id, org_id)
        if role is None or uow.organizations.get(org_id) is None:
            return None
        return Role(role)


@bp.get("/orgs/<int:org_id>/connect/<provider>")
@require_role(*CONNECT_ROLES)
def connect_page(org_id: int, provider: str) -> ResponseReturnValue:
    """A page with the "Connect <provider>" button (where the marketplace launch URL lands)."""
    spec, _settings = _provider(provider)
    return render_template("connections/connect.html", provider_key=spec.key, provider_name=spec.display_name)


@bp.post("/orgs/<int:org_id>/connect/<provider>")
@require_role(*CONNECT_ROLES)
def connect(org_id: int, provider: str) -> ResponseReturnValue:
    """Start the OAuth round trip to `provider` for this organization."""
    return _start(org_id, provider)


@bp.post("/orgs/<int:org_id>/connections/<int:connection_id>/reconnect")
@require_role(*CONNECT_ROLES)
def reconnect(org_id: int, connection_id: int) -> ResponseReturnValue:
    """Start the OAuth round trip again for this connection's provider (the callback updates the row)."""
    with services().store.unit_of_work() as uow:
        connection = uow.connections.get(org_id, connection_id)
        found = (connection.provider, connection.tenant_id) if connection is not None else None
    if found is None:
        abort(404)
    key, tenant = found
    return _start(org_id, key, reconnect_tenant=tenant)


@bp.get("/orgs/<int:org_id>/connections/<int:connection_id>/disconnect")
@require_role(Role.OWNER)
def disconnect_confirm(org_id: int, connection_id: int) -> ResponseReturnValue:
    """Ask before disconnecting: what it does, and a POST form (a GET never disconnects)."""
    with services().store.unit_of_work() as uow:
        connection = uow.connections.get(org_id, connection_id)
        found = (connection.provider, connection.name or connection.tenant_id) if connection is not None else None
    if found is None or found[0] not in services().registry:
        abort(404)
    key, name = found
    return render_template(
        "connections/disconnect_confirm.html",
        org_id=org_id,
        connection_id=connection_id,
        name=name,
        provider_name=services().registry.spec(key).display_name,
    )


@bp.post("/orgs/<int:org_id>/connections/<int:connection_id>/disconnect")
@require_role(Role.OWNER)
def disconnect_connection(org_id: int, connection_id: int) -> ResponseReturnValue:
    """Revoke the grant, forget the tokens and mark the connection disconnected (a second submit does nothing)."""
    with services().store.unit_of_work() as uow:
        connection = uow.connections.get(org_id, connection_id)
        found = (connection.provider, connection.name or connection.tenant_id) if connection is not None else None
        done = connection is not None and connection.status == ConnectionStatus.DISCONNECTED.value
    if found is None:
        abort(404)
    key, name = found
    if done:
        flash(f"{name} is already disconnected", "info")
        return redirect(url_for("home.organization", org_id=org_id), 303)
    spec, settings = _provider(key)
    now = services().clock.now()
    if not disconnect(services().store, services().vault, spec, settings, org_id, connection_id, now, actor=_actor()):
        abort(404)
    flash(f"Disconnected {name}", "info")
    return redirect(url_for("home.organization", org_id=org_id), 303)


@bp.get("/oauth/<provider>/callback")
def callback(provider: str) -> ResponseReturnValue:
    """The provider sends the browser back here with `code` and `state` (or `error`)."""
    spec, settings = _provider(provider)
    name = spec.display_name
    try:
        flow = oauth_flow.take(spec, pending.CONNECT)
    except PendingError as exc:
        log.info("%s callback refused: %s", provider, exc.user_message)
        return _failure(f"{name} was not connected", sentence(exc.user_message))
    if not current_user.is_authenticated or current_user.user_id != flow.user_id:
        return _failure(
            f"{name} connection not completed",
            f"You are no longer signed in as the user who started connecting {name}. "
            "Nothing was connected; sign in and start again.",
        )
    org_id = flow.org_id
    if not isinstance(org_id, int) or _role_in(org_id) not in CONNECT_ROLES:
        abort(404)
    try:
        files = complete_connect(
            services().store,
            services().vault,
            spec,
            settings,
            org_id,
            request.args.to_dict(),
            flow.state,
            flow.verifier,
            services().clock.now(),
            actor=_actor(),
            reactivate=_chosen_to_reconnect(flow),
        )
    except ConnectError as exc:
        log.info("%s connection for organization %s not completed: %s", provider, org_id, exc.user_message)
        return _failure(f"{name} was not connected", sentence(exc.user_message))
    except NudgeError as exc:
        log.warning("%s connection for organization %s failed: %s", provider, org_id, exc.user_message)
        return _failure(f"{name} was not connected", sentence(exc.user_message), 502)
    for file in files:
        flash(connected_message(file), "info")
    return redirect(url_for("home.organization", org_id=org_id), 303)


@bp.get("/launch/<provider>")
def launch(provider: str) -> ResponseReturnValue:
    """The marketplace's launch ("Get app now") URL.

    A visitor goes through "Sign in with <provider>" (one consent signs them up, or signs them in and lands
    them on their organization). A signed-in user lands on the organization holding the connection to the file
    the store names (`realmId` from QuickBooks, `tenantId`), with a Reconnect offer when it was disconnected;
    else on the connect page of their first organization where they may connect.
    """
    spec, _settings = _provider(provider)
    if not current_user.is_authenticated:
        if supports_signup(spec):
            return redirect(url_for("signup.signup_page", provider=spec.key, launched="1"))
        return login_manager.unauthorized()
    tenant_id = request.args.get("realmId") or request.args.get("tenantId") or ""
    with services().store.unit_of_work() as uow:
        memberships = [(org.id, Role(role)) for org, role in uow.organizations.for_user(current_user.user_id)]
        member_of = {org_id for org_id, _role in memberships}
        held = [
            (connection.organization_id, connection.id, connection.name or connection.tenant_id, connection.status)
            for connection in (uow.connections.with_tenant(spec.key, tenant_id) if tenant_id else [])
            if connection.organization_id in member_of
        ]
    if not memberships:
        return redirect(url_for("home.index"))
    if held:
        org_id, _connection_id, name, status = held[0]
        if status == ConnectionStatus.DISCONNECTED.value:
            flash(f"{name} is disconnected: use its Reconnect button to connect it again.", "info")
        return redirect(url_for("home.organization", org_id=org_id))
    for org_id, role in memberships:
        if role in CONNECT_ROLES:
            return redirect(url_for("connections.connect_page", org_id=org_id, provider=spec.key))
    flash(f"Ask an owner or accountant of your organization to connect {spec.display_name}.", "info")
    return redirect(url_for("home.organization", org_id=memberships[0][0]))


@bp.get("/marketplace/<provider>/disconnected")
def marketplace_disconnected(provider: str) -> ResponseReturnValue:
    """The marketplace's disconnect URL: a page that changes nothing, with a POST form to check with the provider.

    QuickBooks passes `realmId` (Xero-style `tenantId` is accepted too). The link alone proves nothing
    (anyone can send it, and SameSite=Lax sends the cookie along): only the POST acts, and only after an
    API call shows that the provider no longer accepts Nudge's access.
    """
    spec, _settings = _provider(provider)
    tenant_id = request.args.get("realmId") or request.args.get("tenantId") or ""
    return _marketplace_page(spec, tenant_id, _marketplace_targets(spec, tenant_id), checked=None)


@bp.post("/marketplace/<provider>/disconnected")
@login_required
def marketplace_disconnected_check(provider: str) -> ResponseReturnValue:
    """Check each of the user's (owned) connections to that file with the provider; mark only proven disconnects.

    Never revokes: the provider-side disconnect already ended the grant, and when the check shows the
    grant still works the connection stays active and the page says so.
    """
    spec, settings = _provider(provider)
    tenant_id = request.form.get("tenant_id", "")
    store, vault, now = services().store, services().vault, services().clock.now()
    checked: list[tuple[str, DisconnectCheck]] = []
    for _org_id, connection_id, name in _marketplace_targets(spec, tenant_id):
        result = check_disconnected_at_provider(store, vault, spec, settings, connection_id, now)
        log.info("%s marketplace disconnect of connection %s checked: %s", provider, connection_id, result.outcome)
        checked.append((name, result))
    return _marketplace_page(spec, tenant_id, [], checked=checked)


def _marketplace_targets(spec: ProviderSpec, tenant_id: str) -> list[tuple[int, int, str]]:
    """(org id, connection id, name) of the signed-in user's active connections to that file, where they own the org."""
    if not tenant_id or not current_user.is_authenticated:
        return []
    with services().store.unit_of_work() as uow:
        return [
            (org.id, connection.id, connection.name or connection.tenant_id)
            for org, role in uow.organizations.for_user(current_user.user_id)
            if Role(role) is Role.OWNER
            for connection in uow.connections.for_organization(org.id)
            if connection.provider == spec.key
            and connection.tenant_id == tenant_id
            and connection.status == ConnectionStatus.ACTIVE.value
        ]


def _marketplace_page(
    spec: ProviderSpec,
    tenant_id: str,
    targets: list[tuple[int, int, str]],
    checked: list[tuple[str, DisconnectCheck]] | None,
) -> ResponseReturnValue:
    reconnect_org: int | None = None
    if current_user.is_authenticated:
        with services().store.unit_of_work() as uow:
            connectable = [
                org.id for org, role in uow.organizations.for_user(current_user.user_id) if Role(role) in CONNECT_ROLES
            ]
        reconnect_org = connectable[0] if connectable else None
    results = checked or []
    return render_template(
        "connections/marketplace_disconnected.html",
        provider_key=spec.key,
        provider_name=spec.display_name,
        tenant_id=tenant_id,
        targets=[name for _org, _id, name in targets],
        checked=checked is not None,
        marked=[name for name, result in results if result.outcome is ProviderCheck.DISCONNECTED],
        still_connected=[name for name, result in results if result.outcome is ProviderCheck.CONNECTED],
        unknown=[(name, result.message) for name, result in results if result.outcome is ProviderCheck.UNKNOWN],
        reconnect_org=reconnect_org,
    )

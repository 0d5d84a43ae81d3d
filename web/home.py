"""The signed-in home: which organization to show, and its dashboard of connections ("clients")."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, g, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required  # type: ignore[import-untyped, unused-ignore]

from connector.domain.model import ConnectionStatus, Role
from web.extensions import services

bp = Blueprint("home", __name__)


@dataclass(frozen=True, slots=True)
class ConnectionRow:
    """One connection as the dashboard lists it (no tokens, no tenant secrets)."""

    id: int
    provider: str
    name: str
    status: str
    provider_key: str = ""
    last_error: str = ""
    chasing: str = "active"
    managed_by: str = ""

    @property
    def chasing_words(self) -> str:
        """Who chases this ledger, in words: waiting for the first plan's review, or another organization."""
        if self.chasing == "review":
            return "Waiting for your review: nothing goes out until its first plan is approved"
        if self.chasing == "managed_elsewhere":
            return f"Chased by {self.managed_by or 'another Nudge organization'}: nothing is sent from here"
        return ""

    @property
    def needs_reconnect(self) -> bool:
        """Shown with a "Reconnect" button: the grant is dead or the file was disconnected."""
        return self.status in (ConnectionStatus.NEEDS_REAUTH.value, ConnectionStatus.DISCONNECTED.value)


def provider_label(key: str) -> str:
    """The provider's display name from the registry, else its key (e.g. a provider no longer configured)."""
    registry = services().registry
    return registry.spec(key).display_name if key in registry else key


@bp.get("/")
@login_required
def index() -> ResponseReturnValue:
    """Send the user to their first organization, or explain that they have none."""
    with services().store.unit_of_work() as uow:
        memberships = uow.organizations.for_user(current_user.user_id)
        first = memberships[0][0].id if memberships else None
    if first is None:
        return render_template("home/no_org.html")
    return redirect(url_for("home.organization", org_id=first))


@bp.get("/orgs/<int:org_id>/")
def organization(org_id: int) -> ResponseReturnValue:
    """The organization's dashboard (membership already checked by web.access)."""
    registry = services().registry
    keys = registry.keys()  # the configured providers, sorted
    with services().store.unit_of_work() as uow:
        # A member limited to some clients sees only those (web.access left their scope in g.member_scope).
        rows = [c for c in uow.connections.for_organization(g.organization.id) if g.member_scope.sees(c.id)]
        managers = {c.managed_by_organization_id for c in rows if c.managed_by_organization_id}
        names = {org_id: org.name for org_id in managers if (org := uow.organizations.get(org_id)) is not None}
        connections = [
            ConnectionRow(
                id=c.id,
                provider=provider_label(c.provider),
                name=c.name or c.tenant_id,
                status=c.status,
                provider_key=c.provider,
                last_error=c.last_error or "",
                chasing=c.chasing,
                managed_by=names.get(c.managed_by_organization_id or 0, ""),
            )
            for c in rows
        ]
        others = [(org.id, org.name) for org, _role in uow.organizations.for_user(current_user.user_id)]
    return render_template(
        "home/organization.html",
        connections=connections,
        organizations=others,
        providers=[(key, registry.spec(key).display_name) for key in keys],
        configured=set(keys),
        can_connect=g.role in (Role.OWNER, Role.ACCOUNTANT),
        can_disconnect=g.role is Role.OWNER,
    )

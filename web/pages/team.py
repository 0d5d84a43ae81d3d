"""The team screen: the organization's members and roles, and the signed-in member's personal API tokens.

- `GET /orgs/<org>/team`: members (`connector.accounts.members.members_of`) with their role and, for a member
  limited to some clients, which; the signed-in member's tokens (`connector.accounts.tokens.for_member`).
- `POST .../team/members/<member_id>`: an owner changes a member's role and client limit (`update_member`);
- `POST .../team/members/<member_id>/remove`: an owner removes a member (`remove_member`; asks first). The
  last owner can be neither demoted nor removed: the flash says so.
- `POST .../team/tokens`: any member creates a token for this organization, with a role no higher than theirs;
  the answer shows its secret this once, with a Copy button (`web/static/pages/team.js`).
- `POST .../team/tokens/<token_id>/revoke`: revoke one of your tokens (asks first).

Invitations come with sign-up by invitation (another issue).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user  # type: ignore[import-untyped, unused-ignore]

from connector.accounts import members, tokens
from connector.accounts.members import RANK, MemberView
from connector.accounts.tokens import CreatedToken
from connector.domain.model import Role
from connector.errors import ChangeRefused, InvalidInput, NotPermitted, UnknownRecord
from connector.receivables.common import visible_connections
from web.access import require_role
from web.extensions import services

bp = Blueprint("team_page", __name__)

ROLE_WORDS = {
    Role.OWNER: "Owner: everything, including members and disconnecting clients",
    Role.ACCOUNTANT: "Accountant: works the clients (settings, approvals, tasks)",
    Role.VIEWER: "Viewer: looks, changes nothing",
}
# A form sent back with its errors is the page itself (200): browsers log any 4xx page as a failed load.
FORM_ERRORS = 200
CLIENTS_MAX = 1000  # client ids one form may send


def _actor() -> str:
    return str(current_user.email)


def _visible() -> frozenset[int] | None:
    ids: frozenset[int] | None = g.member_scope.visible_connection_ids()
    return ids


def _render(
    org_id: int,
    *,
    created: CreatedToken | None = None,
    token_error: str = "",
    token_name: str = "",
    token_role: str = "",
    status: int = 200,
) -> ResponseReturnValue:
    visible = _visible()
    with services().store.unit_of_work() as uow:
        people = members.members_of(uow, org_id)
        mine = tokens.for_member(uow, current_user.user_id, org_id)
        clients = [(c.id, c.name or c.tenant_id) for c in visible_connections(uow, org_id, visible)]
    names = dict(clients)
    my_role: Role = g.member_scope.role
    return (
        render_template(
            "team/index.html",
            people=people,
            client_names=names,
            clients=clients,
            visible=visible,
            tokens=mine,
            created=created,
            is_owner=g.role is Role.OWNER,
            me=current_user.user_id,
            owners=sum(1 for person in people if person.role is Role.OWNER),
            roles=[(role.value, words) for role, words in ROLE_WORDS.items()],
            token_roles=[
                role.value for role in (Role.OWNER, Role.ACCOUNTANT, Role.VIEWER) if RANK[role] <= RANK[my_role]
            ],
            token_error=token_error,
            token_name=token_name,
            token_role=token_role or Role.VIEWER.value,
        ),
        status,
    )


@bp.get("/orgs/<int:org_id>/team")
def index(org_id: int) -> ResponseReturnValue:
    """Members and roles; your API tokens."""
    return _render(org_id)


def _member_name(view: MemberView) -> str:
    return view.display_name or view.email


@bp.post("/orgs/<int:org_id>/team/members/<int:member_id>")
@require_role(Role.OWNER)
def update_member(org_id: int, member_id: int) -> ResponseReturnValue:
    """Change a member's role and which clients they see (owners only; the last owner stays an owner)."""
    role = request.form.get("role", "")
    limited = request.form.get("client_limited") == "on"
    raw_ids = request.form.getlist("connection_ids")[:CLIENTS_MAX]
    ids = [int(value) for value in raw_ids if value.isdigit() and len(value) <= 10]
    if len(ids) != len(raw_ids):
        flash("Those clients are not this organization's.", "error")
        return redirect(url_for("team_page.index", org_id=org_id) + f"#member-{member_id}", 303)
    if limited and not ids:
        flash("Tick the clients this member may see, or untick “Only some clients”.", "error")
        return redirect(url_for("team_page.index", org_id=org_id) + f"#member-{member_id}", 303)
    svc = services()
    try:
        with svc.store.unit_of_work() as uow:
            before = next((p for p in members.members_of(uow, org_id) if p.id == member_id), None)
            view = members.update_member(
                uow,
                organization_id=org_id,
                member_id=member_id,
                acting_user_id=current_user.user_id,
                now=svc.clock.now(),
                actor=_actor(),
                role=role or None,
                client_limited=limited,
                connection_ids=ids if limited else [],
            )
            uow.commit()
    except UnknownRecord:
        abort(404)
    except ChangeRefused as exc:
        flash(_sentence(exc.user_message), "error")
        return redirect(url_for("team_page.index", org_id=org_id) + f"#member-{member_id}", 303)
    flash(_member_change_words(before, view), "success" if before != view else "info")
    return redirect(url_for("team_page.index", org_id=org_id) + f"#member-{member_id}", 303)


def _member_change_words(before: MemberView | None, after: MemberView) -> str:
    name = _member_name(after)
    if before is not None and before.state() == after.state():
        return f"Nothing changed for {name}."
    parts = []
    if before is None or before.role is not after.role:
        parts.append(
            f"is now {'an' if after.role is Role.OWNER or after.role is Role.ACCOUNTANT else 'a'} {after.role.value}"
        )
    if before is None or (before.client_limited, before.connection_ids) != (after.client_limited, after.connection_ids):
        count = len(after.connection_ids)
        parts.append(
            f"sees only {count} client{'s' if count != 1 else ''}" if after.client_limited else "sees every client"
        )
    return f"{name} {' and '.join(parts)}."


@bp.post("/orgs/<int:org_id>/team/members/<int:member_id>/remove")
@require_role(Role.OWNER)
def remove_member(org_id: int, member_id: int) -> ResponseReturnValue:
    """Take a member out of the organization (their tokens stop working; their open tasks are unassigned)."""
    svc = services()
    try:
        with svc.store.unit_of_work() as uow:
            removed = members.remove_member(
                uow,
                organization_id=org_id,
                member_id=member_id,
                acting_user_id=current_user.user_id,
                now=svc.clock.now(),
                actor=_actor(),
            )
            uow.commit()
    except UnknownRecord:
        abort(404)
    except ChangeRefused as exc:
        flash(_sentence(exc.user_message), "error")
        return redirect(url_for("team_page.index", org_id=org_id), 303)
    if removed.user_id == current_user.user_id:
        flash(f"You left {g.organization.name}.", "info")
        return redirect(url_for("home.index"), 303)
    flash(
        f"Removed {_member_name(removed)}: they no longer see {g.organization.name}, "
        "and their API tokens stopped working.",
        "success",
    )
    return redirect(url_for("team_page.index", org_id=org_id), 303)


@bp.post("/orgs/<int:org_id>/team/tokens")
def create_token(org_id: int) -> ResponseReturnValue:
    """Create a personal API token for this organization: its secret is shown in this answer only."""
    name = request.form.get("name", "")
    role = request.form.get("role", "") or g.member_scope.role.value
    svc = services()
    try:
        with svc.store.unit_of_work() as uow:
            created = tokens.create(
                uow,
                user_id=current_user.user_id,
                organization_id=org_id,
                name=name,
                role=role,
                now=svc.clock.now(),
                actor=_actor(),
            )
            uow.commit()
    except (InvalidInput, NotPermitted) as exc:
        return _render(
            org_id,
            token_error=_sentence(exc.user_message),
            token_name=name[:200],
            token_role=role[:20],
            status=FORM_ERRORS,
        )
    return _render(org_id, created=created)


@bp.post("/orgs/<int:org_id>/team/tokens/<int:token_id>/revoke")
def revoke_token(org_id: int, token_id: int) -> ResponseReturnValue:
    """Revoke one of your tokens: it stops working at once."""
    svc = services()
    try:
        with svc.store.unit_of_work() as uow:
            view = tokens.revoke(
                uow,
                user_id=current_user.user_id,
                organization_id=org_id,
                token_id=token_id,
                now=svc.clock.now(),
                actor=_actor(),
            )
            uow.commit()
    except UnknownRecord:
        abort(404)
    flash(f"Revoked the token “{view.name}” ({view.prefix}…): it no longer works.", "success")
    return redirect(url_for("team_page.index", org_id=org_id) + "#tokens", 303)


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def role_words(role: Any) -> str:
    """A role in words, for the page."""
    return ROLE_WORDS.get(Role(role), str(role))

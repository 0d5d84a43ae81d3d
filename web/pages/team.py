"""The team screen: the organization's members and roles, and the signed-in member's personal API tokens.

- `GET /orgs/<org>/team`: members (`connector.accounts.members.members_of`) with their role and, for a member
  limited to some clients, which; the signed-in member's tokens (`connector.accounts.tokens.for_member`).
- `POST .../team/members/<member_id>`: an owner changes a member's role and client limit (`update_member`);
- `POST .../team/members/<member_id>/remove`: an owner removes a member (`remove_member`; asks first). The
  last owner can be neither demoted nor removed: the flash says so.
- `POST .../team/tokens`: any member creates a token for this organization, with a role no higher than theirs;
  the answer shows its secret this once, with a Copy button (`web/static/pages/team.js`).
- `POST .../team/tokens/<token_id>/revoke`: revoke one of your tokens (asks first).
- `POST .../team/invitations`: an owner (any role, any clients) or an accountant (accountants and viewers limited to
  clients the accountant sees) invites someone by email (`connector.accounts.invitations`); pending invitations are
  listed with resend (a new link) and revoke. The email goes out before anything is saved: if the mail server
  refuses it, nothing changes and the page says so.
- `GET/POST .../team/members/<member_id>/transfer`: an owner makes another member owner, after a confirmation
  page: hand over (the owner becomes an accountant) or add an owner (both stay owners).
- `POST .../team/clients/<connection_id>/request-access`: an owner asks the organization managing that client's
  ledger for access (`connector.accounts.access_requests`; its owners are emailed); that organization's owners
  approve or decline (`POST .../team/access-requests/<request_id>/approve|decline`), the requester is emailed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user  # type: ignore[import-untyped, unused-ignore]

from connector.accounts import access_requests, invitations, members, tokens
from connector.accounts.access_requests import MembershipRequestView
from connector.accounts.emails import AccountEmailError, send_account_email
from connector.accounts.invitations import IssuedInvitation
from connector.accounts.members import RANK, MemberView
from connector.accounts.tokens import CreatedToken
from connector.domain.model import Role
from connector.errors import ChangeRefused, InvalidInput, NotPermitted, UnknownRecord
from connector.receivables.common import visible_connections
from connector.storage import UnitOfWork
from web.access import require_role
from web.extensions import services
from web.wording import sentence

bp = Blueprint("team_page", __name__)

ROLE_WORDS = {
    Role.OWNER: "Owner: everything, including members and disconnecting clients",
    Role.ACCOUNTANT: "Accountant: works the clients (settings, approvals, tasks)",
    Role.VIEWER: "Viewer: looks, changes nothing",
}
# A form sent back with its errors is the page itself (200): browsers log any 4xx page as a failed load.
FORM_ERRORS = 200
CLIENTS_MAX = 1000  # client ids one form may send
T = TypeVar("T")


def _actor() -> str:
    return str(current_user.email)


def _visible() -> frozenset[int] | None:
    ids: frozenset[int] | None = g.member_scope.visible_connection_ids()
    return ids


class _BackToTeam(Exception):
    """A change the service refused: the team page again, at `anchor`, with the reason in a flash."""

    def __init__(self, org_id: int, anchor: str, message: str) -> None:
        super().__init__(message)
        self.org_id = org_id
        self.anchor = anchor
        self.message = message


@bp.errorhandler(_BackToTeam)
def _back_to_team(exc: _BackToTeam) -> ResponseReturnValue:
    flash(exc.message, "error")
    return redirect(url_for("team_page.index", org_id=exc.org_id) + exc.anchor, 303)


def _change(
    org_id: int,
    anchor: str,
    service: Callable[..., T],
    *,
    before_commit: Callable[[UnitOfWork, T], None] | None = None,
    **arguments: Any,
) -> T:
    """Run one of the account services as the signed-in member, in one unit of work.

    An id that is not this organization's is a 404; a refusal (the last owner, an invitation already
    accepted, a mail server that would not take the email sent in `before_commit`) goes back to the team
    page with the reason and saves nothing.
    """
    svc = services()
    try:
        with svc.store.unit_of_work() as uow:
            result = service(
                uow,
                organization_id=org_id,
                acting_user_id=current_user.user_id,
                now=svc.clock.now(),
                actor=_actor(),
                **arguments,
            )
            if before_commit is not None:
                before_commit(uow, result)
            uow.commit()
    except UnknownRecord:
        abort(404)
    except (ChangeRefused, AccountEmailError) as exc:
        raise _BackToTeam(org_id, anchor, sentence(exc.user_message)) from exc
    return result


def _render(
    org_id: int,
    *,
    created: CreatedToken | None = None,
    token_error: str = "",
    token_name: str = "",
    token_role: str = "",
    invite_error: str = "",
    invite: dict[str, Any] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    visible = _visible()
    is_owner = g.role is Role.OWNER
    can_invite = g.role in (Role.OWNER, Role.ACCOUNTANT)
    with services().store.unit_of_work() as uow:
        people = members.members_of(uow, org_id)
        mine = tokens.for_member(uow, current_user.user_id, org_id)
        clients = [(c.id, c.name or c.tenant_id) for c in visible_connections(uow, org_id, visible)]
        invited = invitations.pending(uow, org_id) if can_invite else []
        if not is_owner:  # an accountant sees (and resends, revokes) the invitations they sent
            invited = [view for view in invited if view.invited_by_user_id == current_user.user_id]
        to_decide = access_requests.to_decide(uow, org_id) if is_owner else []
        asked = access_requests.made_by(uow, org_id) if is_owner else []
        elsewhere = access_requests.managed_elsewhere(uow, org_id) if is_owner else []
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
            is_owner=is_owner,
            can_invite=can_invite,
            invitations=invited,
            now=services().clock.now(),
            invite_roles=[
                (role.value, words)
                for role, words in ROLE_WORDS.items()
                if is_owner or RANK[role] <= RANK[Role.ACCOUNTANT]
            ],
            invite=invite or {"email": "", "role": Role.VIEWER.value, "client_limited": not is_owner, "ids": []},
            invite_error=invite_error,
            access_to_decide=to_decide,
            access_asked=asked,
            managed_elsewhere=elsewhere,
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
    with services().store.unit_of_work() as uow:
        before = next((p for p in members.members_of(uow, org_id) if p.id == member_id), None)
    view = _change(
        org_id,
        f"#member-{member_id}",
        members.update_member,
        member_id=member_id,
        role=role or None,
        client_limited=limited,
        connection_ids=ids if limited else [],
    )
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
    removed = _change(org_id, "", members.remove_member, member_id=member_id)
    if removed.user_id == current_user.user_id:
        flash(f"You left {g.organization.name}.", "info")
        return redirect(url_for("home.index"), 303)
    flash(
        f"Removed {_member_name(removed)}: they no longer see {g.organization.name}, "
        "they were signed out everywhere, and their API tokens stopped working.",
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
            token_error=sentence(exc.user_message),
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


def _valid_for() -> timedelta:
    return timedelta(days=services().settings.web.invitation_valid_days)


def _external(endpoint: str, **values: Any) -> str:
    """An absolute link for an email: the install's public base URL, not the request's host."""
    return services().settings.web.base_url.rstrip("/") + url_for(endpoint, **values)


def _send_invitation(org_id: int, uow: UnitOfWork, issued: IssuedInvitation) -> None:
    """Email the invitation's link; called before the commit, so a refused email saves nothing."""
    client_names = {c.id: c.name or c.tenant_id for c in visible_connections(uow, org_id, None)}
    view = issued.invitation
    subject, text = invitations.invitation_email(
        view,
        _external("invitations.show", token=issued.token),
        [client_names[cid] for cid in view.connection_ids if cid in client_names],
    )
    send_account_email(
        services().account_mailer(),
        to=view.email,
        subject=subject,
        text=text,
        kind="invitation",
        key=f"{view.id}-{int(view.sent_at.timestamp())}",
    )


def _client_ids(values: list[str]) -> list[int] | None:
    raw = values[:CLIENTS_MAX]
    ids = [int(value) for value in raw if value.isdigit() and len(value) <= 10]
    return ids if len(ids) == len(raw) else None


@bp.post("/orgs/<int:org_id>/team/invitations")
@require_role(Role.OWNER, Role.ACCOUNTANT)
def invite(org_id: int) -> ResponseReturnValue:
    """Invite someone by email with a role (and maybe some clients); the link goes out by email."""
    email = request.form.get("email", "")[:400]
    role = request.form.get("role", "")[:20]
    limited = request.form.get("client_limited") == "on"
    ids = _client_ids(request.form.getlist("connection_ids"))
    form = {"email": email, "role": role, "client_limited": limited, "ids": ids or []}
    if ids is None:
        return _render(
            org_id, invite_error="Those clients are not this organization's.", invite=form, status=FORM_ERRORS
        )
    svc = services()
    try:
        with svc.store.unit_of_work() as uow:
            issued = invitations.invite(
                uow,
                organization_id=org_id,
                acting_user_id=current_user.user_id,
                email=email,
                role=role,
                client_limited=limited,
                connection_ids=ids if limited else [],
                now=svc.clock.now(),
                valid_for=_valid_for(),
                actor=_actor(),
            )
            _send_invitation(org_id, uow, issued)
            uow.commit()
    except (ChangeRefused, AccountEmailError) as exc:
        return _render(org_id, invite_error=sentence(exc.user_message), invite=form, status=FORM_ERRORS)
    view = issued.invitation
    flash(f"Invitation sent to {view.email}: the link works for {_valid_for().days} days.", "success")
    return redirect(url_for("team_page.index", org_id=org_id) + "#invitations", 303)


@bp.post("/orgs/<int:org_id>/team/invitations/<int:invitation_id>/resend")
@require_role(Role.OWNER, Role.ACCOUNTANT)
def resend_invitation(org_id: int, invitation_id: int) -> ResponseReturnValue:
    """Send a pending invitation again with a new link (the old one stops working)."""
    issued = _change(
        org_id,
        "#invitations",
        invitations.resend,
        invitation_id=invitation_id,
        valid_for=_valid_for(),
        before_commit=partial(_send_invitation, org_id),
    )
    flash(f"Invitation sent again to {issued.invitation.email} with a new link.", "success")
    return redirect(url_for("team_page.index", org_id=org_id) + "#invitations", 303)


@bp.post("/orgs/<int:org_id>/team/invitations/<int:invitation_id>/revoke")
@require_role(Role.OWNER, Role.ACCOUNTANT)
def revoke_invitation(org_id: int, invitation_id: int) -> ResponseReturnValue:
    """Withdraw a pending invitation: its link stops working."""
    view = _change(org_id, "#invitations", invitations.revoke, invitation_id=invitation_id)
    flash(f"Withdrew the invitation to {view.email}: its link no longer works.", "success")
    return redirect(url_for("team_page.index", org_id=org_id) + "#invitations", 303)


@bp.route("/orgs/<int:org_id>/team/members/<int:member_id>/transfer", methods=["GET", "POST"])
@require_role(Role.OWNER)
def transfer(org_id: int, member_id: int) -> ResponseReturnValue:
    """Make another member owner: GET asks (hand over, or add an owner); POST does it."""
    svc = services()
    with svc.store.unit_of_work() as uow:
        target = next((p for p in members.members_of(uow, org_id) if p.id == member_id), None)
    if target is None:
        abort(404)
    if request.method == "GET":
        if target.role is Role.OWNER or target.user_id == current_user.user_id:
            flash(f"{_member_name(target)} is an owner already.", "info")
            return redirect(url_for("team_page.index", org_id=org_id) + f"#member-{member_id}", 303)
        return render_template("team/transfer.html", target=target, name=_member_name(target))
    keep_owner = request.form.get("keep_owner") == "yes"
    _change(org_id, f"#member-{member_id}", members.transfer_ownership, member_id=member_id, keep_owner=keep_owner)
    if keep_owner:
        flash(f"{_member_name(target)} is now an owner too.", "success")
    else:
        flash(f"{_member_name(target)} is now an owner; you are an accountant.", "success")
    return redirect(url_for("team_page.index", org_id=org_id) + f"#member-{member_id}", 303)


def _email_owners(view: MembershipRequestView) -> bool:
    """Tell the managing organization's owners; False when the mail server refused (the request stands)."""
    with services().store.unit_of_work() as uow:
        owners = access_requests.owner_emails(uow, view.managing_organization_id)
    subject, text = access_requests.request_email(
        view, _external("team_page.index", org_id=view.managing_organization_id) + "#access-requests"
    )
    mailer = services().account_mailer()
    try:
        for address in owners:
            send_account_email(
                mailer, to=address, subject=subject, text=text, kind="access-request", key=f"{view.id}-{address}"
            )
    except AccountEmailError:
        return False
    return True


@bp.post("/orgs/<int:org_id>/team/clients/<int:connection_id>/request-access")
@require_role(Role.OWNER)
def request_access(org_id: int, connection_id: int) -> ResponseReturnValue:
    """Ask the organization that manages this client's ledger for access to it there."""
    outcome = _change(org_id, "#access-requests", access_requests.request_membership, connection_id=connection_id)
    view = outcome.request
    if not outcome.created:
        flash(f"You already asked {view.managing_organization} for {view.ledger}: they have not answered yet.", "info")
    elif _email_owners(view):
        flash(f"Asked {view.managing_organization} for access to {view.ledger}: you will get an email.", "success")
    else:
        flash(
            f"Asked {view.managing_organization} for access to {view.ledger}, but the email to their owners could "
            "not be sent: they will see it on their team page.",
            "error",
        )
    return redirect(url_for("team_page.index", org_id=org_id) + "#access-requests", 303)


@bp.post("/orgs/<int:org_id>/team/access-requests/<int:request_id>/approve")
@require_role(Role.OWNER)
def approve_access(org_id: int, request_id: int) -> ResponseReturnValue:
    """Approve: the requester becomes an accountant here, limited to that client."""
    return _decide_access(org_id, request_id, "approve")


@bp.post("/orgs/<int:org_id>/team/access-requests/<int:request_id>/decline")
@require_role(Role.OWNER)
def decline_access(org_id: int, request_id: int) -> ResponseReturnValue:
    """Decline: nothing changes but the record."""
    return _decide_access(org_id, request_id, "decline")


def _decide_access(org_id: int, request_id: int, decision: str) -> ResponseReturnValue:
    svc = services()
    outcome = _change(
        org_id, "#access-requests", access_requests.decide, request_id=request_id, approve=decision == "approve"
    )
    view = outcome.request
    if outcome.created:
        subject, text = access_requests.outcome_email(
            view, _external("home.organization", org_id=view.managing_organization_id)
        )
        try:
            send_account_email(
                svc.account_mailer(),
                to=view.requester_email,
                subject=subject,
                text=text,
                kind="access-decision",
                key=str(view.id),
            )
        except AccountEmailError:
            flash(f"The email to {view.requester_email} could not be sent; tell them yourself.", "error")
    if view.state == access_requests.APPROVED:
        flash(f"{view.requester_name} is now an accountant here who sees only {view.ledger}.", "success")
    else:
        flash(f"Declined {view.requester_name}'s request for {view.ledger}.", "info")
    return redirect(url_for("team_page.index", org_id=org_id) + "#access-requests", 303)


def role_words(role: Any) -> str:
    """A role in words, for the page."""
    return ROLE_WORDS.get(Role(role), str(role))

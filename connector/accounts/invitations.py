"""Invitations: a member asks someone, by email, to join the organization with a role (and maybe some clients).

Who may invite: an owner invites anyone with any role, limited to some clients or not. An accountant invites
accountants and viewers only, always limited to clients the accountant sees themselves (so nobody is let in
further than their inviter). Viewers invite nobody. Owners resend or revoke any pending invitation; an accountant
those they sent.

The link carries a 256-bit random token; only its SHA-256 is stored, so a changed (tampered) link names no
invitation. A link works once, until it expires (`web.invitation_valid_days`, 7 by default), and not after the
invitation is revoked; resending issues a new token and a new period (the older link stops working).

Accepting adds the membership to whichever signed-in account accepts: people have several addresses, so the
account's email may differ from the address the invitation was sent to (the page says so before the person
accepts). Every step is audit-logged (entity "invitation"; the new member as entity "member").
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from connector.accounts.members import RANK, scope
from connector.domain.model import Role
from connector.errors import InvalidInput, NotPermitted, NudgeError, UnknownRecord
from connector.library.audit import record
from connector.storage import UnitOfWork
from connector.storage.repositories import normalize_email
from connector.storage.tables import Connection, Invitation, Membership, MembershipClient, Organization, User

TOKEN_BYTES = 32
TOKEN_MAX = 200  # longer than any token we issue: refused before hashing
EMAIL_MAX = 320
CLIENTS_MAX = 1000

# Why a link does not work, in words for the person holding it.
UNKNOWN = "This invitation link is not valid. Check that you copied all of it, or ask for a new invitation."
REVOKED = "This invitation was withdrawn. Ask the organization's owner for a new one if you still need access."
USED = "This invitation was already used. Sign in to reach the organization, or ask for a new invitation."
EXPIRED = "This invitation has expired. Ask the person who invited you to send it again."


class InvitationError(NudgeError):
    """An invitation link cannot be used: unknown (or tampered with), revoked, already used or expired."""

    def __init__(self, user_message: str, reason: str) -> None:
        super().__init__(user_message)
        self.reason = reason  # unknown | revoked | used | expired | member


@dataclass(frozen=True, slots=True)
class InvitationView:
    """An invitation as the team page and the invitee see it (never the token)."""

    id: int
    organization_id: int
    organization_name: str
    email: str
    role: Role
    client_limited: bool
    connection_ids: tuple[int, ...]
    invited_by: str  # the inviter's name or email ("" when that account is gone)
    invited_by_user_id: int | None
    sent_at: datetime
    expires_at: datetime

    def state(self) -> dict[str, object]:
        """What the audit log records of it."""
        return {
            "email": self.email,
            "role": self.role.value,
            "client_limited": self.client_limited,
            "connection_ids": list(self.connection_ids),
            "expires_at": self.expires_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class IssuedInvitation:
    """An invitation and the token of its link (only ever in the email)."""

    invitation: InvitationView
    token: str


def hash_token(token: str) -> str:
    """The stored form of a link's token (SHA-256, hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _view(uow: UnitOfWork, row: Invitation) -> InvitationView:
    organization = uow.session.get(Organization, row.organization_id)
    inviter = uow.session.get(User, row.invited_by_user_id) if row.invited_by_user_id is not None else None
    return InvitationView(
        id=row.id,
        organization_id=row.organization_id,
        organization_name=organization.name if organization is not None else "",
        email=row.email,
        role=Role(row.role),
        client_limited=bool(row.client_limited),
        connection_ids=tuple(sorted(int(value) for value in row.connection_ids or [])),
        invited_by=(inviter.display_name or inviter.email) if inviter is not None else "",
        invited_by_user_id=row.invited_by_user_id,
        sent_at=row.sent_at,
        expires_at=row.expires_at,
    )


def _clean_email(email: object) -> str:
    if not isinstance(email, str) or len(email) > EMAIL_MAX:
        raise InvalidInput("enter the email address to invite", "email")
    try:
        address = normalize_email(email)
    except ValueError:
        raise InvalidInput("enter a valid email address, like name@example.com", "email") from None
    if any(ord(char) < 32 or ord(char) == 127 for char in address) or "." not in address.rpartition("@")[2]:
        raise InvalidInput("enter a valid email address, like name@example.com", "email")
    return address


def _checked_role(role: object) -> Role:
    try:
        return Role(str(role))
    except ValueError:
        raise InvalidInput("role must be one of owner, accountant, viewer", "role") from None


def _checked_clients(uow: UnitOfWork, organization_id: int, connection_ids: Sequence[int]) -> list[int]:
    wanted = sorted(set(connection_ids))
    if len(wanted) > CLIENTS_MAX:
        raise InvalidInput(f"choose at most {CLIENTS_MAX} clients", "connection_ids")
    known = set(
        uow.session.scalars(
            select(Connection.id).where(Connection.organization_id == organization_id, Connection.id.in_(wanted))
        )
    )
    if unknown := [value for value in wanted if value not in known]:
        raise InvalidInput(f"no such client in this organization: {unknown[0]}", "connection_ids")
    return wanted


def _require_inviter(
    uow: UnitOfWork, organization_id: int, acting_user_id: int, role: Role, limited: bool, clients: Sequence[int]
) -> None:
    acting = scope(uow, acting_user_id, organization_id)
    if acting is None:
        raise UnknownRecord("no such organization")
    if acting.role is Role.OWNER:
        return
    if acting.role is not Role.ACCOUNTANT:
        raise NotPermitted("only owners and accountants can invite people")
    if RANK[role] > RANK[Role.ACCOUNTANT]:
        raise NotPermitted("only an owner can invite an owner", "role")
    if not limited or not clients:
        raise NotPermitted("as an accountant you invite people to some clients only: choose them", "connection_ids")
    if not all(acting.sees(connection_id) for connection_id in clients):
        raise NotPermitted("you can only invite people to clients you see yourself", "connection_ids")


def _already_member(uow: UnitOfWork, organization_id: int, email: str) -> bool:
    found = uow.session.scalars(
        select(Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.organization_id == organization_id, User.email == email)
    ).first()
    return found is not None


def _pending_row(uow: UnitOfWork, organization_id: int, email: str, now: datetime) -> Invitation | None:
    return uow.session.scalars(
        select(Invitation).where(
            Invitation.organization_id == organization_id,
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
    ).first()


def invite(
    uow: UnitOfWork,
    *,
    organization_id: int,
    acting_user_id: int,
    email: str,
    role: Role | str,
    client_limited: bool = False,
    connection_ids: Sequence[int] = (),
    now: datetime,
    valid_for: timedelta,
    actor: str,
) -> IssuedInvitation:
    """Invite `email` (uncommitted; audit-logged); the token for the link is in the result only.

    Inviting an address that already has a pending invitation renews that one (new link, new role and clients).
    InvalidInput("email") for a bad address or one already a member; ("role"), ("connection_ids"),
    ("client_limited") for a bad role, clients, or a limited owner; NotPermitted for what the inviter may not do.
    """
    address = _clean_email(email)
    wanted_role = _checked_role(role)
    limited = bool(client_limited)
    clients = _checked_clients(uow, organization_id, connection_ids) if limited else []
    if limited and wanted_role is Role.OWNER:
        raise InvalidInput("an owner sees every client: choose another role to limit them", "client_limited")
    if limited and not clients:
        raise InvalidInput("tick the clients they may see, or untick “Only some clients”", "connection_ids")
    _require_inviter(uow, organization_id, acting_user_id, wanted_role, limited, clients)
    if _already_member(uow, organization_id, address):
        raise InvalidInput(f"{address} is already a member of this organization", "email")
    row = _pending_row(uow, organization_id, address, now)
    before = _view(uow, row).state() if row is not None else None
    if row is None:
        row = Invitation(organization_id=organization_id, email=address, created_at=now)
        uow.session.add(row)
    row.role = wanted_role.value
    row.client_limited = limited
    row.connection_ids = clients
    row.invited_by_user_id = acting_user_id
    return _send_link(
        uow, row, organization_id=organization_id, before=before, now=now, valid_for=valid_for, actor=actor
    )


def _send_link(
    uow: UnitOfWork,
    row: Invitation,
    *,
    organization_id: int,
    before: dict[str, object] | None,
    now: datetime,
    valid_for: timedelta,
    actor: str,
) -> IssuedInvitation:
    """A new single-use link for `row` (the old one stops working), valid from `now`; audit-logged."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    row.token_hash = hash_token(token)
    row.sent_at = now
    row.expires_at = now + valid_for
    uow.flush()
    view = _view(uow, row)
    record(
        uow,
        organization_id=organization_id,
        actor=actor,
        at=now,
        entity="invitation",
        entity_id=row.id,
        change="create" if before is None else "update",
        before=before,
        after=view.state(),
    )
    return IssuedInvitation(invitation=view, token=token)


def _manageable(uow: UnitOfWork, organization_id: int, invitation_id: int, acting_user_id: int) -> Invitation:
    acting = scope(uow, acting_user_id, organization_id)
    row = uow.session.get(Invitation, invitation_id)
    if row is None or row.organization_id != organization_id or row.accepted_at is not None or row.revoked_at:
        raise UnknownRecord("no such pending invitation", "invitation_id")
    if acting is None or not (
        acting.role is Role.OWNER or (acting.role is Role.ACCOUNTANT and row.invited_by_user_id == acting_user_id)
    ):
        raise NotPermitted("only an owner, or the person who sent it, can change an invitation")
    return row


def resend(
    uow: UnitOfWork,
    *,
    organization_id: int,
    invitation_id: int,
    acting_user_id: int,
    now: datetime,
    valid_for: timedelta,
    actor: str,
) -> IssuedInvitation:
    """A new link (and period) for a pending invitation, even an expired one (uncommitted; audit-logged)."""
    row = _manageable(uow, organization_id, invitation_id, acting_user_id)
    before = _view(uow, row).state()
    return _send_link(
        uow, row, organization_id=organization_id, before=before, now=now, valid_for=valid_for, actor=actor
    )


def revoke(
    uow: UnitOfWork, *, organization_id: int, invitation_id: int, acting_user_id: int, now: datetime, actor: str
) -> InvitationView:
    """Withdraw a pending invitation: its link stops working (uncommitted; audit-logged)."""
    row = _manageable(uow, organization_id, invitation_id, acting_user_id)
    view = _view(uow, row)
    row.revoked_at = now
    record(
        uow,
        organization_id=organization_id,
        actor=actor,
        at=now,
        entity="invitation",
        entity_id=row.id,
        change="delete",
        before=view.state(),
        after=None,
    )
    return view


def pending(uow: UnitOfWork, organization_id: int) -> list[InvitationView]:
    """The organization's invitations not yet accepted nor revoked (expired ones too: they can be resent)."""
    rows = uow.session.scalars(
        select(Invitation)
        .where(
            Invitation.organization_id == organization_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .order_by(Invitation.id)
    )
    return [_view(uow, row) for row in rows]


def _usable_row(uow: UnitOfWork, token: object, now: datetime, *, lock: bool = False) -> Invitation:
    if not isinstance(token, str) or not token or len(token) > TOKEN_MAX:
        raise InvitationError(UNKNOWN, "unknown")
    query = select(Invitation).where(Invitation.token_hash == hash_token(token))
    if lock:
        query = query.with_for_update()
    row = uow.session.scalars(query).one_or_none()
    if row is None:
        raise InvitationError(UNKNOWN, "unknown")
    if row.accepted_at is not None:
        raise InvitationError(USED, "used")
    if row.revoked_at is not None:
        raise InvitationError(REVOKED, "revoked")
    if row.expires_at <= now:
        raise InvitationError(EXPIRED, "expired")
    return row


def look_up(uow: UnitOfWork, token: object, now: datetime) -> InvitationView:
    """The invitation a link's token names, if it can still be accepted; InvitationError says why not."""
    return _view(uow, _usable_row(uow, token, now))


def accept(uow: UnitOfWork, *, token: object, user_id: int, now: datetime, actor: str) -> InvitationView:
    """The signed-in user `user_id` joins the invitation's organization with its role and clients (uncommitted;
    audit-logged). The invitation is used up. InvitationError when the link cannot be used, or (reason
    "member") when the user is already a member (the invitation stays usable for the right account).
    """
    row = _usable_row(uow, token, now, lock=True)
    view = _view(uow, row)
    if scope(uow, user_id, row.organization_id) is not None:
        raise InvitationError(f"You are already a member of {view.organization_name}.", "member")
    # Clients disconnected since the invitation was sent are simply left out.
    existing = set(
        uow.session.scalars(
            select(Connection.id).where(
                Connection.organization_id == row.organization_id, Connection.id.in_(view.connection_ids)
            )
        )
    )
    membership = Membership(
        user_id=user_id, organization_id=row.organization_id, role=view.role.value, client_limited=view.client_limited
    )
    uow.session.add(membership)
    uow.flush()
    for connection_id in view.connection_ids:
        if connection_id in existing:
            uow.session.add(MembershipClient(membership_id=membership.id, connection_id=connection_id))
    row.accepted_at = now
    row.accepted_by_user_id = user_id
    uow.flush()
    user = uow.session.get(User, user_id)
    record(
        uow,
        organization_id=row.organization_id,
        actor=actor,
        at=now,
        entity="member",
        entity_id=membership.id,
        change="create",
        before=None,
        after={
            "email": user.email if user is not None else "",
            "role": view.role.value,
            "client_limited": view.client_limited,
            "connection_ids": sorted(existing & set(view.connection_ids)),
            "invitation": row.id,
            "invited_email": view.email,
        },
    )
    uow.activities.record(row.organization_id, "member.joined", user.email if user else "", actor=actor, at=now)
    return view


def invitation_email(view: InvitationView, link: str, client_names: Sequence[str] = ()) -> tuple[str, str]:
    """Subject and text of the invitation email for `link`."""
    inviter = view.invited_by or "Someone"
    article = "an" if view.role in (Role.OWNER, Role.ACCOUNTANT) else "a"
    scope_words = (
        f"You will see these clients only: {', '.join(client_names)}.\n\n"
        if view.client_limited and client_names
        else ""
    )
    subject = f"{inviter} invited you to {view.organization_name} on Nudge"
    text = (
        f"Hello,\n\n{inviter} invited you to join {view.organization_name} on Nudge as {article} {view.role.value}.\n\n"
        f"{scope_words}"
        f"Open this link to accept (it works once, until {view.expires_at:%d %B %Y %H:%M} UTC):\n\n{link}\n\n"
        "You can sign in with an account you already have, or create one. If you did not expect this, "
        "ignore this email: nothing happens unless you open the link and accept.\n"
    )
    return subject, text

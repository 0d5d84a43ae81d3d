"""Requests to join the organization that manages a ledger (one ledger, one chaser; see connector.connections).

When an organization connects a ledger (provider + tenant) another organization already chases, its
connection is "managed elsewhere". One of its owners may then ask the managing organization for access:
`request_membership` records a pending request (asking twice asks once). The managing organization's owners
see it on their team page and `decide`: approved, the requester becomes an *accountant of the managing
organization limited to that one client* (they work the client there, where it is chased, and see nothing else
of that organization; an owner there can widen it later); declined, nothing changes but the record. Already a
member there, an approval only adds the client to a client-limited membership.

This is not the hand-over of the chasing itself (`connector.connections.ownership`, `nudge review
access-request`), which moves the chasing to the requesting organization. Only owners request and decide;
every step is audit-logged in both organizations (entity "membership_request").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from connector.accounts.members import scope
from connector.connections.connect import MANAGED_ELSEWHERE, managing_connection
from connector.domain.model import Role
from connector.errors import InvalidInput, NotPermitted, UnknownRecord
from connector.library.audit import record
from connector.storage import UnitOfWork
from connector.storage.tables import Connection, Membership, MembershipClient, MembershipRequest, Organization, User

PENDING = "pending"
APPROVED = "approved"
DECLINED = "declined"


@dataclass(frozen=True, slots=True)
class MembershipRequestView:
    """A request as both organizations' owners read it."""

    id: int
    state: str
    requesting_organization_id: int
    requesting_organization: str
    requesting_user_id: int
    requester_email: str
    requester_name: str
    managing_organization_id: int
    managing_organization: str
    connection_id: int  # the managing organization's connection to the ledger
    ledger: str
    provider: str
    created_at: datetime
    decided_at: datetime | None

    def state_record(self) -> dict[str, object]:
        """What the audit log records of it."""
        return {
            "state": self.state,
            "requester": self.requester_email,
            "requesting_organization": self.requesting_organization,
            "managing_organization": self.managing_organization,
            "ledger": self.ledger,
        }


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """A request and whether this call made it (False: the pending one already there)."""

    request: MembershipRequestView
    created: bool


def _name(uow: UnitOfWork, org_id: int) -> str:
    organization = uow.session.get(Organization, org_id)
    return organization.name if organization is not None else ""


def _view(uow: UnitOfWork, row: MembershipRequest) -> MembershipRequestView:
    user = uow.session.get(User, row.requesting_user_id)
    connection = uow.session.get(Connection, row.connection_id)
    return MembershipRequestView(
        id=row.id,
        state=row.state,
        requesting_organization_id=row.requesting_organization_id,
        requesting_organization=_name(uow, row.requesting_organization_id),
        requesting_user_id=row.requesting_user_id,
        requester_email=user.email if user is not None else "",
        requester_name=(user.display_name or user.email) if user is not None else "",
        managing_organization_id=row.managing_organization_id,
        managing_organization=_name(uow, row.managing_organization_id),
        connection_id=row.connection_id,
        ledger=(connection.name or connection.tenant_id) if connection is not None else "",
        provider=connection.provider if connection is not None else "",
        created_at=row.created_at,
        decided_at=row.decided_at,
    )


def _require_owner(uow: UnitOfWork, organization_id: int, user_id: int, doing: str) -> None:
    acting = scope(uow, user_id, organization_id)
    if acting is None or acting.role is not Role.OWNER:
        raise NotPermitted(f"only an owner can {doing}")


def request_membership(
    uow: UnitOfWork, *, organization_id: int, connection_id: int, acting_user_id: int, now: datetime, actor: str
) -> RequestOutcome:
    """An owner of `organization_id` asks the organization managing the ledger of their connection
    `connection_id` for access (uncommitted; audit-logged in both). A pending request by the same person for the
    same ledger is returned as it is.

    NotPermitted for a non-owner; UnknownRecord for a connection of another organization; InvalidInput when the
    connection is not managed elsewhere, nobody manages the ledger any more, or the person has access already.
    """
    _require_owner(uow, organization_id, acting_user_id, "ask another organization for access")
    connection = uow.connections.get(organization_id, connection_id)
    if connection is None:
        raise UnknownRecord("no such client", "connection_id")
    if connection.chasing != MANAGED_ELSEWHERE:
        raise InvalidInput(f"{connection.name} is chased by this organization: nothing to ask for", "connection_id")
    manager = managing_connection(uow, connection.provider, connection.tenant_id, exclude_org_id=organization_id)
    if manager is None:
        raise InvalidInput(
            f"no other organization manages {connection.name} any more: reconnect it to chase it here",
            "connection_id",
        )
    member = scope(uow, acting_user_id, manager.organization_id)
    if member is not None and member.sees(manager.id):
        raise InvalidInput(
            f"you already see {manager.name} in {_name(uow, manager.organization_id)}: switch organization",
            "connection_id",
        )
    existing = uow.session.scalars(
        select(MembershipRequest).where(
            MembershipRequest.requesting_user_id == acting_user_id,
            MembershipRequest.connection_id == manager.id,
            MembershipRequest.state == PENDING,
        )
    ).first()
    if existing is not None:
        return RequestOutcome(request=_view(uow, existing), created=False)
    row = MembershipRequest(
        requesting_organization_id=organization_id,
        requesting_user_id=acting_user_id,
        requesting_connection_id=connection.id,
        managing_organization_id=manager.organization_id,
        connection_id=manager.id,
        state=PENDING,
        created_at=now,
    )
    uow.session.add(row)
    return _recorded(uow, row, (organization_id, manager.organization_id), before=None, now=now, actor=actor)


def decide(
    uow: UnitOfWork,
    *,
    organization_id: int,
    request_id: int,
    acting_user_id: int,
    approve: bool,
    now: datetime,
    actor: str,
) -> RequestOutcome:
    """An owner of the managing organization approves or declines (uncommitted; audit-logged in both).
    Deciding again the same way changes nothing (`created` False); the other way is refused.

    NotPermitted for a non-owner; UnknownRecord for another organization's request; InvalidInput("decision")
    for a request already decided the other way.
    """
    _require_owner(uow, organization_id, acting_user_id, "answer access requests")
    row = uow.session.get(MembershipRequest, request_id, with_for_update=True)
    if row is None or row.managing_organization_id != organization_id:
        raise UnknownRecord("no such access request", "request_id")
    wanted = APPROVED if approve else DECLINED
    if row.state == wanted:
        return RequestOutcome(request=_view(uow, row), created=False)
    if row.state != PENDING:
        raise InvalidInput(f"this request was already {row.state}", "decision")
    before = _view(uow, row).state_record()
    row.state = wanted
    row.decided_at = now
    row.decided_by_user_id = acting_user_id
    if approve:
        _grant(uow, row)
    return _recorded(uow, row, (organization_id, row.requesting_organization_id), before=before, now=now, actor=actor)


def _recorded(
    uow: UnitOfWork,
    row: MembershipRequest,
    organization_ids: tuple[int, int],
    *,
    before: dict[str, object] | None,
    now: datetime,
    actor: str,
) -> RequestOutcome:
    """The request as saved, audit-logged in both organizations (the asking and the managing one)."""
    uow.flush()
    view = _view(uow, row)
    for org_id in organization_ids:
        record(
            uow,
            organization_id=org_id,
            actor=actor,
            at=now,
            entity="membership_request",
            entity_id=row.id,
            change="create" if before is None else "update",
            before=before,
            after=view.state_record(),
        )
    return RequestOutcome(request=view, created=True)


def _grant(uow: UnitOfWork, row: MembershipRequest) -> None:
    """The requester sees the client in the managing organization: a new accountant limited to it, or the client
    added to their existing client-limited membership (an unlimited member sees it already)."""
    membership = uow.session.scalars(
        select(Membership).where(
            Membership.user_id == row.requesting_user_id, Membership.organization_id == row.managing_organization_id
        )
    ).one_or_none()
    if membership is None:
        membership = Membership(
            user_id=row.requesting_user_id,
            organization_id=row.managing_organization_id,
            role=Role.ACCOUNTANT.value,
            client_limited=True,
        )
        uow.session.add(membership)
        uow.flush()
    if membership.client_limited and uow.session.get(MembershipClient, (membership.id, row.connection_id)) is None:
        uow.session.add(MembershipClient(membership_id=membership.id, connection_id=row.connection_id))


def to_decide(uow: UnitOfWork, organization_id: int) -> list[MembershipRequestView]:
    """The pending requests the organization's owners must answer, oldest first."""
    rows = uow.session.scalars(
        select(MembershipRequest)
        .where(MembershipRequest.managing_organization_id == organization_id, MembershipRequest.state == PENDING)
        .order_by(MembershipRequest.id)
    )
    return [_view(uow, row) for row in rows]


def made_by(uow: UnitOfWork, organization_id: int, limit: int = 20) -> list[MembershipRequestView]:
    """The organization's own requests to other organizations, newest first (pending and decided)."""
    rows = uow.session.scalars(
        select(MembershipRequest)
        .where(MembershipRequest.requesting_organization_id == organization_id)
        .order_by(MembershipRequest.id.desc())
        .limit(limit)
    )
    return [_view(uow, row) for row in rows]


def managed_elsewhere(uow: UnitOfWork, organization_id: int) -> list[tuple[int, str, str]]:
    """(connection id, name, managing organization) of the organization's clients another organization chases."""
    rows = uow.session.scalars(
        select(Connection)
        .where(Connection.organization_id == organization_id, Connection.chasing == MANAGED_ELSEWHERE)
        .order_by(Connection.name, Connection.id)
    )
    found = []
    for connection in rows:
        manager = managing_connection(uow, connection.provider, connection.tenant_id, exclude_org_id=organization_id)
        if manager is not None:
            found.append((connection.id, connection.name or connection.tenant_id, _name(uow, manager.organization_id)))
    return found


def owner_emails(uow: UnitOfWork, organization_id: int) -> list[str]:
    """The addresses of the organization's owners (who hear about requests to decide)."""
    return list(
        uow.session.scalars(
            select(User.email)
            .join(Membership, Membership.user_id == User.id)
            .where(
                Membership.organization_id == organization_id,
                Membership.role == Role.OWNER.value,
                User.is_active.is_(True),
            )
            .order_by(User.email)
        )
    )


def _who(view: MembershipRequestView) -> str:
    if view.requester_name == view.requester_email:
        return view.requester_email
    return f"{view.requester_name} ({view.requester_email})"


def request_email(view: MembershipRequestView, link: str) -> tuple[str, str]:
    """Subject and text of the email to the managing organization's owners."""
    subject = f"{view.requester_name} asks for access to {view.ledger} in {view.managing_organization}"
    text = (
        f"Hello,\n\n{_who(view)} of {view.requesting_organization} connected "
        f"{view.ledger}, which {view.managing_organization} manages on Nudge, and asks for access to it.\n\n"
        f"If you approve, they become an accountant of {view.managing_organization} who sees only {view.ledger}.\n\n"
        f"Approve or decline on your team page:\n\n{link}\n"
    )
    return subject, text


def outcome_email(view: MembershipRequestView, link: str) -> tuple[str, str]:
    """Subject and text of the email telling the requester the answer."""
    if view.state == APPROVED:
        subject = f"Access to {view.ledger} in {view.managing_organization} approved"
        body = (
            f"{view.managing_organization} approved your request: you are now an accountant there for "
            f"{view.ledger}. Pick {view.managing_organization} in the organization menu, or open:\n\n{link}\n"
        )
    else:
        subject = f"Access to {view.ledger} in {view.managing_organization} declined"
        body = (
            f"{view.managing_organization} declined your request for access to {view.ledger}. "
            "Nothing changed; contact them if you think this is a mistake.\n"
        )
    return subject, f"Hello,\n\n{body}"

"""Members of an organization: what one member may see (role, client limits), and owners changing members.

A member holds one role (owner > accountant > viewer). A client-limited member sees only the connections
listed for them in `membership_clients`; everyone else sees every connection of the organization. Owners
change roles and client limits and remove members (audit-logged); the last owner cannot be demoted or removed,
and owners are never limited. An owner hands ownership to another member (`transfer_ownership`), staying an
owner or stepping down to accountant.

Removing a member also ends every session of theirs (`connector.accounts.users.end_sessions`): their old cookie
signs nobody in any more, anywhere. A role change does not: every request reads the member's role and clients
afresh, so a demotion (or a narrower client limit) applies from the member's very next request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from connector.accounts.users import end_sessions
from connector.domain.model import Role
from connector.errors import InvalidInput, NotPermitted, UnknownRecord
from connector.library.audit import record
from connector.storage import UnitOfWork
from connector.storage.tables import ApiToken, Connection, Membership, MembershipClient, Task, User

# Higher sees and does more; a token or a change never raises a role above the member's own.
RANK: dict[Role, int] = {Role.VIEWER: 0, Role.ACCOUNTANT: 1, Role.OWNER: 2}


def lesser_role(first: Role | str, second: Role | str) -> Role:
    """The less powerful of two roles (an API token acts with at most its member's current role)."""
    a, b = Role(first), Role(second)
    return a if RANK[a] <= RANK[b] else b


def role_at_most(role: Role | str, ceiling: Role | str) -> bool:
    """True when `role` is no more powerful than `ceiling`."""
    return RANK[Role(role)] <= RANK[Role(ceiling)]


@dataclass(frozen=True, slots=True)
class MemberScope:
    """One member of one organization: role, and the connections they may see when limited to some clients."""

    membership_id: int
    user_id: int
    organization_id: int
    role: Role
    client_limited: bool
    connection_ids: frozenset[int]

    def sees(self, connection_id: int) -> bool:
        """May this member see (and, role permitting, act on) connection `connection_id` of the organization?"""
        return not self.client_limited or connection_id in self.connection_ids

    def visible_connection_ids(self) -> frozenset[int] | None:
        """The connection ids this member is limited to; None when they see every connection."""
        return self.connection_ids if self.client_limited else None


def scope(uow: UnitOfWork, user_id: int, organization_id: int) -> MemberScope | None:
    """The member `user_id` of `organization_id` with their limits; None when they are not a member."""
    membership = uow.session.scalars(
        select(Membership).where(Membership.user_id == user_id, Membership.organization_id == organization_id)
    ).one_or_none()
    if membership is None:
        return None
    connection_ids: frozenset[int] = frozenset()
    if membership.client_limited:
        connection_ids = frozenset(
            uow.session.scalars(
                select(MembershipClient.connection_id).where(MembershipClient.membership_id == membership.id)
            )
        )
    return MemberScope(
        membership_id=membership.id,
        user_id=membership.user_id,
        organization_id=membership.organization_id,
        role=Role(membership.role),
        client_limited=bool(membership.client_limited),
        connection_ids=connection_ids,
    )


@dataclass(frozen=True, slots=True)
class MemberView:
    """A member as the organization's members see them (the membership id is the member's id in the API)."""

    id: int
    user_id: int
    email: str
    display_name: str
    role: Role
    client_limited: bool
    connection_ids: tuple[int, ...]

    def state(self) -> dict[str, object]:
        """What an owner can change, as the audit log records it."""
        return {
            "role": self.role.value,
            "client_limited": self.client_limited,
            "connection_ids": list(self.connection_ids),
        }


def _member_view(uow: UnitOfWork, membership: Membership) -> MemberView:
    user = uow.session.get(User, membership.user_id)
    ids = uow.session.scalars(
        select(MembershipClient.connection_id)
        .where(MembershipClient.membership_id == membership.id)
        .order_by(MembershipClient.connection_id)
    )
    return MemberView(
        id=membership.id,
        user_id=membership.user_id,
        email=user.email if user is not None else "",
        display_name=(user.display_name or "") if user is not None else "",
        role=Role(membership.role),
        client_limited=bool(membership.client_limited),
        connection_ids=tuple(ids),
    )


def members_of(
    uow: UnitOfWork, organization_id: int, *, after_id: int | None = None, limit: int | None = None
) -> list[MemberView]:
    """The organization's members in id order (`after_id`, `limit`: one page of them); two statements however
    many members there are (memberships with their users, then the client limits)."""
    query = (
        select(Membership, User)
        .outerjoin(User, User.id == Membership.user_id)
        .where(Membership.organization_id == organization_id)
    )
    if after_id is not None:
        query = query.where(Membership.id > after_id)
    query = query.order_by(Membership.id)
    if limit is not None:
        query = query.limit(limit)
    rows = uow.session.execute(query).all()
    clients: dict[int, list[int]] = {}
    if rows:
        found = uow.session.execute(
            select(MembershipClient.membership_id, MembershipClient.connection_id)
            .where(MembershipClient.membership_id.in_([membership.id for membership, _ in rows]))
            .order_by(MembershipClient.connection_id)
        )
        for membership_id, connection_id in found:
            clients.setdefault(membership_id, []).append(connection_id)
    return [
        MemberView(
            id=membership.id,
            user_id=membership.user_id,
            email=user.email if user is not None else "",
            display_name=(user.display_name or "") if user is not None else "",
            role=Role(membership.role),
            client_limited=bool(membership.client_limited),
            connection_ids=tuple(clients.get(membership.id, ())),
        )
        for membership, user in rows
    ]


def update_member(
    uow: UnitOfWork,
    *,
    organization_id: int,
    member_id: int,
    acting_user_id: int,
    now: datetime,
    actor: str,
    role: Role | str | None = None,
    client_limited: bool | None = None,
    connection_ids: Sequence[int] | None = None,
) -> MemberView:
    """Change a member's role, client limit or clients (owners only; uncommitted; audit-logged).

    NotPermitted unless the acting user is an owner; UnknownRecord for a member of another organization;
    InvalidInput("role") when the last owner would be demoted, ("client_limited") for a limited owner,
    ("connection_ids") for a connection outside the organization.
    """
    acting = scope(uow, acting_user_id, organization_id)
    if acting is None or acting.role is not Role.OWNER:
        raise NotPermitted("only an owner can change members")
    membership = uow.session.get(Membership, member_id)
    if membership is None or membership.organization_id != organization_id:
        raise UnknownRecord("no such member", "member_id")
    before = _member_view(uow, membership)
    new_role = _checked_role(role, before.role)
    limited = before.client_limited if client_limited is None else bool(client_limited)
    if before.role is Role.OWNER and new_role is not Role.OWNER and _owner_count(uow, organization_id) <= 1:
        raise InvalidInput("the organization needs an owner: make another member owner first", "role")
    if limited and new_role is Role.OWNER:
        raise InvalidInput("an owner sees every client: change the role before limiting the member", "client_limited")
    wanted = (
        set(before.connection_ids) if connection_ids is None else _checked_clients(uow, organization_id, connection_ids)
    )
    membership.role = new_role.value
    membership.client_limited = limited
    current = set(before.connection_ids)
    for connection_id in sorted(current - wanted):
        row = uow.session.get(MembershipClient, (membership.id, connection_id))
        if row is not None:
            uow.session.delete(row)
    for connection_id in sorted(wanted - current):
        uow.session.add(MembershipClient(membership_id=membership.id, connection_id=connection_id))
    uow.flush()
    after = _member_view(uow, membership)
    record(
        uow,
        organization_id=organization_id,
        actor=actor,
        at=now,
        entity="member",
        entity_id=membership.id,
        change="update",
        before=before.state(),
        after=after.state(),
    )
    return after


def _checked_role(role: Role | str | None, current: Role) -> Role:
    if role is None:
        return current
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput("role must be one of owner, accountant, viewer", "role") from None


def _checked_clients(uow: UnitOfWork, organization_id: int, connection_ids: Sequence[int]) -> set[int]:
    wanted = set(connection_ids)
    known = set(
        uow.session.scalars(
            select(Connection.id).where(Connection.organization_id == organization_id, Connection.id.in_(wanted))
        )
    )
    if unknown := sorted(wanted - known):
        raise InvalidInput(f"no such client in this organization: {unknown[0]}", "connection_ids")
    return wanted


def _owner_count(uow: UnitOfWork, organization_id: int) -> int:
    # Locked (PostgreSQL) so that two owners demoting each other at once cannot both see the other one left.
    owners = uow.session.scalars(
        select(Membership.id)
        .where(Membership.organization_id == organization_id, Membership.role == Role.OWNER.value)
        .with_for_update()
    )
    return len(list(owners))


def remove_member(
    uow: UnitOfWork, *, organization_id: int, member_id: int, acting_user_id: int, now: datetime, actor: str
) -> MemberView:
    """Take a member out of the organization (owners only; uncommitted; audit-logged): the membership and its
    client limits go, the member's API tokens for the organization are revoked, their open tasks unassigned, and
    every session of theirs ends (they sign in again to reach their other organizations).

    NotPermitted unless the acting user is an owner; UnknownRecord for a member of another organization;
    InvalidInput("member_id") for the last owner.
    """
    acting = scope(uow, acting_user_id, organization_id)
    if acting is None or acting.role is not Role.OWNER:
        raise NotPermitted("only an owner can remove members")
    membership = uow.session.get(Membership, member_id)
    if membership is None or membership.organization_id != organization_id:
        raise UnknownRecord("no such member", "member_id")
    before = _member_view(uow, membership)
    if before.role is Role.OWNER and _owner_count(uow, organization_id) <= 1:
        raise InvalidInput("the organization needs an owner: make another member owner first", "member_id")
    uow.session.execute(
        update(ApiToken)
        .where(
            ApiToken.user_id == membership.user_id,
            ApiToken.organization_id == organization_id,
            ApiToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    uow.session.execute(
        update(Task)
        .where(
            Task.organization_id == organization_id,
            Task.assignee_user_id == membership.user_id,
            Task.state == "open",
        )
        .values(assignee_user_id=None)
        .execution_options(synchronize_session=False)
    )
    uow.session.execute(delete(MembershipClient).where(MembershipClient.membership_id == membership.id))
    uow.session.delete(membership)
    uow.flush()
    end_sessions(uow, before.user_id)  # their cookie, copied or not, signs nobody in any more
    record(
        uow,
        organization_id=organization_id,
        actor=actor,
        at=now,
        entity="member",
        entity_id=before.id,
        change="delete",
        before={**before.state(), "email": before.email},
        after=None,
    )
    return before


def transfer_ownership(
    uow: UnitOfWork,
    *,
    organization_id: int,
    member_id: int,
    acting_user_id: int,
    keep_owner: bool,
    now: datetime,
    actor: str,
) -> MemberView:
    """An owner makes member `member_id` an owner (seeing every client); the acting owner becomes an accountant
    unless `keep_owner` ("add an owner"). Uncommitted; audit-logged (change "transfer").

    NotPermitted unless the acting user is an owner; UnknownRecord for a member of another organization;
    InvalidInput("member_id") when the member is already an owner or is the acting owner.
    """
    acting = scope(uow, acting_user_id, organization_id)
    if acting is None or acting.role is not Role.OWNER:
        raise NotPermitted("only an owner can hand ownership over")
    membership = uow.session.get(Membership, member_id)
    if membership is None or membership.organization_id != organization_id:
        raise UnknownRecord("no such member", "member_id")
    if membership.user_id == acting_user_id:
        raise InvalidInput("choose another member to hand ownership to", "member_id")
    target_before = _member_view(uow, membership)
    if target_before.role is Role.OWNER:
        raise InvalidInput(f"{target_before.email} is an owner already", "member_id")
    membership.role = Role.OWNER.value
    membership.client_limited = False
    uow.session.execute(delete(MembershipClient).where(MembershipClient.membership_id == membership.id))
    mine = uow.session.get(Membership, acting.membership_id)
    if mine is not None and not keep_owner:
        mine.role = Role.ACCOUNTANT.value
    uow.flush()
    target_after = _member_view(uow, membership)
    record(
        uow,
        organization_id=organization_id,
        actor=actor,
        at=now,
        entity="member",
        entity_id=membership.id,
        change="transfer",
        before={**target_before.state(), "email": target_before.email},
        after={**target_after.state(), "email": target_after.email, "previous_owner_stays_owner": keep_owner},
    )
    if mine is not None and not keep_owner:
        record(
            uow,
            organization_id=organization_id,
            actor=actor,
            at=now,
            entity="member",
            entity_id=mine.id,
            change="update",
            before={"role": Role.OWNER.value},
            after={"role": Role.ACCOUNTANT.value},
        )
    return target_after

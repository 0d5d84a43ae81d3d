"""Members of an organization: what one member may see (role, client limits), and owners changing members.

A member holds one role (owner > accountant > viewer). A client-limited member sees only the connections
listed for them in `membership_clients`; everyone else sees every connection of the organization.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from connector.domain.model import Role
from connector.storage import UnitOfWork
from connector.storage.tables import Membership, MembershipClient

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

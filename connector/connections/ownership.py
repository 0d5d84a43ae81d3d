"""One ledger, one chaser: access requests between organizations connected to the same ledger.

A ledger (provider + tenant id) is chased by at most one Nudge organization. Another organization that
connects it gets a "managed_elsewhere" connection (connector.connections.connect) and may ask for the
chasing: `request_access` opens a request to the managing organization, whose owner `decide`s. Approved,
the chasing moves: the managing connection becomes "managed_elsewhere" (its pending actions cancelled
with the reason, so nothing it planned goes out any more) and the requester's starts with an onboarding
review (nothing goes out until a person there approves its first plan). Declined, nothing changes but
the record. Every step leaves an activity in both organizations' logs. Who may decide (the owner's role)
is checked by the caller (web, CLI); these services check that the organization is the right one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select

from connector.connections.connect import MANAGED_ELSEWHERE, REVIEW, managing_connection
from connector.domain.model import ActionState
from connector.errors import NudgeError
from connector.storage import Store, UnitOfWork
from connector.storage.tables import AccessRequest, Connection, Organization
from connector.storage.tables import Action as ActionRow

PENDING = "pending"
APPROVED = "approved"
DECLINED = "declined"
HANDED_OVER = "chasing handed over to {organization} (access request approved): {organization} chases this ledger now"


class AccessError(NudgeError):
    """An access request cannot be made or decided (unknown, not this organization's, already decided...)."""


@dataclass(frozen=True)
class AccessRequestView:
    """An access request with the names a person needs to read it."""

    id: int
    connection_id: int
    ledger: str
    provider: str
    requesting_organization: str
    managing_organization: str
    state: str
    requested_by: str
    decided_by: str
    created_at: datetime
    decided_at: datetime | None


def request_access(store: Store, org_id: int, connection_id: int, actor: str, now: datetime) -> AccessRequestView:
    """Ask the organization that chases this connection's ledger to hand the chasing over.

    The connection must be the organization's own and "managed_elsewhere". A pending request for it is
    returned as it is (asking twice asks once). When nobody chases the ledger any more (the managing
    connection was disconnected), the connection starts its review at once: there is nobody to ask.
    """
    with store.unit_of_work() as uow:
        connection = uow.connections.get(org_id, connection_id)
        if connection is None:
            raise AccessError(f"no connection with id {connection_id} in this organization")
        if connection.chasing != MANAGED_ELSEWHERE:
            raise AccessError(f"{connection.name} is chased by this organization already: nothing to request")
        existing = uow.session.scalars(
            select(AccessRequest).where(AccessRequest.connection_id == connection_id, AccessRequest.state == PENDING)
        ).first()
        if existing is not None:
            return _view(uow, existing)
        manager = managing_connection(uow, connection.provider, connection.tenant_id, exclude_org_id=org_id)
        request = AccessRequest(
            connection_id=connection_id,
            requesting_organization_id=org_id,
            managing_organization_id=(
                manager.organization_id if manager else connection.managed_by_organization_id or org_id
            ),
            requested_by=actor,
            created_at=now,
        )
        uow.session.add(request)
        uow.session.flush()
        detail = {"request": request.id, "requested_by": actor}
        if manager is None:  # nobody chases it now: nobody to ask, the requester starts with a review
            request.state = APPROVED
            request.decided_by = "nudge (the ledger was no longer chased by another organization)"
            request.decided_at = now
            _start_review(connection, now)
            uow.activities.record(
                org_id,
                "access.granted",
                connection.name,
                connection_id=connection.id,
                actor=actor,
                detail=detail,
                at=now,
            )
        else:
            uow.activities.record(
                org_id,
                "access.requested",
                connection.name,
                connection_id=connection.id,
                actor=actor,
                detail={**detail, "managing_organization": _name(uow, manager.organization_id)},
                at=now,
            )
            uow.activities.record(
                manager.organization_id,
                "access.requested",
                manager.name,
                connection_id=manager.id,
                actor=actor,
                detail={**detail, "requesting_organization": _name(uow, org_id)},
                at=now,
            )
        uow.commit()
        return _view(uow, request)


def list_requests(store: Store, org_id: int | None, *, state: str | None = None) -> list[AccessRequestView]:
    """The access requests the organization made or must decide (every organization's when `org_id` is
    None, for the operator's CLI), newest first, optionally of one state."""
    with store.unit_of_work() as uow:
        query = select(AccessRequest).order_by(AccessRequest.id.desc())
        if org_id is not None:
            query = query.where(
                or_(
                    AccessRequest.requesting_organization_id == org_id,
                    AccessRequest.managing_organization_id == org_id,
                )
            )
        if state is not None:
            query = query.where(AccessRequest.state == state)
        return [_view(uow, request) for request in uow.session.scalars(query)]


def managing_organization_of(store: Store, request_id: int) -> int | None:
    """The organization that decides an access request (the operator's CLI acts as its owner), or None."""
    with store.unit_of_work() as uow:
        request = uow.session.get(AccessRequest, request_id)
        return request.managing_organization_id if request is not None else None


def decide(
    store: Store, org_id: int, request_id: int, actor: str, now: datetime, *, approve: bool
) -> AccessRequestView:
    """The managing organization approves (chasing moves to the requester) or declines a pending request.

    Approved: the managing organization's connection to the ledger becomes "managed_elsewhere" and its
    planned or awaiting-approval actions are cancelled with the reason; the requester's connection
    starts in review (due at once); other organizations' managed-elsewhere connections name the new manager.
    """
    with store.unit_of_work() as uow:
        request = uow.session.get(AccessRequest, request_id)
        if request is None or request.managing_organization_id != org_id:
            raise AccessError(f"no access request with id {request_id} for this organization to decide")
        if request.state != PENDING:
            raise AccessError(f"access request {request_id} was already {request.state}")
        requester = uow.session.get(Connection, request.connection_id)
        if requester is None:
            raise AccessError(f"access request {request_id} names a connection that no longer exists")
        request.state = APPROVED if approve else DECLINED
        request.decided_by = actor
        request.decided_at = now
        kind = "access.approved" if approve else "access.declined"
        detail: dict[str, object] = {"request": request.id, "decided_by": actor}
        managing = uow.connections.by_tenant(org_id, requester.provider, requester.tenant_id)
        if approve:
            cancelled = 0
            if managing is not None:
                cancelled = _hand_over(uow, managing, request.requesting_organization_id, now)
                detail["cancelled_actions"] = cancelled
            for other in uow.connections.with_tenant(requester.provider, requester.tenant_id):
                if other.id != requester.id and other.chasing == MANAGED_ELSEWHERE:
                    other.managed_by_organization_id = request.requesting_organization_id
            _start_review(requester, now)
        for organization_id, connection in (
            (org_id, managing),
            (request.requesting_organization_id, requester),
        ):
            uow.activities.record(
                organization_id,
                kind,
                connection.name if connection is not None else requester.name,
                connection_id=connection.id if connection is not None else None,
                actor=actor,
                detail=detail,
                at=now,
            )
        uow.commit()
        return _view(uow, request)


def _hand_over(uow: UnitOfWork, managing: Connection, new_manager_org_id: int, now: datetime) -> int:
    """The managing connection stops chasing: managed elsewhere, its pending actions cancelled; how many."""
    managing.chasing = MANAGED_ELSEWHERE
    managing.managed_by_organization_id = new_manager_org_id
    reason = HANDED_OVER.format(organization=_name(uow, new_manager_org_id) or f"organization {new_manager_org_id}")
    pending = uow.session.scalars(
        select(ActionRow).where(
            ActionRow.connection_id == managing.id,
            ActionRow.state.in_((ActionState.PLANNED.value, ActionState.AWAITING_APPROVAL.value)),
        )
    ).all()
    for row in pending:
        row.state = ActionState.CANCELLED.value
        row.error = reason
        row.updated_at = now
    return len(pending)


def _start_review(connection: Connection, now: datetime) -> None:
    """The connection chases its ledger from now on, starting with an onboarding review."""
    connection.chasing = REVIEW
    connection.chasing_since = None
    connection.managed_by_organization_id = None
    connection.next_run_at = now  # sync and plan at once, so the review has something to show


def _name(uow: UnitOfWork, org_id: int | None) -> str:
    organization = uow.session.get(Organization, org_id) if org_id is not None else None
    return organization.name if organization is not None else ""


def _view(uow: UnitOfWork, request: AccessRequest) -> AccessRequestView:
    connection = uow.session.get(Connection, request.connection_id)
    return AccessRequestView(
        id=request.id,
        connection_id=request.connection_id,
        ledger=connection.name if connection is not None else "",
        provider=connection.provider if connection is not None else "",
        requesting_organization=_name(uow, request.requesting_organization_id),
        managing_organization=_name(uow, request.managing_organization_id),
        state=request.state,
        requested_by=request.requested_by,
        decided_by=request.decided_by,
        created_at=request.created_at,
        decided_at=request.decided_at,
    )

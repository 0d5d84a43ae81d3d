"""Members (connector.accounts.members): client-limited scopes, and owners changing roles and clients."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.accounts import members
from connector.accounts.users import create_user
from connector.domain.model import Role
from connector.errors import InvalidInput, NotPermitted, UnknownRecord
from connector.library.audit import entries
from connector.storage import Store

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _org(store: Store, name: str, *roles: Role, clients: int = 2) -> tuple[int, list[int], list[int]]:
    """An organization with one user per role and `clients` connections: (org id, membership ids, connection ids)."""
    with store.unit_of_work() as uow:
        org_id = uow.organizations.add(name).id
        memberships = []
        for number, role in enumerate(roles):
            user = create_user(uow, f"{name.split()[0].lower()}{number}@example.com", "correct horse battery staple")
            memberships.append(uow.memberships.add(user.id, org_id, role).id)
        connections = [
            uow.connections.add(org_id, "quickbooks", f"{name}-{i}", f"Client {i}").id for i in range(clients)
        ]
        uow.commit()
    return org_id, memberships, connections


def _user_of(store: Store, membership_id: int) -> int:
    with store.unit_of_work() as uow:
        return next(m.user_id for m in members.members_of(uow, _org_of(store, membership_id)) if m.id == membership_id)


def _org_of(store: Store, membership_id: int) -> int:
    from connector.storage.tables import Membership

    with store.unit_of_work() as uow:
        row = uow.session.get(Membership, membership_id)
        assert row is not None
        return row.organization_id


def _update(store: Store, org_id: int, member_id: int, acting_member: int, **change: object) -> members.MemberView:
    with store.unit_of_work() as uow:
        view = members.update_member(
            uow,
            organization_id=org_id,
            member_id=member_id,
            acting_user_id=_user_of(store, acting_member),
            now=NOW,
            actor="owner@example.com",
            **change,  # type: ignore[arg-type]
        )
        uow.commit()
    return view


def test_roles_order_and_capping() -> None:
    assert members.lesser_role(Role.OWNER, Role.VIEWER) is Role.VIEWER
    assert members.lesser_role("accountant", "owner") is Role.ACCOUNTANT
    assert members.role_at_most(Role.VIEWER, Role.ACCOUNTANT)
    assert not members.role_at_most(Role.OWNER, Role.ACCOUNTANT)


def test_an_owner_limits_a_member_to_some_clients(store: Store) -> None:
    org_id, (owner, viewer), (first, second) = _org(store, "Alpha Books", Role.OWNER, Role.VIEWER)
    with store.unit_of_work() as uow:
        scope = members.scope(uow, _user_of(store, viewer), org_id)
    assert scope is not None
    assert scope.visible_connection_ids() is None
    assert scope.sees(first)
    assert scope.sees(second)

    view = _update(store, org_id, viewer, owner, client_limited=True, connection_ids=[second])
    assert (view.client_limited, view.connection_ids, view.role) == (True, (second,), Role.VIEWER)
    with store.unit_of_work() as uow:
        scope = members.scope(uow, _user_of(store, viewer), org_id)
        [entry] = entries(uow, org_id, entity="member")
    assert scope is not None
    assert scope.visible_connection_ids() == frozenset({second})
    assert not scope.sees(first)
    assert (entry.change, entry.entity_id, entry.actor) == ("update", str(viewer), "owner@example.com")
    assert entry.before == {"role": "viewer", "client_limited": False, "connection_ids": []}
    assert entry.after == {"role": "viewer", "client_limited": True, "connection_ids": [second]}

    view = _update(store, org_id, viewer, owner, connection_ids=[first, second], role=Role.ACCOUNTANT)
    assert (view.connection_ids, view.role) == ((first, second), Role.ACCOUNTANT)
    view = _update(store, org_id, viewer, owner, client_limited=False, connection_ids=[])
    assert (view.client_limited, view.connection_ids) == (False, ())


def test_the_last_owner_stays_an_owner(store: Store) -> None:
    org_id, (owner, accountant), _ = _org(store, "Alpha Books", Role.OWNER, Role.ACCOUNTANT)
    with pytest.raises(InvalidInput) as refused:
        _update(store, org_id, owner, owner, role=Role.ACCOUNTANT)
    assert refused.value.field == "role"
    _update(store, org_id, accountant, owner, role=Role.OWNER)
    assert _update(store, org_id, owner, accountant, role=Role.VIEWER).role is Role.VIEWER  # two owners: fine
    with pytest.raises(InvalidInput):
        _update(store, org_id, accountant, accountant, role=Role.VIEWER)


def test_refused_changes_name_their_field_and_save_nothing(store: Store) -> None:
    org_id, (owner, viewer), _ = _org(store, "Alpha Books", Role.OWNER, Role.VIEWER)
    _other, _, (foreign, _) = _org(store, "Beta Bakery", Role.OWNER)
    cases: list[tuple[dict[str, object], str]] = [
        ({"connection_ids": [foreign]}, "connection_ids"),
        ({"connection_ids": [999999]}, "connection_ids"),
        ({"role": "admin"}, "role"),
        ({"client_limited": True, "role": Role.OWNER}, "client_limited"),
    ]
    for change, field in cases:
        with pytest.raises(InvalidInput) as refused:
            _update(store, org_id, viewer, owner, **change)
        assert refused.value.field == field, change
    with pytest.raises(InvalidInput):  # an owner is never limited
        _update(store, org_id, owner, owner, client_limited=True)
    with store.unit_of_work() as uow:
        assert entries(uow, org_id) == []
        listed = members.members_of(uow, org_id)
    assert [(m.role, m.client_limited) for m in listed] == [(Role.OWNER, False), (Role.VIEWER, False)]


def test_only_owners_change_members_of_their_own_organization(store: Store) -> None:
    org_id, (owner, accountant), _ = _org(store, "Alpha Books", Role.OWNER, Role.ACCOUNTANT)
    other_id, (other_owner,), _ = _org(store, "Beta Bakery", Role.OWNER)
    with pytest.raises(NotPermitted):
        _update(store, org_id, owner, accountant, role=Role.VIEWER)
    with pytest.raises(NotPermitted):  # an owner elsewhere is nobody here
        _update(store, org_id, accountant, other_owner, role=Role.VIEWER)
    with pytest.raises(UnknownRecord):  # a member of another organization is not found here
        _update(store, org_id, other_owner, owner, role=Role.VIEWER)
    with store.unit_of_work() as uow:
        assert [m.id for m in members.members_of(uow, other_id)] == [other_owner]
        assert [m.id for m in members.members_of(uow, org_id, after_id=owner, limit=5)] == [accountant]

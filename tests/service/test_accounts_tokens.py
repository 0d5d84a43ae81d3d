"""Personal API tokens (connector.accounts.tokens): shown once, stored hashed, one organization, capped role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from connector.accounts import tokens
from connector.accounts.users import create_user
from connector.domain.model import Role
from connector.errors import InvalidInput, NotPermitted, UnknownRecord
from connector.library.audit import entries
from connector.storage import Store
from connector.storage.tables import ApiToken, AuditEntry, Membership, User

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Member:
    user_id: int
    org_id: int
    email: str


def _member(store: Store, email: str, role: Role, org_id: int | None = None, org_name: str = "Alpha Books") -> Member:
    with store.unit_of_work() as uow:
        org = org_id if org_id is not None else uow.organizations.add(org_name).id
        user = create_user(uow, email, PASSWORD)
        uow.memberships.add(user.id, org, role)
        uow.commit()
        return Member(user.id, org, email)


def _create(store: Store, member: Member, role: Role | str = Role.VIEWER, name: str = "ci") -> tokens.CreatedToken:
    with store.unit_of_work() as uow:
        created = tokens.create(
            uow,
            user_id=member.user_id,
            organization_id=member.org_id,
            name=name,
            role=role,
            now=NOW,
            actor=member.email,
        )
        uow.commit()
    return created


def _authenticate(store: Store, secret: str, now: datetime = NOW) -> tokens.TokenIdentity | None:
    with store.unit_of_work() as uow:
        identity = tokens.authenticate(uow, secret, now)
        uow.commit()
    return identity


def test_the_secret_is_returned_once_and_only_its_hash_is_stored(store: Store) -> None:
    owner = _member(store, "owner@example.com", Role.OWNER)
    created = _create(store, owner, Role.ACCOUNTANT, name="  nightly export ")
    assert created.secret.startswith(tokens.SECRET_PREFIX)
    assert len(created.secret) >= 40
    assert created.token.prefix == created.secret[: tokens.PREFIX_LENGTH]
    assert (created.token.name, created.token.role) == ("nightly export", Role.ACCOUNTANT)
    with store.unit_of_work() as uow:
        row = uow.session.scalars(select(ApiToken)).one()
        stored = " ".join(str(getattr(row, column.key)) for column in ApiToken.__table__.columns)
        audit = uow.session.scalars(select(AuditEntry)).one()
    assert created.secret not in stored
    assert row.token_hash == tokens.hash_secret(created.secret)
    assert (audit.entity, audit.change, audit.actor) == ("api_token", "create", "owner@example.com")
    assert created.secret not in str(audit.after)
    assert audit.after == {
        "name": "nightly export",
        "prefix": created.token.prefix,
        "role": "accountant",
        "user_id": owner.user_id,
    }


def test_a_token_never_has_more_than_its_members_role(store: Store) -> None:
    viewer = _member(store, "viewer@example.com", Role.VIEWER)
    accountant = _member(store, "accountant@example.com", Role.ACCOUNTANT, org_id=viewer.org_id)
    with pytest.raises(NotPermitted) as refused:
        _create(store, viewer, Role.ACCOUNTANT)
    assert refused.value.field == "role"
    with pytest.raises(NotPermitted):
        _create(store, accountant, Role.OWNER)
    assert _create(store, accountant, Role.ACCOUNTANT).token.role is Role.ACCOUNTANT
    assert _create(store, viewer, Role.VIEWER).token.role is Role.VIEWER


@pytest.mark.parametrize(
    ("name", "role", "field"),
    [
        ("", Role.VIEWER, "name"),
        ("   ", Role.VIEWER, "name"),
        ("x" * 101, Role.VIEWER, "name"),
        ("bad\nname", Role.VIEWER, "name"),
        ("ok", "admin", "role"),
    ],
)
def test_bad_names_and_roles_are_refused_naming_the_field(store: Store, name: str, role: str, field: str) -> None:
    owner = _member(store, "owner@example.com", Role.OWNER)
    with pytest.raises(InvalidInput) as refused:
        _create(store, owner, role, name=name)
    assert refused.value.field == field


def test_only_members_create_tokens_for_an_organization(store: Store) -> None:
    alpha = _member(store, "alpha@example.com", Role.OWNER)
    beta = _member(store, "beta@example.com", Role.OWNER, org_name="Beta Bakery")
    with store.unit_of_work() as uow, pytest.raises(UnknownRecord):
        tokens.create(
            uow, user_id=alpha.user_id, organization_id=beta.org_id, name="x", role=Role.VIEWER, now=NOW, actor="a"
        )


def test_authenticate_gives_the_organization_and_the_capped_role(store: Store) -> None:
    member = _member(store, "acc@example.com", Role.ACCOUNTANT)
    created = _create(store, member, Role.ACCOUNTANT)
    identity = _authenticate(store, created.secret)
    assert identity is not None
    assert (identity.user_id, identity.organization_id, identity.role) == (
        member.user_id,
        member.org_id,
        Role.ACCOUNTANT,
    )
    assert (identity.email, identity.prefix, identity.token_id) == (
        member.email,
        created.token.prefix,
        created.token.id,
    )
    with store.unit_of_work() as uow:  # demoted after the token was made: the token is demoted too
        uow.session.scalars(select(Membership)).one().role = Role.VIEWER.value
        uow.commit()
    demoted = _authenticate(store, created.secret)
    assert demoted is not None
    assert demoted.role is Role.VIEWER


def test_unknown_revoked_and_orphaned_tokens_do_not_authenticate(store: Store) -> None:
    member = _member(store, "acc@example.com", Role.ACCOUNTANT)
    kept, revoked, orphan = (_create(store, member, name=name) for name in ("kept", "revoked", "orphan"))
    with store.unit_of_work() as uow:
        tokens.revoke(
            uow, user_id=member.user_id, organization_id=member.org_id, token_id=revoked.token.id, now=NOW, actor="x"
        )
        uow.commit()
    assert _authenticate(store, revoked.secret) is None
    assert _authenticate(store, kept.secret) is not None
    for guess in ("", "nudge_", kept.secret + "x", kept.secret[:-1], "Bearer " + kept.secret, "x" * 500):
        assert _authenticate(store, guess) is None, guess
    with store.unit_of_work() as uow:  # the user is deactivated: every token stops
        uow.session.get(User, member.user_id).is_active = False  # type: ignore[union-attr]
        uow.commit()
    assert _authenticate(store, orphan.secret) is None
    with store.unit_of_work() as uow:
        uow.session.get(User, member.user_id).is_active = True  # type: ignore[union-attr]
        uow.commit()
    assert _authenticate(store, orphan.secret) is not None
    with store.unit_of_work() as uow:  # removed from the organization: every token stops
        uow.session.execute(delete(Membership).where(Membership.user_id == member.user_id))
        uow.commit()
    assert _authenticate(store, orphan.secret) is None
    assert _authenticate(store, kept.secret) is None


def test_last_used_at_is_written_at_most_once_a_minute(store: Store) -> None:
    member = _member(store, "acc@example.com", Role.ACCOUNTANT)
    created = _create(store, member)

    def last_used() -> datetime | None:
        with store.unit_of_work() as uow:
            return tokens.for_member(uow, member.user_id, member.org_id)[0].last_used_at

    assert last_used() is None
    _authenticate(store, created.secret, NOW)
    assert last_used() == NOW
    _authenticate(store, created.secret, NOW + timedelta(seconds=59))
    assert last_used() == NOW
    _authenticate(store, created.secret, NOW + timedelta(seconds=60))
    assert last_used() == NOW + timedelta(seconds=60)


def test_a_member_lists_and_revokes_only_their_own_tokens(store: Store) -> None:
    alice = _member(store, "alice@example.com", Role.OWNER)
    bob = _member(store, "bob@example.com", Role.OWNER, org_id=alice.org_id)
    other = _member(store, "carol@example.com", Role.OWNER, org_name="Beta Bakery")
    first, second, third = (_create(store, alice, name=f"t{i}") for i in range(3))
    bobs = _create(store, bob)
    _create(store, other)
    with store.unit_of_work() as uow:
        assert [t.id for t in tokens.for_member(uow, alice.user_id, alice.org_id)] == [
            first.token.id,
            second.token.id,
            third.token.id,
        ]
        page = tokens.for_member(uow, alice.user_id, alice.org_id, after_id=first.token.id, limit=1)
        assert [t.id for t in page] == [second.token.id]
        with pytest.raises(UnknownRecord):
            tokens.revoke(
                uow, user_id=alice.user_id, organization_id=alice.org_id, token_id=bobs.token.id, now=NOW, actor="a"
            )
        with pytest.raises(UnknownRecord):
            tokens.revoke(
                uow, user_id=alice.user_id, organization_id=other.org_id, token_id=first.token.id, now=NOW, actor="a"
            )
        revoked = tokens.revoke(
            uow, user_id=alice.user_id, organization_id=alice.org_id, token_id=second.token.id, now=NOW, actor="alice"
        )
        uow.commit()
    assert revoked.revoked_at == NOW
    with store.unit_of_work() as uow:
        assert [t.id for t in tokens.for_member(uow, alice.user_id, alice.org_id)] == [first.token.id, third.token.id]
        assert len(tokens.for_member(uow, alice.user_id, alice.org_id, include_revoked=True)) == 3
        with pytest.raises(UnknownRecord):  # revoking twice
            tokens.revoke(
                uow, user_id=alice.user_id, organization_id=alice.org_id, token_id=second.token.id, now=NOW, actor="a"
            )
        [entry] = entries(uow, alice.org_id, entity="api_token", entity_id=str(second.token.id))[:1]
    assert (entry.change, entry.actor, entry.after) == ("delete", "alice", None)
    assert entry.before is not None
    assert entry.before["name"] == "t1"

"""Teams in the connector (connector.accounts.invitations, access_requests, members): invitations (who may invite,
single use, expiry, revocation, resending, tampered links, members), ownership transfer, removal ending sessions,
and requests to join the organization that manages a ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from connector.accounts import access_requests, invitations, members
from connector.accounts.invitations import InvitationError
from connector.accounts.users import create_user
from connector.connections.connect import MANAGED_ELSEWHERE
from connector.domain.model import Role
from connector.errors import InvalidInput, NotPermitted, UnknownRecord
from connector.library.audit import entries
from connector.storage import Store
from connector.storage.tables import Invitation, Membership

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
PASSWORD = "correct horse battery staple"


class Org:
    """An organization with an owner, an accountant limited to the first client, a viewer, and two clients."""

    def __init__(self, store: Store, name: str) -> None:
        prefix = name.split()[0].lower()
        with store.unit_of_work() as uow:
            self.id = uow.organizations.add(name).id
            self.clients = [
                uow.connections.add(self.id, "quickbooks", f"{prefix}-{i}", f"Client {i}").id for i in (0, 1)
            ]
            self.users: dict[Role, int] = {}
            self.memberships: dict[Role, int] = {}
            for role in (Role.OWNER, Role.ACCOUNTANT, Role.VIEWER):
                user = create_user(uow, f"{prefix}-{role.value}@example.com", PASSWORD)
                self.users[role] = user.id
                self.memberships[role] = uow.memberships.add(user.id, self.id, role).id
            uow.commit()
        with store.unit_of_work() as uow:
            members.update_member(
                uow,
                organization_id=self.id,
                member_id=self.memberships[Role.ACCOUNTANT],
                acting_user_id=self.users[Role.OWNER],
                now=NOW,
                actor="owner",
                client_limited=True,
                connection_ids=[self.clients[0]],
            )
            uow.commit()


def _invite(
    store: Store, org: Org, email: str, by: Role = Role.OWNER, **options: object
) -> invitations.IssuedInvitation:
    with store.unit_of_work() as uow:
        issued = invitations.invite(
            uow,
            organization_id=org.id,
            acting_user_id=org.users[by],
            email=email,
            role=options.pop("role", Role.VIEWER),  # type: ignore[arg-type]
            now=options.pop("now", NOW),  # type: ignore[arg-type]
            valid_for=WEEK,
            actor="inviter",
            **options,  # type: ignore[arg-type]
        )
        uow.commit()
    return issued


def _new_user(store: Store, email: str) -> int:
    with store.unit_of_work() as uow:
        user_id = create_user(uow, email, PASSWORD).id
        uow.commit()
    return user_id


def _accept(store: Store, token: str, user_id: int, now: datetime = NOW) -> invitations.InvitationView:
    with store.unit_of_work() as uow:
        view = invitations.accept(uow, token=token, user_id=user_id, now=now, actor="invitee")
        uow.commit()
    return view


def test_an_invitation_is_accepted_once_with_its_role_and_clients(store: Store) -> None:
    org = Org(store, "Acme Practice")
    issued = _invite(
        store, org, " Client.Owner@Example.com ", role=Role.VIEWER, client_limited=True, connection_ids=[org.clients[1]]
    )
    assert issued.invitation.email == "client.owner@example.com"
    with store.unit_of_work() as uow:
        stored = uow.session.scalars(select(Invitation)).one()
        assert issued.token not in (stored.token_hash, str(stored.connection_ids))  # only the hash is kept
        assert stored.token_hash == invitations.hash_token(issued.token)
        assert invitations.look_up(uow, issued.token, NOW).organization_name == "Acme Practice"
    # People have several addresses: whoever holds the link and is signed in joins.
    user_id = _new_user(store, "someone.else@example.com")
    view = _accept(store, issued.token, user_id, NOW + timedelta(days=1))
    assert (view.role, view.client_limited) == (Role.VIEWER, True)
    with store.unit_of_work() as uow:
        member = members.scope(uow, user_id, org.id)
        assert member is not None
        assert member.role is Role.VIEWER
        assert member.visible_connection_ids() == frozenset({org.clients[1]})
        assert invitations.pending(uow, org.id) == []
        kinds = [(entry.entity, entry.change) for entry in entries(uow, org.id)]
    assert ("invitation", "create") in kinds
    assert ("member", "create") in kinds
    with pytest.raises(InvitationError) as used:
        _accept(store, issued.token, _new_user(store, "third@example.com"))
    assert used.value.reason == "used"


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [("expire", "expired"), ("revoke", "revoked"), ("tamper", "unknown"), ("resend", "unknown")],
)
def test_a_spoiled_link_is_refused_with_its_reason(store: Store, spoil: str, reason: str) -> None:
    org = Org(store, "Acme Practice")
    issued = _invite(store, org, "new@example.com")
    token, at = issued.token, NOW
    if spoil == "expire":
        at = NOW + WEEK
    elif spoil == "revoke":
        with store.unit_of_work() as uow:
            invitations.revoke(
                uow,
                organization_id=org.id,
                invitation_id=issued.invitation.id,
                acting_user_id=org.users[Role.OWNER],
                now=NOW,
                actor="o",
            )
            uow.commit()
    elif spoil == "tamper":
        token = token[:-1] + ("A" if token[-1] != "A" else "B")
    else:  # a resent invitation has a new link; the old one stops working
        with store.unit_of_work() as uow:
            renewed = invitations.resend(
                uow,
                organization_id=org.id,
                invitation_id=issued.invitation.id,
                acting_user_id=org.users[Role.OWNER],
                now=NOW,
                valid_for=WEEK,
                actor="o",
            )
            uow.commit()
        assert renewed.token != token
    user_id = _new_user(store, "new@example.com")
    with pytest.raises(InvitationError) as refused:
        _accept(store, token, user_id, at)
    assert refused.value.reason == reason
    assert refused.value.user_message
    with store.unit_of_work() as uow:
        assert members.scope(uow, user_id, org.id) is None


@pytest.mark.parametrize("token", ["", "x" * 500, None, 12])
def test_hostile_tokens_name_no_invitation(store: Store, token: object) -> None:
    with store.unit_of_work() as uow, pytest.raises(InvitationError) as refused:
        invitations.look_up(uow, token, NOW)
    assert refused.value.reason == "unknown"


def test_members_and_bad_input_are_refused_and_a_second_invitation_renews_the_first(store: Store) -> None:
    org = Org(store, "Acme Practice")
    with pytest.raises(InvalidInput, match="already a member") as member:
        _invite(store, org, "ACME-VIEWER@example.com")
    assert member.value.field == "email"
    for bad in ("not an email", "a@b", "x" * 400 + "@example.com"):
        with pytest.raises(InvalidInput) as refused:
            _invite(store, org, bad)
        assert refused.value.field == "email"
    with pytest.raises(InvalidInput):
        _invite(store, org, "new@example.com", role="emperor")
    with pytest.raises(InvalidInput):
        _invite(store, org, "new@example.com", role=Role.OWNER, client_limited=True, connection_ids=[org.clients[0]])
    with pytest.raises(InvalidInput):
        _invite(store, org, "new@example.com", client_limited=True, connection_ids=[999_999])
    first = _invite(store, org, "new@example.com")
    second = _invite(store, org, "new@example.com", role=Role.ACCOUNTANT)
    assert first.invitation.id == second.invitation.id
    with store.unit_of_work() as uow:
        assert [view.role for view in invitations.pending(uow, org.id)] == [Role.ACCOUNTANT]
    # Already a member when accepting: refused, and the invitation stays usable for the right account.
    with pytest.raises(InvitationError) as already:
        _accept(store, second.token, org.users[Role.VIEWER])
    assert already.value.reason == "member"


def test_accountants_invite_only_to_their_clients_and_viewers_not_at_all(store: Store) -> None:
    org = Org(store, "Acme Practice")
    with pytest.raises(NotPermitted):
        _invite(store, org, "a@example.com", by=Role.VIEWER)
    with pytest.raises(NotPermitted):
        _invite(store, org, "a@example.com", by=Role.ACCOUNTANT)  # unlimited
    with pytest.raises(NotPermitted):
        _invite(store, org, "a@example.com", by=Role.ACCOUNTANT, client_limited=True, connection_ids=[org.clients[1]])
    with pytest.raises(NotPermitted):
        _invite(
            store, org, "a@example.com", by=Role.ACCOUNTANT, role=Role.OWNER, client_limited=False, connection_ids=[]
        )
    issued = _invite(
        store,
        org,
        "a@example.com",
        by=Role.ACCOUNTANT,
        role=Role.ACCOUNTANT,
        client_limited=True,
        connection_ids=[org.clients[0]],
    )
    assert issued.invitation.invited_by == "acme-accountant@example.com"
    # Another organization's owner can neither see nor revoke it.
    other = Org(store, "Other Books")
    with store.unit_of_work() as uow, pytest.raises(UnknownRecord):
        invitations.revoke(
            uow,
            organization_id=other.id,
            invitation_id=issued.invitation.id,
            acting_user_id=other.users[Role.OWNER],
            now=NOW,
            actor="x",
        )


def test_ownership_is_handed_over_or_shared_and_the_last_owner_stays(store: Store) -> None:
    org = Org(store, "Acme Practice")
    owner, accountant = org.users[Role.OWNER], org.users[Role.ACCOUNTANT]
    with store.unit_of_work() as uow, pytest.raises(NotPermitted):
        members.transfer_ownership(
            uow,
            organization_id=org.id,
            member_id=org.memberships[Role.VIEWER],
            acting_user_id=accountant,
            keep_owner=False,
            now=NOW,
            actor="a",
        )
    with store.unit_of_work() as uow:
        view = members.transfer_ownership(
            uow,
            organization_id=org.id,
            member_id=org.memberships[Role.ACCOUNTANT],
            acting_user_id=owner,
            keep_owner=False,
            now=NOW,
            actor="o",
        )
        uow.commit()
    assert (view.role, view.client_limited, view.connection_ids) == (Role.OWNER, False, ())
    with store.unit_of_work() as uow:
        assert uow.memberships.role(owner, org.id) is Role.ACCOUNTANT
        assert any(entry.change == "transfer" for entry in entries(uow, org.id))
    with store.unit_of_work() as uow:  # the new owner adds the viewer as a second owner and stays owner
        members.transfer_ownership(
            uow,
            organization_id=org.id,
            member_id=org.memberships[Role.VIEWER],
            acting_user_id=accountant,
            keep_owner=True,
            now=NOW,
            actor="a",
        )
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.memberships.role(accountant, org.id) is Role.OWNER
        assert uow.memberships.role(org.users[Role.VIEWER], org.id) is Role.OWNER
        with pytest.raises(InvalidInput):  # already an owner
            members.transfer_ownership(
                uow,
                organization_id=org.id,
                member_id=org.memberships[Role.VIEWER],
                acting_user_id=accountant,
                keep_owner=True,
                now=NOW,
                actor="a",
            )


def test_removing_a_member_ends_their_sessions(store: Store) -> None:
    org = Org(store, "Acme Practice")
    viewer = org.users[Role.VIEWER]
    with store.unit_of_work() as uow:
        before = uow.users.get(viewer).session_version  # type: ignore[union-attr]
        members.remove_member(
            uow,
            organization_id=org.id,
            member_id=org.memberships[Role.VIEWER],
            acting_user_id=org.users[Role.OWNER],
            now=NOW,
            actor="o",
        )
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.users.get(viewer).session_version != before  # type: ignore[union-attr]


def _shared_ledger(store: Store) -> tuple[Org, Org, int, int]:
    """Two organizations connected to one ledger: the first chases it, the second's is managed elsewhere."""
    managing, requesting = Org(store, "Acme Practice"), Org(store, "Bright Shop")
    with store.unit_of_work() as uow:
        chased = uow.connections.add(managing.id, "quickbooks", "shared-realm", "Bright Shop Ltd").id
        elsewhere = uow.connections.add(
            requesting.id, "quickbooks", "shared-realm", "Bright Shop Ltd", chasing=MANAGED_ELSEWHERE
        ).id
        uow.commit()
    return managing, requesting, chased, elsewhere


def _request(
    store: Store, requesting: Org, connection_id: int, by: Role = Role.OWNER
) -> access_requests.RequestOutcome:
    with store.unit_of_work() as uow:
        outcome = access_requests.request_membership(
            uow,
            organization_id=requesting.id,
            connection_id=connection_id,
            acting_user_id=requesting.users[by],
            now=NOW,
            actor="r",
        )
        uow.commit()
    return outcome


def _decide(
    store: Store, org: Org, request_id: int, approve: bool, by: Role = Role.OWNER
) -> access_requests.RequestOutcome:
    with store.unit_of_work() as uow:
        outcome = access_requests.decide(
            uow,
            organization_id=org.id,
            request_id=request_id,
            acting_user_id=org.users[by],
            approve=approve,
            now=NOW,
            actor="d",
        )
        uow.commit()
    return outcome


def test_an_approved_access_request_makes_the_requester_an_accountant_limited_to_that_client(store: Store) -> None:
    managing, requesting, chased, elsewhere = _shared_ledger(store)
    with pytest.raises(NotPermitted):
        _request(store, requesting, elsewhere, by=Role.ACCOUNTANT)
    with pytest.raises(InvalidInput):  # a client this organization chases itself: nothing to ask
        _request(store, requesting, requesting.clients[0])
    with pytest.raises(UnknownRecord):
        _request(store, requesting, chased)
    first = _request(store, requesting, elsewhere)
    again = _request(store, requesting, elsewhere)
    assert first.created
    assert not again.created
    assert first.request.id == again.request.id
    with store.unit_of_work() as uow:
        assert [view.id for view in access_requests.to_decide(uow, managing.id)] == [first.request.id]
        assert access_requests.owner_emails(uow, managing.id) == ["acme-owner@example.com"]
        assert access_requests.managed_elsewhere(uow, requesting.id) == [
            (elsewhere, "Bright Shop Ltd", "Acme Practice")
        ]
    with pytest.raises(NotPermitted):
        _decide(store, managing, first.request.id, True, by=Role.ACCOUNTANT)
    with pytest.raises(UnknownRecord):
        _decide(store, requesting, first.request.id, True)
    approved = _decide(store, managing, first.request.id, True)
    assert approved.created
    assert approved.request.state == "approved"
    assert not _decide(store, managing, first.request.id, True).created  # idempotent
    with pytest.raises(InvalidInput):
        _decide(store, managing, first.request.id, False)
    with store.unit_of_work() as uow:
        member = members.scope(uow, requesting.users[Role.OWNER], managing.id)
        assert member is not None
        assert member.role is Role.ACCOUNTANT
        assert member.visible_connection_ids() == frozenset({chased})
        assert any(entry.entity == "membership_request" for entry in entries(uow, requesting.id))
    with pytest.raises(InvalidInput, match="already see"):
        _request(store, requesting, elsewhere)


def test_a_declined_access_request_changes_nothing_but_the_record(store: Store) -> None:
    managing, requesting, _chased, elsewhere = _shared_ledger(store)
    declined = _decide(store, managing, _request(store, requesting, elsewhere).request.id, False)
    assert declined.request.state == "declined"
    with store.unit_of_work() as uow:
        assert members.scope(uow, requesting.users[Role.OWNER], managing.id) is None
        assert uow.session.scalars(select(Membership).where(Membership.organization_id == managing.id)).all()
        assert [view.state for view in access_requests.made_by(uow, requesting.id)] == ["declined"]

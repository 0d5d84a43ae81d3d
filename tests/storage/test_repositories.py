"""Repositories and the unit of work, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from connector.accounts.users import authenticate, create_user
from connector.domain.model import Role
from connector.storage import Store
from connector.storage.tables import Invoice


def test_unit_of_work_rolls_back_unless_committed(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.organizations.add("Forgotten Ltd")
    with store.unit_of_work() as uow:
        assert uow.organizations.by_name("Forgotten Ltd") is None
        uow.organizations.add("Kept Ltd")
        uow.commit()
    with store.unit_of_work() as uow:
        kept = uow.organizations.by_name("Kept Ltd")
        assert kept is not None
        assert kept.name == "Kept Ltd"


def test_unit_of_work_rolls_back_on_error(store: Store) -> None:
    def half_done() -> None:
        with store.unit_of_work() as uow:
            uow.organizations.add("Half Done")
            uow.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        half_done()
    with store.unit_of_work() as uow:
        assert uow.organizations.by_name("Half Done") is None


def test_users_authenticate_with_argon2(store: Store) -> None:
    with store.unit_of_work() as uow:
        user = create_user(uow, "  Ada@Example.COM ", "correct horse battery", "Ada")
        uow.commit()
        assert user.email == "ada@example.com"
        assert user.password_hash.startswith("$argon2id$")
        assert "correct horse" not in user.password_hash
    with store.unit_of_work() as uow:
        found = authenticate(uow, "ADA@example.com", "correct horse battery")
        assert found is not None
        assert found.id == user.id
        assert authenticate(uow, "ada@example.com", "wrong password!") is None
        assert authenticate(uow, "nobody@example.com", "correct horse battery") is None


def test_user_email_is_unique_and_validated(store: Store) -> None:
    with store.unit_of_work() as uow:
        create_user(uow, "ada@example.com", "correct horse battery")
        with pytest.raises(ValueError, match="already exists"):
            create_user(uow, "ADA@example.com", "another password!")
        with pytest.raises(ValueError, match="not an email"):
            create_user(uow, "not-an-email", "another password!")
        with pytest.raises(ValueError, match="at least"):
            create_user(uow, "bob@example.com", "short")


def test_memberships_and_organizations_for_user(store: Store) -> None:
    with store.unit_of_work() as uow:
        user = create_user(uow, "ada@example.com", "correct horse battery")
        beta = uow.organizations.add("Beta Books")
        alpha = uow.organizations.add("Alpha Accounting")
        other = uow.organizations.add("Other Org")
        uow.memberships.add(user.id, beta.id, Role.VIEWER)
        uow.memberships.add(user.id, alpha.id, Role.OWNER)
        uow.memberships.add(user.id, beta.id, Role.ACCOUNTANT)  # changing a role updates, never duplicates
        uow.commit()
        assert [(o.name, r) for o, r in uow.organizations.for_user(user.id)] == [
            ("Alpha Accounting", Role.OWNER),
            ("Beta Books", Role.ACCOUNTANT),
        ]
        assert uow.memberships.role(user.id, other.id) is None


def test_connections_are_scoped_to_their_organization(store: Store) -> None:
    with store.unit_of_work() as uow:
        a = uow.organizations.add("A")
        b = uow.organizations.add("B")
        conn = uow.connections.add(a.id, "quickbooks", "9130", "A's books")
        uow.commit()
        assert uow.connections.get(a.id, conn.id) is not None
        assert uow.connections.get(b.id, conn.id) is None
        assert [c.id for c in uow.connections.for_organization(a.id)] == [conn.id]
        assert uow.connections.for_organization(b.id) == []
        assert "tokens=<sealed>" in repr(conn)


def test_one_connection_per_organization_and_tenant(store: Store) -> None:
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        uow.connections.add(org.id, "xero", "tenant-1", "A")
        uow.commit()
    with store.unit_of_work() as uow, pytest.raises(IntegrityError):
        uow.connections.add(org.id, "xero", "tenant-1", "A again")


def test_invoices_keep_decimals_and_aware_times(store: Store) -> None:
    moment = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        conn = uow.connections.add(org.id, "quickbooks", "1", "A")
        uow.session.add(
            Invoice(
                connection_id=conn.id,
                external_id="130",
                number="1037",
                currency="BHD",
                total=Decimal("1234.567"),
                balance=Decimal("0.001"),
                due_date=date(2028, 2, 29),
                status="open",
                updated_at=moment,
            )
        )
        uow.commit()
    with store.unit_of_work() as uow:
        invoice = uow.session.scalars(select(Invoice)).one()
        assert invoice.total == Decimal("1234.567")
        assert invoice.balance == Decimal("0.001")
        assert invoice.due_date == date(2028, 2, 29)
        assert invoice.updated_at == moment
        assert invoice.updated_at.tzinfo is not None
        assert invoice.updated_at.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(store: Store) -> None:
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        conn = uow.connections.add(org.id, "quickbooks", "1", "A")
        conn.next_run_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC).replace(tzinfo=None)  # naive on purpose
        with pytest.raises(Exception, match="naive datetime"):
            uow.flush()


def test_activities_are_listed_newest_first(store: Store) -> None:
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        for n in range(3):
            uow.activities.record(org.id, "note", f"n{n}", at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n))
        uow.commit()
        assert [a.subject for a in uow.activities.for_organization(org.id)] == ["n2", "n1", "n0"]

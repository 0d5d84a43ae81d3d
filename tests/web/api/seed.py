"""Two organizations' worth of data for API tests that must see real rows (schemathesis, scoping checks).

Each organization gets an owner, an accountant and a client-limited viewer, two clients (connections) with
customers, invoices, outbox actions and tasks, an audit entry and API tokens. Organization B's rows use
ids from 400000 and every text of it carries the marker "zqbeta", so a response of organization A that
contains one of them is a leak: `foreign_ids` lists B's ids that no other organization's row shares.
Organization A's ids start at 800000, above B's, so rows a test creates later (max id + 1) never take an
id that B's rows of another table have.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, select

from connector.accounts import tokens
from connector.accounts.passwords import hash_password
from connector.domain.model import Role
from connector.storage import Store
from connector.storage.tables import (
    Action,
    ApiToken,
    AuditEntry,
    Base,
    Connection,
    Customer,
    Invoice,
    Membership,
    MembershipClient,
    Organization,
    Task,
    User,
)

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
MARKER_B = "zqbeta"
PASSWORD = "correct horse battery staple"


@functools.cache
def _password_hash() -> str:
    """One Argon2 hash for every seeded user: hashing is slow on purpose, and the seed runs once per operation."""
    return hash_password(PASSWORD)


@dataclass
class SeededOrg:
    """What was made for one organization (ids by kind) and the owner's API token."""

    org_id: int
    owner_user_id: int
    owner_email: str
    secret: str
    ids: dict[str, list[int]] = field(default_factory=dict)


def seed_organization(store: Store, prefix: str, base: int) -> SeededOrg:
    """One organization whose row ids start at `base` and whose texts start with `prefix`."""
    ids: dict[str, list[int]] = {}

    def note(kind: str, row_id: int) -> int:
        ids.setdefault(kind, []).append(row_id)
        return row_id

    with store.unit_of_work() as uow:
        session = uow.session
        org_id = note("organization", base)
        session.add(Organization(id=org_id, name=f"{prefix.title()} Books"))
        session.flush()
        roles = (Role.OWNER, Role.ACCOUNTANT, Role.VIEWER)
        for offset, role in enumerate(roles, start=1):
            user_id = note("user", base + offset)
            session.add(User(id=user_id, email=f"{role.value}@{prefix}.example", password_hash=_password_hash()))
            session.flush()
            session.add(
                Membership(
                    id=note("member", base + offset),
                    user_id=user_id,
                    organization_id=org_id,
                    role=role.value,
                    client_limited=role is Role.VIEWER,
                )
            )
        session.flush()
        for c in range(2):
            connection_id = note("connection", base + 10 + c)
            session.add(
                Connection(
                    id=connection_id,
                    organization_id=org_id,
                    provider="quickbooks",
                    tenant_id=f"{prefix}-realm-{c}",
                    name=f"{prefix} client {c}",
                    home_currency="GBP",
                )
            )
            session.flush()
            if c == 0:
                session.add(MembershipClient(membership_id=base + 3, connection_id=connection_id))
            for n in range(2):
                session.add(
                    Customer(
                        id=note("customer", base + 20 + 2 * c + n),
                        connection_id=connection_id,
                        external_id=f"{prefix}-cust-{c}-{n}",
                        name=f"{prefix} customer {c}-{n}",
                        emails=[f"ap{n}@{prefix}-customer.example"],
                    )
                )
            for n in range(3):
                due = date(2026, 11, 1) + timedelta(days=7 * n)
                session.add(
                    Invoice(
                        id=note("invoice", base + 40 + 3 * c + n),
                        connection_id=connection_id,
                        external_id=f"{prefix}-inv-{c}-{n}",
                        number=f"{prefix}-INV-{c}{n}",
                        customer_external_id=f"{prefix}-cust-{c}-{n % 2}",
                        customer_name=f"{prefix} customer {c}-{n % 2}",
                        currency="GBP",
                        total=Decimal("500.00"),
                        balance=Decimal("500.00") - 100 * n,
                        issue_date=due - timedelta(days=30),
                        due_date=due,
                        status="open",
                        updated_at=NOW - timedelta(days=1),
                        first_seen_at=NOW - timedelta(days=20),
                    )
                )
            for n, state in enumerate(("planned", "awaiting_approval", "uncertain")):
                session.add(
                    Action(
                        id=note("action", base + 60 + 3 * c + n),
                        key=f"{prefix}-key-{c}-{n}",
                        connection_id=connection_id,
                        kind="remind",
                        step="gentle-1",
                        invoice_external_id=f"{prefix}-inv-{c}-{n}",
                        customer_external_id=f"{prefix}-cust-{c}-{n % 2}",
                        state=state,
                        scheduled_at=NOW + timedelta(hours=n),
                        payload={},
                    )
                )
            session.add(
                Task(
                    id=note("task", base + 80 + c),
                    organization_id=org_id,
                    connection_id=connection_id,
                    kind="call",
                    customer_external_id=f"{prefix}-cust-{c}-0",
                    customer_name=f"{prefix} customer {c}-0",
                    invoice_external_ids=[f"{prefix}-inv-{c}-0"],
                    title=f"Call {prefix} customer {c}-0",
                    assignee_user_id=base + 2,
                    due_on=date(2026, 12, 1),
                )
            )
        session.add(
            AuditEntry(
                id=note("audit", base + 95),
                organization_id=org_id,
                connection_id=base + 10,
                actor=f"owner@{prefix}.example",
                at=NOW - timedelta(days=1),
                entity="client_settings",
                entity_id=str(base + 10),
                change="update",
                before={"approval_mode": False},
                after={"approval_mode": True},
            )
        )
        uow.commit()
    secrets = []
    for offset, name in ((90, "ci"), (91, "spare")):
        with store.unit_of_work() as uow:
            created = tokens.create(
                uow,
                user_id=base + 1,
                organization_id=org_id,
                name=f"{prefix} {name}",
                role=Role.OWNER,
                now=NOW,
                actor="seed",
            )
            uow.flush()
            row = uow.session.get(ApiToken, created.token.id)
            assert row is not None
            row.id = base + offset
            uow.commit()
        secrets.append(created.secret)
    # The "ci" token is the one tests call with; only the spare is offered to be revoked.
    ids["token"] = [base + 91]
    return SeededOrg(org_id, base + 1, f"owner@{prefix}.example", secrets[0], ids)


def seed_two_organizations(store: Store) -> tuple[SeededOrg, SeededOrg]:
    """Organization A (ids from 800000, texts "alpha") and organization B (ids from 400000, texts "zqbeta")."""
    beta = seed_organization(store, MARKER_B, 400000)
    return seed_organization(store, "alpha", 800000), beta


def _owner(table: Table, row: Any, connection_org: dict[int, int], user_orgs: dict[int, set[int]]) -> set[int]:
    """The organizations a row belongs to (empty: none known)."""
    if table.name == "organizations":
        return {row.id}
    if table.name == "users":
        return user_orgs.get(row.id, set())
    if "organization_id" in table.c and row.organization_id is not None:
        return {row.organization_id}
    if "connection_id" in table.c and row.connection_id in connection_org:
        return {connection_org[row.connection_id]}
    return set()


def foreign_ids(store: Store, org_id: int) -> set[int]:
    """Row ids of organization `org_id` in any table that no row of another organization has."""
    mine: set[int] = set()
    others: set[int] = set()
    with store.unit_of_work() as uow:
        connection_org = {c.id: c.organization_id for c in uow.session.scalars(select(Connection))}
        user_orgs: dict[int, set[int]] = {}
        for membership in uow.session.scalars(select(Membership)):
            user_orgs.setdefault(membership.user_id, set()).add(membership.organization_id)
        for table in Base.metadata.sorted_tables:
            if "id" not in table.c:
                continue
            for row in uow.session.execute(select(table)):
                owners = _owner(table, row, connection_org, user_orgs)
                (mine if owners == {org_id} else others).add(row.id)
    return mine - others

"""Repositories: the queries Nudge needs, grouped by table, over one SQLAlchemy session."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from connector.domain.model import ConnectionStatus, PaymentKind, PaymentSnapshot, Role
from connector.domain.money import Money
from connector.storage.tables import (
    Activity,
    Connection,
    Membership,
    OAuthPending,
    OidcNonce,
    Organization,
    Payment,
    User,
    UserIdentity,
)


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively and without surrounding blanks."""
    cleaned = email.strip().lower()
    if "@" not in cleaned or cleaned.startswith("@") or cleaned.endswith("@") or any(c.isspace() for c in cleaned):
        raise ValueError(f"not an email address: {email!r}")
    return cleaned


class Users:
    """Local accounts."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, email: str, password_hash: str, display_name: str = "") -> User:
        """New user with an already computed password hash; ValueError for a taken or invalid email.

        `connector.accounts.users.create_user` is the entry point that hashes the password.
        """
        address = normalize_email(email)
        if self.by_email(address) is not None:
            raise ValueError(f"a user with email {address} already exists")
        user = User(email=address, display_name=display_name, password_hash=password_hash)
        self.session.add(user)
        self.session.flush()
        return user

    def get(self, user_id: int) -> User | None:
        """The user with id `user_id`, or None."""
        return self.session.get(User, user_id)

    def by_email(self, email: str) -> User | None:
        """The user with this email address (normalized first), or None."""
        try:
            address = normalize_email(email)
        except ValueError:
            return None
        return self.session.scalars(select(User).where(User.email == address)).first()

    def by_identity(self, provider: str, subject: str) -> User | None:
        """The user who signs in through `provider` as `subject` (OpenID Connect `sub`), if any."""
        if not provider or not subject:
            return None
        return self.session.scalars(
            select(User).where(User.auth_provider == provider, User.auth_subject == subject)
        ).first()

    def add_external(self, email: str, display_name: str, provider: str, subject: str) -> User:
        """A user without a password who signs in through `provider`; ValueError if the email or identity is taken."""
        address = normalize_email(email)
        if not provider or not subject:
            raise ValueError("an external identity needs a provider and a subject")
        if self.by_email(address) is not None:
            raise ValueError(f"a user with email {address} already exists")
        if self.by_identity(provider, subject) is not None:
            raise ValueError(f"this {provider} identity already has a user")
        user = User(
            email=address,
            display_name=display_name[:200],
            password_hash="",  # never accepted by `authenticate` (verify_password refuses an empty hash)
            auth_provider=provider,
            auth_subject=subject,
        )
        self.session.add(user)
        self.session.flush()
        return user


class Organizations:
    """Organizations and who belongs to them."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, name: str) -> Organization:
        """Create an organization named `name` (stripped; must not be empty)."""
        if not name.strip():
            raise ValueError("organization name must not be empty")
        organization = Organization(name=name.strip())
        self.session.add(organization)
        self.session.flush()
        return organization

    def get(self, org_id: int) -> Organization | None:
        """The organization with id `org_id`, or None."""
        return self.session.get(Organization, org_id)

    def by_name(self, name: str) -> Organization | None:
        """The organization named `name` (stripped), or None."""
        return self.session.scalars(select(Organization).where(Organization.name == name.strip())).first()

    def for_user(self, user_id: int) -> list[tuple[Organization, Role]]:
        """The user's organizations with their role, by name."""
        rows = self.session.execute(
            select(Organization, Membership.role)
            .join(Membership, Membership.organization_id == Organization.id)
            .where(Membership.user_id == user_id)
            .order_by(Organization.name, Organization.id)
        ).all()
        return [(org, Role(role)) for org, role in rows]


class Memberships:
    """Roles of users in organizations; the membership check of every org-scoped route asks `role`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, user_id: int, org_id: int, role: Role) -> Membership:
        """Give the user `role` in the organization (updating the role of an existing membership)."""
        existing = self.session.scalars(
            select(Membership).where(Membership.user_id == user_id, Membership.organization_id == org_id)
        ).first()
        if existing is not None:
            existing.role = Role(role).value
            return existing
        membership = Membership(user_id=user_id, organization_id=org_id, role=Role(role).value)
        self.session.add(membership)
        self.session.flush()
        return membership

    def role(self, user_id: int, org_id: int) -> Role | None:
        """The user's role in the organization, or None when not a member."""
        value = self.session.scalars(
            select(Membership.role).where(Membership.user_id == user_id, Membership.organization_id == org_id)
        ).first()
        return Role(value) if value else None


class Connections:
    """Connected accounting files, always looked up within an organization."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def for_organization(self, org_id: int) -> list[Connection]:
        """The organization's connections, by name then id."""
        return list(
            self.session.scalars(
                select(Connection).where(Connection.organization_id == org_id).order_by(Connection.name, Connection.id)
            )
        )

    def get(self, org_id: int, connection_id: int) -> Connection | None:
        """The connection only if it belongs to `org_id` (never reveal another organization's)."""
        return self.session.scalars(
            select(Connection).where(Connection.id == connection_id, Connection.organization_id == org_id)
        ).first()

    def by_id(self, connection_id: int) -> Connection | None:
        """Unscoped look-up for background services (never for web routes)."""
        return self.session.get(Connection, connection_id)

    def by_tenant(self, org_id: int, provider: str, tenant_id: str) -> Connection | None:
        """The organization's connection to one tenant of a provider, or None."""
        return self.session.scalars(
            select(Connection).where(
                Connection.organization_id == org_id,
                Connection.provider == provider,
                Connection.tenant_id == tenant_id,
            )
        ).first()

    def with_tenant(self, provider: str, tenant_id: str) -> list[Connection]:
        """Every organization's connection to one tenant (webhooks name tenants, not organizations)."""
        return list(
            self.session.scalars(
                select(Connection).where(Connection.provider == provider, Connection.tenant_id == tenant_id)
            )
        )

    def mark_due(self, provider: str, tenant_id: str, by: datetime) -> int:
        """Make every connection to this tenant due no later than `by` (never later than already planned)."""
        count = 0
        for connection in self.with_tenant(provider, tenant_id):
            if connection.next_run_at is None or connection.next_run_at > by:
                connection.next_run_at = by
            count += 1
        return count

    def add(self, org_id: int, provider: str, tenant_id: str, name: str, **fields: object) -> Connection:
        """Create a connection of the organization to a provider's tenant."""
        connection = Connection(organization_id=org_id, provider=provider, tenant_id=tenant_id, name=name, **fields)
        self.session.add(connection)
        self.session.flush()
        return connection

    def all_sealed(self, after_id: int, limit: int) -> Sequence[Connection]:
        """Connections holding sealed tokens, by id, for key rotation in batches."""
        return self.session.scalars(
            select(Connection)
            .where(Connection.id > after_id, Connection.tokens_sealed != "")
            .order_by(Connection.id)
            .limit(limit)
        ).all()

    def lock(self, connection_id: int) -> Connection | None:
        """Re-read the row under a row lock (PostgreSQL FOR UPDATE; SQLite serializes writers anyway)."""
        return self.session.scalars(
            select(Connection)
            .where(Connection.id == connection_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()

    def claim_due(self, owner: str, now: datetime, lease: timedelta, limit: int) -> list[int]:
        """Lease up to `limit` active connections due at `now` to `owner`; returns their ids.

        PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent claimers never get the same row. SQLite runs
        a single worker; the conditional UPDATE still refuses a row whose lease is held.
        """
        free = or_(Connection.lease_until.is_(None), Connection.lease_until < now)
        due = and_(
            Connection.status == ConnectionStatus.ACTIVE.value,
            or_(Connection.next_run_at.is_(None), Connection.next_run_at <= now),
            free,
        )
        query = select(Connection.id).where(due).order_by(Connection.next_run_at, Connection.id).limit(limit)
        if self.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(self.session.scalars(query))
        if not ids:
            return []
        result = self.session.execute(
            update(Connection)
            .where(Connection.id.in_(ids), free)
            .values(lease_owner=owner, lease_until=now + lease)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != len(ids):  # type: ignore[attr-defined]
            # Another claimer slipped in on SQLite: keep only the rows that are ours now.
            return list(
                self.session.scalars(
                    select(Connection.id).where(Connection.id.in_(ids), Connection.lease_owner == owner)
                )
            )
        return ids

    def next_due_at(self, now: datetime) -> datetime | None:
        """The earliest instant an active connection nobody holds falls due (`now` if one already is); None if none.

        What a worker sleeps until when that comes before its next tick: a webhook's connection (due after the
        debounce) or the rest of a full batch is claimed then, not a whole tick later."""
        free = or_(Connection.lease_until.is_(None), Connection.lease_until < now)
        active = Connection.status == ConnectionStatus.ACTIVE.value
        unscheduled = self.session.scalars(
            select(Connection.id).where(active, free, Connection.next_run_at.is_(None)).limit(1)
        ).first()
        if unscheduled is not None:
            return now
        soonest = self.session.scalar(select(func.min(Connection.next_run_at)).where(active, free))
        return now if soonest is not None and soonest < now else soonest

    def release(self, connection_id: int, owner: str, next_run_at: datetime | None) -> bool:
        """Give up `owner`'s lease and set the next run; False if the lease was no longer ours."""
        result = self.session.execute(
            update(Connection)
            .where(Connection.id == connection_id, Connection.lease_owner == owner)
            .values(lease_owner="", lease_until=None, next_run_at=next_run_at)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


class Activities:
    """The append-only activity log."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def record(
        self,
        org_id: int,
        kind: str,
        subject: str = "",
        *,
        connection_id: int | None = None,
        detail: dict[str, object] | None = None,
        actor: str = "",
        at: datetime | None = None,
    ) -> Activity:
        """Append an activity to the organization's log (`at` defaults to now)."""
        activity = Activity(
            organization_id=org_id,
            connection_id=connection_id,
            kind=kind,
            subject=subject,
            detail=dict(detail or {}),
            actor=actor,
        )
        if at is not None:
            activity.at = at
        self.session.add(activity)
        return activity

    def for_organization(self, org_id: int, limit: int = 100) -> list[Activity]:
        """The organization's latest activities, newest first."""
        return list(
            self.session.scalars(
                select(Activity).where(Activity.organization_id == org_id).order_by(Activity.id.desc()).limit(limit)
            )
        )


class OAuthPendings:
    """OAuth round trips in progress (connector.connections.pending); built over a unit of work's session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, entry: OAuthPending) -> OAuthPending:
        """Store a new pending round trip."""
        self.session.add(entry)
        self.session.flush()
        return entry

    def by_state_hash(self, state_hash: str) -> OAuthPending | None:
        """The round trip whose `state` hashes to `state_hash`, or None."""
        return self.session.scalars(select(OAuthPending).where(OAuthPending.state_hash == state_hash)).first()

    def mark_used(self, entry_id: int, at: datetime) -> bool:
        """Use the entry once: True for the one caller that set `used_at`, False if it was already used."""
        result = self.session.execute(
            update(OAuthPending)
            .where(OAuthPending.id == entry_id, OAuthPending.used_at.is_(None))
            .values(used_at=at)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def purge(self, created_before: datetime) -> int:
        """Delete entries created before `created_before` (expired, used or not); how many."""
        result = self.session.execute(
            delete(OAuthPending)
            .where(OAuthPending.created_at < created_before)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


class Payments:
    """The ledgers' money movements per invoice (connector.domain.model.PaymentSnapshot), per connection."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def replace(
        self,
        connection_id: int,
        objects: dict[tuple[PaymentKind, str], list[PaymentSnapshot]],
        at: datetime,
    ) -> int:
        """Replace every stored row of each (kind, external id) with its current set ([] deletes them); rows written."""
        if not objects:
            return 0
        written = 0
        for (kind, external_id), snapshots in objects.items():
            self.session.execute(
                delete(Payment)
                .where(
                    Payment.connection_id == connection_id,
                    Payment.kind == PaymentKind(kind).value,
                    Payment.external_id == external_id,
                )
                .execution_options(synchronize_session=False)
            )
            merged: dict[str, PaymentSnapshot] = {}
            for snapshot in snapshots:
                known = merged.get(snapshot.invoice_external_id)
                # two lines of one object on one invoice add up (the unique key is per invoice)
                merged[snapshot.invoice_external_id] = (
                    snapshot
                    if known is None
                    else PaymentSnapshot(
                        known.external_id,
                        known.kind,
                        known.invoice_external_id,
                        known.customer_external_id,
                        known.amount + snapshot.amount,
                        min(known.paid_on, snapshot.paid_on),
                        known.voided and snapshot.voided,
                    )
                )
            for snapshot in merged.values():
                self.session.add(
                    Payment(
                        connection_id=connection_id,
                        kind=PaymentKind(kind).value,
                        external_id=external_id,
                        invoice_external_id=snapshot.invoice_external_id,
                        customer_external_id=snapshot.customer_external_id,
                        amount=snapshot.amount.amount,
                        currency=snapshot.amount.currency,
                        paid_on=snapshot.paid_on,
                        voided=snapshot.voided,
                        updated_at=at,
                    )
                )
                written += 1
        self.session.flush()
        return written

    def for_connection(self, connection_id: int, *, include_voided: bool = False) -> list[PaymentSnapshot]:
        """Every stored payment row of the connection (one query), oldest first."""
        query = select(Payment).where(Payment.connection_id == connection_id)
        if not include_voided:
            query = query.where(Payment.voided.is_(False))
        return [to_snapshot(row) for row in self.session.scalars(query.order_by(Payment.paid_on, Payment.id))]


def to_snapshot(row: Payment) -> PaymentSnapshot:
    """The domain view of a stored payment row."""
    return PaymentSnapshot(
        external_id=row.external_id,
        kind=PaymentKind(row.kind),
        invoice_external_id=row.invoice_external_id,
        customer_external_id=row.customer_external_id,
        amount=Money.of(row.amount, row.currency),
        paid_on=row.paid_on,
        voided=row.voided,
    )


def snapshots_of(rows: Iterable[Payment]) -> list[PaymentSnapshot]:
    """The domain view of stored payment rows."""
    return [to_snapshot(row) for row in rows]


class UserIdentities:
    """The external identities (provider, OpenID Connect `sub`) users sign in with, several per user."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def user_for(self, provider: str, subject: str) -> User | None:
        """The user who signs in through `provider` as `subject`: a linked identity, else the one signed up with."""
        if not provider or not subject:
            return None
        linked = self.session.scalars(
            select(User)
            .join(UserIdentity, UserIdentity.user_id == User.id)
            .where(UserIdentity.provider == provider, UserIdentity.subject == subject)
        ).first()
        return linked or Users(self.session).by_identity(provider, subject)

    def link(self, user_id: int, provider: str, subject: str, email: str = "") -> UserIdentity:
        """Attach the identity to the user; ValueError when it already belongs to someone (this user included)."""
        if not provider or not subject:
            raise ValueError("an external identity needs a provider and a subject")
        if self.user_for(provider, subject) is not None:
            raise ValueError(f"this {provider} identity already has a user")
        row = UserIdentity(user_id=user_id, provider=provider, subject=subject, email=email[:320])
        self.session.add(row)
        self.session.flush()
        return row

    def for_user(self, user_id: int) -> list[UserIdentity]:
        """The identities linked to a user (not counting the one in users.auth_provider)."""
        return list(self.session.scalars(select(UserIdentity).where(UserIdentity.user_id == user_id)))


class OidcNonces:
    """ID-token nonces already used (hashed), kept until they expire."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def consume(self, nonce_hash: str, provider: str, expires_at: datetime, now: datetime) -> bool:
        """Record a nonce's use; False when it was used before and has not expired (a replay).

        Expired rows are dropped first. The primary key makes two concurrent uses collide at flush: the
        loser gets an IntegrityError, which the caller treats as a replay too.
        """
        self.session.execute(delete(OidcNonce).where(OidcNonce.expires_at < now))
        if self.session.get(OidcNonce, nonce_hash) is not None:
            return False
        self.session.add(OidcNonce(nonce_hash=nonce_hash, provider=provider, expires_at=expires_at))
        self.session.flush()
        return True

"""Personal API tokens: created by a member for one organization, shown once, stored as a SHA-256 hash.

A token acts with its own role, but never with more than its member's current role: a member demoted
later demotes their tokens, and a member removed from the organization (or a deactivated user) makes
them stop working. Tokens are revocable; `last_used_at` is written at most once a minute per token so
busy API clients do not turn every read into a write. Creation and revocation are audit-logged.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from connector.accounts.members import lesser_role, role_at_most, scope
from connector.domain.model import Role
from connector.errors import InvalidInput, NotPermitted, UnknownRecord
from connector.library.audit import record
from connector.storage import UnitOfWork
from connector.storage.tables import ApiToken, User

SECRET_PREFIX = "nudge_"  # lets secret scanners (and people) recognise a Nudge token
PREFIX_LENGTH = 14  # SECRET_PREFIX and 8 random characters: enough to tell a member's tokens apart
NAME_MAX = 100
LAST_USED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class TokenView:
    """A token as its owner sees it in a list: never the secret."""

    id: int
    organization_id: int
    user_id: int
    name: str
    prefix: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class CreatedToken:
    """A new token and its secret, which is shown this once and never stored."""

    token: TokenView
    secret: str


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    """Who a presented token acts for: the user, the one organization, and the effective (capped) role."""

    token_id: int
    user_id: int
    email: str
    organization_id: int
    role: Role
    prefix: str


def hash_secret(secret: str) -> str:
    """The stored form of a secret (SHA-256, hex): tokens are long random strings, so no salt or stretching."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _view(row: ApiToken) -> TokenView:
    return TokenView(
        id=row.id,
        organization_id=row.organization_id,
        user_id=row.user_id,
        name=row.name,
        prefix=row.prefix,
        role=Role(row.role),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def _audit_state(view: TokenView) -> dict[str, object]:
    return {"name": view.name, "prefix": view.prefix, "role": view.role.value, "user_id": view.user_id}


def create(
    uow: UnitOfWork,
    *,
    user_id: int,
    organization_id: int,
    name: str,
    role: Role | str,
    now: datetime,
    actor: str,
) -> CreatedToken:
    """A new token of member `user_id` for `organization_id` (uncommitted); the secret is in the result only.

    InvalidInput("name"/"role") for a bad name or role; NotPermitted("role") for a role above the member's;
    UnknownRecord when `user_id` is not a member.
    """
    clean = name.strip() if isinstance(name, str) else ""
    if not clean or len(clean) > NAME_MAX or any(ord(char) < 32 or ord(char) == 127 for char in clean):
        raise InvalidInput(f"give the token a name of 1 to {NAME_MAX} printable characters", "name")
    try:
        wanted = Role(role)
    except ValueError:
        raise InvalidInput("role must be one of owner, accountant, viewer", "role") from None
    member = scope(uow, user_id, organization_id)
    if member is None:
        raise UnknownRecord("no such organization")
    if not role_at_most(wanted, member.role):
        raise NotPermitted(f"a token cannot have more than your role ({member.role.value})", "role")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        organization_id=organization_id,
        user_id=user_id,
        name=clean,
        token_hash=hash_secret(secret),
        prefix=secret[:PREFIX_LENGTH],
        role=wanted.value,
        created_at=now,
    )
    uow.session.add(row)
    uow.flush()
    view = _view(row)
    record(
        uow,
        organization_id=organization_id,
        actor=actor,
        at=now,
        entity="api_token",
        entity_id=row.id,
        change="create",
        before=None,
        after=_audit_state(view),
    )
    return CreatedToken(token=view, secret=secret)


def for_member(
    uow: UnitOfWork, user_id: int, organization_id: int, *, include_revoked: bool = False
) -> list[TokenView]:
    """The tokens member `user_id` made for `organization_id`, oldest first (revoked ones only when asked)."""
    query = select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.organization_id == organization_id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return [_view(row) for row in uow.session.scalars(query.order_by(ApiToken.id))]


def revoke(
    uow: UnitOfWork, *, user_id: int, organization_id: int, token_id: int, now: datetime, actor: str
) -> TokenView:
    """Revoke one of the member's own tokens (uncommitted); UnknownRecord when it is not theirs or already revoked."""
    row = uow.session.get(ApiToken, token_id)
    if row is None or row.user_id != user_id or row.organization_id != organization_id or row.revoked_at is not None:
        raise UnknownRecord("no such token", "token_id")
    before = _audit_state(_view(row))
    row.revoked_at = now
    record(
        uow,
        organization_id=organization_id,
        actor=actor,
        at=now,
        entity="api_token",
        entity_id=row.id,
        change="delete",
        before=before,
        after=None,
    )
    return _view(row)


def authenticate(uow: UnitOfWork, secret: str, now: datetime) -> TokenIdentity | None:
    """Who the presented `secret` acts for, or None (unknown, revoked, member gone, user deactivated).

    Touches `last_used_at` (at most once a minute); the caller commits.
    """
    if not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
        return None
    row = uow.session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_secret(secret))).one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    user = uow.session.get(User, row.user_id)
    member = scope(uow, row.user_id, row.organization_id)
    if user is None or not user.is_active or member is None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
        row.last_used_at = now
    return TokenIdentity(
        token_id=row.id,
        user_id=row.user_id,
        email=user.email,
        organization_id=row.organization_id,
        role=lesser_role(row.role, member.role),
        prefix=row.prefix,
    )

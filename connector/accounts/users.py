"""Local accounts: creating a user with a password, checking one at sign-in, changing it, ending sessions;
creating an organization (seeded with the install's starter library)."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.accounts import sessions
from connector.accounts.passwords import hash_password, verify_password
from connector.config import Settings
from connector.library.starter import ensure_library
from connector.storage import UnitOfWork
from connector.storage.repositories import normalize_email
from connector.storage.tables import Organization, User


def create_user(uow: UnitOfWork, email: str, password: str, display_name: str = "") -> User:
    """A new local user with an Argon2id hash; ValueError for a weak password, a bad or taken email."""
    return uow.users.add(email, hash_password(password), display_name)


def authenticate(uow: UnitOfWork, email: str, password: str) -> User | None:
    """The active user with these credentials, else None (same cost whether or not the user exists)."""
    user = uow.users.by_email(email)
    ok = verify_password(user.password_hash if user else None, password)
    return user if ok and user is not None and user.is_active else None


def end_sessions(uow: UnitOfWork, user_id: int, now: datetime | None = None) -> None:
    """End every session of the user, on every device: each session row is marked ended and the session version
    moves on (so a cookie from before per-session records signs nobody in either). Uncommitted."""
    user = uow.users.get(user_id)
    if user is not None:
        user.session_version = (user.session_version or 0) + 1
    sessions.end_all(uow, user_id, now or datetime.now(UTC))


def change_password(uow: UnitOfWork, user_id: int, current: str, new: str, now: datetime | None = None) -> None:
    """Set a new password (checked as at creation) after verifying the current one; ends every session.

    ValueError with a message for the user: a wrong current password or a refused new one.
    """
    user = uow.users.get(user_id)
    if user is None or not verify_password(user.password_hash, current):
        raise ValueError("the current password is not correct")
    user.password_hash = hash_password(new)
    end_sessions(uow, user_id, now)


def change_email(uow: UnitOfWork, user_id: int, password: str, new_email: str) -> str:
    """Give a password account a new address after checking its password; the address is unconfirmed until its
    link is used (send `connector.accounts.security.send_verification` next). Returns the old address.

    ValueError with a message for the user: a wrong password, an account without one, a bad or taken address.
    """
    user = uow.users.get(user_id)
    if user is None or not user.password_hash:
        raise ValueError("this account signs in through its provider, which owns its address: set a password first")
    if not verify_password(user.password_hash, password):
        raise ValueError("the password is not correct")
    address = normalize_email(new_email)
    if address == user.email:
        raise ValueError(f"{address} is already your address")
    if uow.users.by_email(address) is not None:
        raise ValueError(f"another account uses {address}")
    old, user.email, user.email_verified_at = user.email, address, None
    return old


def create_organization(uow: UnitOfWork, name: str, settings: Settings, now: datetime) -> Organization:
    """A new organization, its library seeded from the install's starter library (uncommitted)."""
    organization = uow.organizations.add(name)
    ensure_library(uow, organization.id, settings, now)
    return organization

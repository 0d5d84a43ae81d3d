"""Local accounts: creating a user with a password and checking one at sign-in."""

from __future__ import annotations

from connector.accounts.passwords import hash_password, verify_password
from connector.storage import UnitOfWork
from connector.storage.tables import User


def create_user(uow: UnitOfWork, email: str, password: str, display_name: str = "") -> User:
    """A new local user with an Argon2id hash; ValueError for a short password, a bad or taken email."""
    return uow.users.add(email, hash_password(password), display_name)


def authenticate(uow: UnitOfWork, email: str, password: str) -> User | None:
    """The active user with these credentials, else None (same cost whether or not the user exists)."""
    user = uow.users.by_email(email)
    ok = verify_password(user.password_hash if user else None, password)
    return user if ok and user is not None and user.is_active else None

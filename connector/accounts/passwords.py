"""Password hashing with Argon2id (argon2-cffi's recommended parameters) and the rules a new password meets.

A new password must be at least MIN_PASSWORD_LENGTH characters and must not be one of the 20,000 common
passwords bundled in common-passwords.txt (source and licence: common-passwords.md beside it).
"""

from __future__ import annotations

import functools
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
# Verified against when the user does not exist, so unknown emails cost the same time as bad passwords.
_DUMMY_HASH = _HASHER.hash("nudge-dummy-password")

MIN_PASSWORD_LENGTH = 10
COMMON_PASSWORDS = Path(__file__).resolve().parent / "common-passwords.txt"


@functools.cache
def common_passwords() -> frozenset[str]:
    """The bundled list of common passwords, lowercased (read once)."""
    with COMMON_PASSWORDS.open(encoding="utf-8") as lines:
        return frozenset(line.strip().lower() for line in lines if line.strip())


def check_password(password: str) -> None:
    """Raise ValueError, with a message a user can act on, unless `password` may be set."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if password.strip().lower() in common_passwords():
        raise ValueError(
            "this password is on a list of commonly used passwords that attackers try first; choose another"
        )


def hash_password(password: str) -> str:
    """Argon2id hash of `password`; ValueError for a password `check_password` refuses."""
    check_password(password)
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; an empty/unknown hash costs one verification and returns False."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False

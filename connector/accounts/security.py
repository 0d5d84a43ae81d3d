"""Emailed single-use links: password reset (30 minutes) and address checks (3 days).

A link carries `<row id>.<random secret>` (256 bits from `secrets`); only the SHA-256 of the whole token is
stored, so a database reader cannot use a pending link and a link changed in any character names no row.
Each link works once (`used_at`), expires, and a new link of the same purpose for the same user retires the
older ones. A reset sets the password (the rules of connector.accounts.passwords), ends every session and
counts as proof of the address. A check marks `users.email_verified_at` if the address is still the user's.

Decisions (docs/account-security.md): an account without a password (signed up through Intuit or Xero) may set
one through a reset link: the link proves the mailbox, which is what a provider's own reset proves too.
Unverified addresses are never used to link a provider identity to an existing account.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update

from connector.accounts.emails import send_account_email
from connector.accounts.passwords import hash_password
from connector.accounts.users import end_sessions
from connector.errors import NudgeError
from connector.mail.message import Mailer
from connector.storage import UnitOfWork
from connector.storage.tables import AccountToken, User

PASSWORD_RESET = "password-reset"
VERIFY_EMAIL = "verify-email"
VALID_FOR = {PASSWORD_RESET: timedelta(minutes=30), VERIFY_EMAIL: timedelta(days=3)}
TOKEN_MAX = 200  # a presented token longer than this was never ours


class LinkError(NudgeError):
    """An emailed link cannot be used (unknown, altered, expired or already used); nothing changed."""


def hash_token(token: str) -> str:
    """The stored form of a link's token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue(uow: UnitOfWork, user: User, purpose: str, now: datetime) -> str:
    """A new link token for `user` (uncommitted); older unused links of the same purpose stop working."""
    if purpose not in VALID_FOR:
        raise ValueError(f"unknown link purpose {purpose!r}")
    uow.session.execute(
        update(AccountToken)
        .where(AccountToken.user_id == user.id, AccountToken.purpose == purpose, AccountToken.used_at.is_(None))
        .values(used_at=now)
    )
    row = AccountToken(
        user_id=user.id,
        purpose=purpose,
        token_hash="",
        email=user.email,
        created_at=now,
        expires_at=now + VALID_FOR[purpose],
    )
    uow.session.add(row)
    uow.flush()
    token = f"{row.id}.{secrets.token_urlsafe(32)}"
    row.token_hash = hash_token(token)
    uow.flush()
    return token


def _usable(uow: UnitOfWork, token: str, purpose: str, now: datetime) -> tuple[AccountToken, User]:
    """The link's row and user, or LinkError saying why it cannot be used."""
    if not token or len(token) > TOKEN_MAX:
        raise LinkError("this link is not valid: copy the whole link from the email, or ask for a new one")
    row = uow.session.scalars(select(AccountToken).where(AccountToken.token_hash == hash_token(token))).first()
    user = uow.users.get(row.user_id) if row is not None and row.purpose == purpose else None
    if row is None or user is None or not user.is_active:
        raise LinkError("this link is not valid: copy the whole link from the email, or ask for a new one")
    if row.used_at is not None:
        raise LinkError("this link was already used (or a newer one was sent): ask for a new one")
    if now >= row.expires_at:
        raise LinkError("this link has expired: ask for a new one")
    if row.email != user.email:
        raise LinkError("this link was sent to an address the account no longer uses: ask for a new one")
    return row, user


def check_reset(uow: UnitOfWork, token: str, now: datetime) -> User:
    """The user a password reset link is for, or LinkError (nothing is used up: the form is still to come)."""
    return _usable(uow, token, PASSWORD_RESET, now)[1]


def reset_password(uow: UnitOfWork, token: str, new_password: str, now: datetime) -> User:
    """Use a reset link: set the password (ValueError for one the rules refuse, link left unused), end every
    session of the user, mark the address proven. LinkError for an unusable link. Uncommitted."""
    row, user = _usable(uow, token, PASSWORD_RESET, now)
    user.password_hash = hash_password(new_password)
    row.used_at = now
    if user.email_verified_at is None:
        user.email_verified_at = now  # the reset link reached this mailbox
    end_sessions(uow, user.id, now)
    return user


def verify_email(uow: UnitOfWork, token: str, now: datetime) -> User:
    """Use an address-check link: mark the user's address proven. LinkError for an unusable link. Uncommitted."""
    row, user = _usable(uow, token, VERIFY_EMAIL, now)
    row.used_at = now
    user.email_verified_at = now
    return user


def send_password_reset(uow: UnitOfWork, mailer: Mailer, user: User, base_url: str, now: datetime) -> None:
    """Issue a reset link for `user` and email it (AccountEmailError when the mailer refuses). Uncommitted."""
    token = issue(uow, user, PASSWORD_RESET, now)
    link = f"{base_url.rstrip('/')}/password/reset/{token}"
    text = (
        "Someone (we hope you) asked to reset the password of your Nudge account.\n\n"
        f"Choose a new password here (the link works once, for 30 minutes):\n{link}\n\n"
        "Setting a new password signs you out everywhere. If you did not ask for this, ignore this email: "
        "your password stays as it is.\n"
    )
    send_account_email(
        mailer,
        to=user.email,
        subject="Reset your Nudge password",
        text=text,
        kind=PASSWORD_RESET,
        key=token.partition(".")[0],
    )


def send_verification(uow: UnitOfWork, mailer: Mailer, user: User, base_url: str, now: datetime) -> None:
    """Issue an address-check link for `user` and email it to their current address (AccountEmailError when the
    mailer refuses). Uncommitted: commit after it, so a link is only kept when its email went out.

    Call it when a password account is created (CLI `users create`, sign-up by invitation) and when its
    address changes; `base_url` is the install's public address (`settings.web.base_url`)."""
    token = issue(uow, user, VERIFY_EMAIL, now)
    link = f"{base_url.rstrip('/')}/account/verify/{token}"
    text = (
        f"Please confirm that {user.email} is your address for Nudge by opening this link "
        f"(it works once, for 3 days):\n{link}\n\n"
        "If you did not sign up for Nudge, ignore this email.\n"
    )
    send_account_email(
        mailer,
        to=user.email,
        subject="Confirm your email address for Nudge",
        text=text,
        kind=VERIFY_EMAIL,
        key=token.partition(".")[0],
    )


def send_email_changed_notice(mailer: Mailer, old_email: str, new_email: str) -> None:
    """Tell the old address that the account moved to `new_email` (AccountEmailError when the mailer refuses)."""
    text = (
        f"The email address of your Nudge account was changed from {old_email} to {new_email}.\n\n"
        "If you did not do this, reset your password from the sign-in page at once, or ask your organization's "
        "owner for help.\n"
    )
    send_account_email(
        mailer,
        to=old_email,
        subject="Your Nudge email address was changed",
        text=text,
        kind="email-changed",
        key=hashlib.sha256(f"{old_email}>{new_email}".encode()).hexdigest()[:16],
    )

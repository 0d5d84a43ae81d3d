"""TOTP two-factor (RFC 6238, pyotp): enrolment, the sign-in check, recovery codes, disabling.

The secret is sealed by the vault (bound to the user, field "totp_secret") and never logged. Enrolment stores
the new secret at once but turns two-factor on only when a code from the app confirms it; the confirmation also
issues 10 single-use recovery codes, shown once and stored as their SHA-256. A code is accepted for its 30-second
step and the one either side (clock drift), and each step once: `totp_last_step` refuses a replayed code.
Disabling needs a current code (or a recovery code) or the password.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
from sqlalchemy import ColumnElement, Exists, delete, select
from sqlalchemy.orm import InstrumentedAttribute

from connector.accounts.passwords import verify_password
from connector.errors import NudgeError
from connector.storage import UnitOfWork
from connector.storage.tables import Membership, Organization, RecoveryCode, User
from connector.vault.keyring import Binding, Vault

ISSUER = "Nudge"
RECOVERY_CODES = 10
STEP_SECONDS = 30
DRIFT_STEPS = 1
CODE_MAX = 64  # a typed code longer than this is no code of ours
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper


class TwoFactorError(NudgeError):
    """A two-factor step was refused (wrong code, nothing to confirm, ...); nothing changed."""


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A secret waiting for its first code: what the authenticator app needs (shown on the enrol page only)."""

    secret: str
    uri: str


def _binding(user_id: int) -> Binding:
    return Binding(provider="account", connection_id=user_id, tenant_id="", field="totp_secret")


def is_enabled(user: User) -> bool:
    """True when the user confirmed two-factor (sign-in asks for a code)."""
    return user.totp_enabled_at is not None and bool(user.totp_secret_sealed)


def owner_rule_applies(user_id: ColumnElement[int] | InstrumentedAttribute[int] | int) -> Exists:
    """SQL: the user owns an organization that requires its owners to use two-factor (for use inside a query)."""
    return (
        select(Organization.id)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user_id, Membership.role == "owner", Organization.owners_need_two_factor)
        .exists()
    )


def required_for(uow: UnitOfWork, user_id: int) -> bool:
    """True when the user owns an organization that requires its owners to use two-factor."""
    return bool(uow.session.scalar(select(owner_rule_applies(user_id))))


def begin(uow: UnitOfWork, vault: Vault, user: User) -> Enrolment:
    """Start (or restart) enrolment: a new secret, sealed on the user; TwoFactorError if already on."""
    if is_enabled(user):
        raise TwoFactorError("two-factor is already on: turn it off first to use another app")
    secret = pyotp.random_base32()
    user.totp_secret_sealed = vault.seal(secret, _binding(user.id))
    user.totp_last_step = 0
    return Enrolment(secret, pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER))


def pending(vault: Vault, user: User) -> Enrolment | None:
    """The enrolment waiting for its first code, if any."""
    if is_enabled(user) or not user.totp_secret_sealed:
        return None
    secret = vault.open(user.totp_secret_sealed, _binding(user.id))
    return Enrolment(secret, pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER))


def _clean(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()[:CODE_MAX]


def _totp_step(vault: Vault, user: User, code: str, now: datetime) -> int | None:
    """The time step `code` belongs to (within the drift window, and after the last one used), else None."""
    digits = _clean(code)
    if not user.totp_secret_sealed or len(digits) != 6 or not digits.isdigit():
        return None
    totp = pyotp.TOTP(vault.open(user.totp_secret_sealed, _binding(user.id)))
    current = int(now.timestamp()) // STEP_SECONDS
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if step > (user.totp_last_step or 0) and secrets.compare_digest(totp.at(step * STEP_SECONDS), digits):
            return step
    return None


def hash_code(code: str) -> str:
    """The stored form of a recovery code (normalized: blanks, dashes and case do not matter)."""
    return hashlib.sha256(_clean(code).encode("utf-8")).hexdigest()


def _new_recovery_codes(uow: UnitOfWork, user_id: int, now: datetime) -> list[str]:
    uow.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    uow.session.add_all(RecoveryCode(user_id=user_id, code_hash=hash_code(code), created_at=now) for code in codes)
    uow.flush()
    return codes


def confirm(uow: UnitOfWork, vault: Vault, user: User, code: str, now: datetime) -> list[str]:
    """Turn two-factor on with the first code from the app; returns the 10 recovery codes (show them once)."""
    if is_enabled(user) or not user.totp_secret_sealed:
        raise TwoFactorError("there is no two-factor set-up waiting: start again")
    step = _totp_step(vault, user, code, now)
    if step is None:
        raise TwoFactorError("that code is not right: type the 6 digits your app shows now")
    user.totp_last_step = step
    user.totp_enabled_at = now
    return _new_recovery_codes(uow, user.id, now)


def check(uow: UnitOfWork, vault: Vault, user: User, code: str, now: datetime) -> bool:
    """The sign-in check: a current app code (each once) or an unused recovery code (used up). Uncommitted."""
    if not is_enabled(user):
        return False
    step = _totp_step(vault, user, code, now)
    if step is not None:
        user.totp_last_step = step
        return True
    if not _clean(code):
        return False
    row = uow.session.scalars(
        select(RecoveryCode).where(
            RecoveryCode.user_id == user.id, RecoveryCode.code_hash == hash_code(code), RecoveryCode.used_at.is_(None)
        )
    ).first()
    if row is None:
        return False
    row.used_at = now
    return True


def recovery_codes_left(uow: UnitOfWork, user_id: int) -> int:
    """How many recovery codes the user can still use."""
    return len(
        uow.session.scalars(
            select(RecoveryCode.id).where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        ).all()
    )


def disable(uow: UnitOfWork, vault: Vault, user: User, *, code: str = "", password: str = "", now: datetime) -> None:
    """Turn two-factor off (or drop a pending set-up) after a code or the password; TwoFactorError otherwise."""
    if is_enabled(user):
        proven = (bool(code) and check(uow, vault, user, code, now)) or (
            bool(password) and verify_password(user.password_hash or None, password)
        )
        if not proven:
            raise TwoFactorError("give a code from your app (or a recovery code) or your password to turn it off")
    user.totp_secret_sealed = ""
    user.totp_enabled_at = None
    user.totp_last_step = 0
    uow.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def owners_must_use_it(uow: UnitOfWork, org_id: int) -> bool:
    """The organization's rule: must its owners use two-factor?"""
    organization = uow.organizations.get(org_id)
    return bool(organization is not None and organization.owners_need_two_factor)


def require_for_owners(uow: UnitOfWork, org_id: int, required: bool) -> None:
    """Set the organization's rule (uncommitted); owners without two-factor are sent to enrol at their next page."""
    organization = uow.organizations.get(org_id)
    if organization is not None:
        organization.owners_need_two_factor = required

"""The web-side view of a signed-in user (Flask-Login's user object); the ORM model stays Flask-free."""

from __future__ import annotations

from flask_login import UserMixin  # type: ignore[import-untyped, unused-ignore]

from connector.storage.tables import User


class WebUser(UserMixin):
    """A detached copy of a `User` row: safe to keep after the unit of work is closed."""

    def __init__(
        self,
        user_id: int,
        email: str,
        display_name: str = "",
        active: bool = True,
        session_version: int = 0,
        *,
        session_public_id: str = "",
        has_password: bool = True,
        email_verified: bool = False,
        two_factor: bool = False,
        must_enroll: bool = False,
    ) -> None:
        self.user_id = user_id
        self.session_version = session_version
        self.email = email
        self.display_name = display_name
        self._active = active
        self.has_password = has_password
        self.email_verified = email_verified
        self.two_factor = two_factor
        # An owner of an organization that requires two-factor, without it: sent to enrol before anything else.
        self.must_enroll = must_enroll
        self.bind_session(session_public_id)

    def bind_session(self, public_id: str) -> None:
        """Name the session row (web.sessions) this user object signs in with.

        Flask-Login stores `id` in the cookie: the loader refuses it once the version moved on (a password change
        ends every session) or once that session's row is ended (sign-out, "sign out everywhere", removal)."""
        self.session_public_id = public_id
        self.id = f"{self.user_id}:{self.session_version}:{public_id}"

    @property
    def is_active(self) -> bool:
        return self._active

    @property
    def label(self) -> str:
        """What the navigation shows: the display name, else the email."""
        return self.display_name or self.email

    @property
    def needs_email_check(self) -> bool:
        """A password account whose address was never proven (the banner with "resend")."""
        return self.has_password and not self.email_verified

    @classmethod
    def from_model(cls, user: User, *, must_enroll: bool = False) -> WebUser:
        return cls(
            user.id,
            user.email,
            user.display_name or "",
            bool(user.is_active),
            user.session_version or 0,
            has_password=bool(user.password_hash),
            email_verified=user.email_verified_at is not None,
            two_factor=user.totp_enabled_at is not None and bool(user.totp_secret_sealed),
            must_enroll=must_enroll,
        )

    def __repr__(self) -> str:
        return f"WebUser(user_id={self.user_id})"

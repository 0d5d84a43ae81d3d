"""The web-side view of a signed-in user (Flask-Login's user object); the ORM model stays Flask-free."""

from __future__ import annotations

from flask_login import UserMixin  # type: ignore[import-untyped, unused-ignore]

from connector.storage.tables import User


class WebUser(UserMixin):
    """A detached copy of a `User` row: safe to keep after the unit of work is closed."""

    def __init__(
        self, user_id: int, email: str, display_name: str = "", active: bool = True, session_version: int = 0
    ) -> None:
        self.user_id = user_id
        self.session_version = session_version
        # Flask-Login stores this string in the session: the loader refuses it once the version moved on
        # (sign-out or a password change ends every session of the user, on every device).
        self.id = f"{user_id}:{session_version}"
        self.email = email
        self.display_name = display_name
        self._active = active

    @property
    def is_active(self) -> bool:
        return self._active

    @property
    def label(self) -> str:
        """What the navigation shows: the display name, else the email."""
        return self.display_name or self.email

    @classmethod
    def from_model(cls, user: User) -> WebUser:
        return cls(user.id, user.email, user.display_name or "", bool(user.is_active), user.session_version or 0)

    def __repr__(self) -> str:
        return f"WebUser(user_id={self.user_id})"

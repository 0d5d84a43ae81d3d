"""The web-side view of a signed-in user (Flask-Login's user object); the ORM model stays Flask-free."""

from __future__ import annotations

from flask_login import UserMixin  # type: ignore[import-untyped, unused-ignore]

from connector.storage.tables import User


class WebUser(UserMixin):
    """A detached copy of a `User` row: safe to keep after the unit of work is closed."""

    def __init__(self, user_id: int, email: str, display_name: str = "", active: bool = True) -> None:
        self.user_id = user_id
        self.id = str(user_id)  # Flask-Login stores this string in the session
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
        return cls(user.id, user.email, user.display_name or "", bool(user.is_active))

    def __repr__(self) -> str:
        return f"WebUser(user_id={self.user_id})"

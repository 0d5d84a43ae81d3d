"""The Flask extensions Nudge uses (bound in `create_app`) and access to the app's Services."""

from __future__ import annotations

from typing import cast

from flask import current_app
from flask_login import LoginManager  # type: ignore[import-untyped, unused-ignore]
from flask_wtf.csrf import CSRFProtect

from connector.bootstrap import Services

SERVICES_KEY = "nudge.services"

login_manager = LoginManager()
csrf = CSRFProtect()


def services() -> Services:
    """The Services of the app handling the current request."""
    return cast(Services, current_app.extensions[SERVICES_KEY])

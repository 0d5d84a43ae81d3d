"""Local accounts: sign in and sign out (Flask-Login over the storage layer's Argon2 hashes).

Failed sign-ins are throttled per account and per address (web.throttle: 429 before any hash is
checked). The session names the user and their session version; signing out bumps the version, so a
copy of the cookie taken before sign-out no longer signs anyone in (nor do the user's other sessions).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user  # type: ignore[import-untyped, unused-ignore]
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField  # type: ignore[import-untyped, unused-ignore]
from wtforms.validators import DataRequired, Length  # type: ignore[import-untyped, unused-ignore]

from connector.accounts.users import authenticate, end_sessions
from web.extensions import login_manager, services
from web.throttle import throttle
from web.users import WebUser

bp = Blueprint("auth", __name__)

# One message for an unknown email and a wrong password alike: never tell which.
INVALID_CREDENTIALS = "Invalid email or password."
THROTTLED = "Too many failed sign-in attempts. Wait a few minutes, then try again."
SIGNED_OUT = "You have been signed out."


class LoginForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class LogoutForm(FlaskForm):
    """No fields: only the CSRF token."""


@login_manager.user_loader
def load_user(user_id: str) -> WebUser | None:
    """The signed-in user from the session's "id:version"; None (signed out) if unknown, deactivated or ended."""
    ident, _, version = user_id.partition(":")
    if not ident.isdigit() or not version.isdigit():
        return None
    with services().store.unit_of_work() as uow:
        user = uow.users.get(int(ident))
        if user is None or not user.is_active or (user.session_version or 0) != int(version):
            return None
        return WebUser.from_model(user)


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(char) < 32 or ord(char) == 127 for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _authenticate(email: str, password: str) -> WebUser | None:
    with services().store.unit_of_work() as uow:
        user = authenticate(uow, email, password)
        return WebUser.from_model(user) if user is not None else None


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    next_url = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("home.index"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        email, address = form.email.data or "", request.remote_addr or ""
        verdict = throttle().check(email, address)
        if not verdict.allowed:
            page = render_template("auth/login.html", form=form, error=THROTTLED, next_url=next_url)
            return page, 429, {"Retry-After": str(verdict.retry_after)}
        user = _authenticate(email, form.password.data or "")
        if user is not None and user.is_active:
            session.clear()  # nothing from before sign-in survives it
            login_user(user)
            return redirect(next_url or url_for("home.index"))
        throttle().failed(email, address)
        error = INVALID_CREDENTIALS
    return render_template("auth/login.html", form=form, error=error, next_url=next_url)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    # CSRFProtect has already checked the token; the form is here for clarity and its own check.
    form = LogoutForm()
    if not form.validate_on_submit():
        return redirect(url_for("home.index"))
    if current_user.is_authenticated:
        with services().store.unit_of_work() as uow:
            end_sessions(uow, current_user.user_id)
            uow.commit()
    logout_user()
    session.clear()
    flash(SIGNED_OUT, "info")
    return redirect(url_for("auth.login"))

"""Local accounts: sign in and sign out (Flask-Login over the storage layer's Argon2 hashes)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user  # type: ignore[import-untyped, unused-ignore]
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField  # type: ignore[import-untyped, unused-ignore]
from wtforms.validators import DataRequired, Length  # type: ignore[import-untyped, unused-ignore]

from connector.accounts.users import authenticate
from web.extensions import login_manager, services
from web.users import WebUser

bp = Blueprint("auth", __name__)

# One message for an unknown email and a wrong password alike: never tell which.
INVALID_CREDENTIALS = "Invalid email or password."
SIGNED_OUT = "You have been signed out."


class LoginForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class LogoutForm(FlaskForm):
    """No fields: only the CSRF token."""


@login_manager.user_loader
def load_user(user_id: str) -> WebUser | None:
    """The signed-in user from the session's id; None (signed out) if unknown or deactivated."""
    if not user_id.isdigit():
        return None
    with services().store.unit_of_work() as uow:
        user = uow.users.get(int(user_id))
        if user is None or not user.is_active:
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
        user = _authenticate(form.email.data or "", form.password.data or "")
        if user is not None and user.is_active:
            session.clear()  # nothing from before sign-in survives it
            login_user(user)
            return redirect(next_url or url_for("home.index"))
        error = INVALID_CREDENTIALS
    return render_template("auth/login.html", form=form, error=error, next_url=next_url)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    # CSRFProtect has already checked the token; the form is here for clarity and its own check.
    form = LogoutForm()
    if not form.validate_on_submit():
        return redirect(url_for("home.index"))
    logout_user()
    session.clear()
    flash(SIGNED_OUT, "info")
    return redirect(url_for("auth.login"))

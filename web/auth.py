"""Local accounts: sign in (password, then a two-factor code when on) and sign out (Flask-Login over the storage
layer's Argon2 hashes).

Failed sign-ins and failed codes are throttled per account and per address (web.throttle: 429 before any hash or
code is checked). The cookie names the user, their session version and a session row (web.sessions); signing
out ends that row, so a copy of the cookie taken before sign-out no longer signs anyone in. "Sign out
everywhere" (web.account) and a password change or reset end every row and move the version on.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, logout_user  # type: ignore[import-untyped, unused-ignore]
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField  # type: ignore[import-untyped, unused-ignore]
from wtforms.validators import DataRequired, Length  # type: ignore[import-untyped, unused-ignore]

from connector.accounts import sessions, two_factor
from connector.accounts.users import authenticate
from web.extensions import login_manager, services
from web.sessions import PENDING_KEY, finish_sign_in, pending_user_id, start_session
from web.throttle import throttle
from web.users import WebUser

bp = Blueprint("auth", __name__)

# One message for an unknown email and a wrong password alike: never tell which.
INVALID_CREDENTIALS = "Invalid email or password."
THROTTLED = "Too many failed sign-in attempts. Wait a few minutes, then try again."
SIGNED_OUT = "You have been signed out."
WRONG_CODE = "That code is not right. Type the 6 digits your app shows now, or one of your recovery codes."
CODE_EXPIRED = "Your sign-in took too long. Sign in again."


class LoginForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class CodeForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired(), Length(max=64)])


class LogoutForm(FlaskForm):
    """No fields: only the CSRF token."""


@login_manager.user_loader
def load_user(user_id: str) -> WebUser | None:
    """The signed-in user from the cookie's "id:version:session"; None (signed out) if the user is unknown or
    deactivated, the version moved on, or the session row is missing or ended."""
    ident, _, rest = user_id.partition(":")
    version, _, public_id = rest.partition(":")
    if not ident.isdigit() or not version.isdigit() or len(ident) > 10 or not public_id:
        return None
    svc = services()
    with svc.store.unit_of_work() as uow:
        found = sessions.signed_in(uow, int(ident), public_id, svc.clock.now())
        if found is None:
            return None
        user = found.user
        if not user.is_active or (user.session_version or 0) != int(version):
            return None
        web_user = WebUser.from_model(user, must_enroll=found.owner_rule and not two_factor.is_enabled(user))
        uow.commit()  # last_seen_at, at most once a minute
    web_user.bind_session(public_id)
    return web_user


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
            return start_session(user, next_url)
        throttle().failed(email, address)
        error = INVALID_CREDENTIALS
    return render_template("auth/login.html", form=form, error=error, next_url=next_url)


def _code_key(user_id: int) -> str:
    """The throttle's account key for two-factor codes (apart from the email key of passwords)."""
    return f"two-factor:{user_id}"


@bp.route("/login/two-factor", methods=["GET", "POST"], endpoint="two_factor")
def two_factor_step() -> ResponseReturnValue:
    """The second step of sign-in: a code from the authenticator app, or a recovery code (each works once)."""
    svc = services()
    pending = pending_user_id(svc.clock.now())
    if pending is None:
        if session.pop(PENDING_KEY, None) is not None:
            flash(CODE_EXPIRED, "info")
        return redirect(url_for("auth.login"))
    user_id, version, next_url = pending
    form = CodeForm()
    error = None
    if form.validate_on_submit():
        address = request.remote_addr or ""
        verdict = throttle().check(_code_key(user_id), address)
        if not verdict.allowed:
            page = render_template("auth/two_factor.html", form=form, error=THROTTLED)
            return page, 429, {"Retry-After": str(verdict.retry_after)}
        with svc.store.unit_of_work() as uow:
            user = uow.users.get(user_id)
            ok = (
                user is not None
                and user.is_active
                and (user.session_version or 0) == version
                and two_factor.check(uow, svc.vault, user, form.code.data or "", svc.clock.now())
            )
            web_user = WebUser.from_model(user) if ok and user is not None else None
            uow.commit()  # the step or recovery code is used up
        if web_user is not None:
            finish_sign_in(web_user)
            return redirect(safe_next(next_url) or url_for("home.index"))
        throttle().failed(_code_key(user_id), address)
        error = WRONG_CODE
    return render_template("auth/two_factor.html", form=form, error=error)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    # CSRFProtect has already checked the token; the form is here for clarity and its own check.
    form = LogoutForm()
    if not form.validate_on_submit():
        return redirect(url_for("home.index"))
    if current_user.is_authenticated:
        svc = services()
        with svc.store.unit_of_work() as uow:
            row_id = sessions.session_id_of(uow, current_user.session_public_id)
            if row_id is not None:
                sessions.end(uow, current_user.user_id, row_id, svc.clock.now())
            uow.commit()
    logout_user()
    session.clear()
    flash(SIGNED_OUT, "info")
    return redirect(url_for("auth.login"))

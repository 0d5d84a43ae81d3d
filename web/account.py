"""The signed-in person's own account: sessions, two-factor, address check; and password reset by email.

- `GET /account`: the account (email and whether it is proven, two-factor, sessions), with links.
- `GET /account/sessions`: each open session (device from its user agent, address, created, last seen, "this
  session"); `POST /account/sessions/<session_id>/end` signs one out; `POST /account/sessions/end-all` signs out
  everywhere (every other session and this one; the version moves on too).
- `GET /account/two-factor`: on or off; `POST .../begin` starts enrolment (QR code as inline SVG, the secret as
  text), `POST .../confirm` turns it on with a code and shows the 10 recovery codes once, `POST .../disable` turns
  it off with a code or the password.
- `POST /account/verify/resend` sends a new address-check link; `GET /account/verify/<token>` uses one (signed in
  or not: the link is the proof).
- `GET/POST /password/forgot`: always the same answer ("if an account exists, we sent a link"), throttled per
  email and per address; `GET/POST /password/reset/<token>`: a new password, every session ended.

`init_app` installs the rule "owners of an organization that requires two-factor enrol before anything else".
Decisions and their reasons: docs/account-security.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import segno
from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required, logout_user  # type: ignore[import-untyped, unused-ignore]
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField  # type: ignore[import-untyped, unused-ignore]
from wtforms.validators import DataRequired, Length  # type: ignore[import-untyped, unused-ignore]

from connector.accounts import security, sessions, two_factor
from connector.accounts.emails import AccountEmailError
from connector.accounts.users import change_email, change_password, end_sessions
from connector.errors import NudgeError
from connector.storage import UnitOfWork
from connector.storage.tables import User
from connector.vault import redaction
from web.extensions import SERVICES_KEY, services
from web.throttle import LoginThrottle
from web.wording import sentence

log = logging.getLogger(__name__)

bp = Blueprint("account", __name__)

RESET_THROTTLE_KEY = "nudge.reset_throttle"
# Every request counts (not only failures): each one may send an email.
RESET_LIMIT_PER_ACCOUNT = "3 per 15 minutes; 10 per day"
RESET_LIMIT_PER_ADDRESS = "10 per 15 minutes; 50 per day"
RESET_SENT = (
    "If an account exists for that address, we have sent it a link to choose a new password. "
    "The link works once, for 30 minutes. Check your spam folder if nothing arrives."
)
RESET_THROTTLED = "Too many reset requests. Wait a few minutes, then try again."
PASSWORD_SET = "Your new password is set and every session was signed out. Sign in with it."
VERIFY_SENT = "We sent a new confirmation link to {email}. It works once, for 3 days."
VERIFY_DONE = "Thank you: your email address is confirmed."
VERIFY_FAILED = "We could not send the email just now. Try again in a few minutes."
T = TypeVar("T")
ENROL_FIRST = "An organization you own requires two-factor sign-in: set it up to continue."
# A form sent back with its errors is the page itself (200): browsers log any 4xx page as a failed load.
FORM_ERRORS = 200
LINK_REFUSED = 400

# Where an owner who must enrol may still go: enrolment itself, signing out, their sessions, static files.
ENROL_ALLOWED = frozenset(
    {
        "account.two_factor",
        "account.begin_two_factor",
        "account.confirm_two_factor",
        "account.sessions_page",
        "account.end_session",
        "account.end_all_sessions",
        "account.verify",
        "account.resend_verification",
        "account.index",
        "account.change_password_view",
        "auth.logout",
        "auth.login",
        "static",
    }
)


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)])
    password = PasswordField("New password", validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField("New password again", validators=[DataRequired(), Length(max=1024)])


class EmailForm(FlaskForm):
    email = StringField("New email address", validators=[DataRequired(), Length(max=320)])
    current = PasswordField("Your password", validators=[DataRequired(), Length(max=1024)])


class ForgotForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired(), Length(max=320)])


class ResetForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField("New password again", validators=[DataRequired(), Length(max=1024)])


class CodeForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired(), Length(max=64)])


class DisableForm(FlaskForm):
    code = StringField("Code from your app, or a recovery code", validators=[Length(max=64)])
    password = PasswordField("Or your password", validators=[Length(max=1024)])


def reset_throttle() -> LoginThrottle:
    """The reset-request throttle of the current app (same storage as the sign-in throttle)."""
    found: LoginThrottle = current_app.extensions[RESET_THROTTLE_KEY]
    return found


def init_app(app: Flask) -> None:
    """The reset-request throttle and the "owners enrol in two-factor first" rule."""
    storage_uri = app.extensions[SERVICES_KEY].settings.web.ratelimit_storage_uri
    app.extensions[RESET_THROTTLE_KEY] = LoginThrottle(storage_uri, RESET_LIMIT_PER_ACCOUNT, RESET_LIMIT_PER_ADDRESS)
    app.before_request(_enrol_first)


def _enrol_first() -> ResponseReturnValue | None:
    if request.endpoint in ENROL_ALLOWED or request.endpoint is None:
        return None
    if request.path.startswith("/api/") or not current_user.is_authenticated:
        return None
    if not getattr(current_user, "must_enroll", False):
        return None
    flash(ENROL_FIRST, "info")
    return redirect(url_for("account.two_factor"), 303)


# -- the account page -------------------------------------------------------------------------------------------


def _render_index(
    *,
    password_form: PasswordForm | None = None,
    email_form: EmailForm | None = None,
    status: int = 200,
    password_error: str = "",
    email_error: str = "",
) -> ResponseReturnValue:
    with services().store.unit_of_work() as uow:
        count = len(sessions.open_sessions(uow, current_user.user_id))
        codes_left = two_factor.recovery_codes_left(uow, current_user.user_id) if current_user.two_factor else 0
    page = render_template(
        "account/index.html",
        session_count=count,
        codes_left=codes_left,
        password_form=password_form or PasswordForm(formdata=None),
        email_form=email_form or EmailForm(formdata=None),
        password_error=password_error,
        email_error=email_error,
    )
    return page, status


@bp.get("/account")
@login_required
def index() -> ResponseReturnValue:
    """The signed-in person's account."""
    return _render_index()


@bp.post("/account/password")
@login_required
def change_password_view() -> ResponseReturnValue:
    """A new password after the current one; every session ends, this one too (sign in with the new one)."""
    form = PasswordForm()
    if not form.validate_on_submit():
        return _render_index(password_form=form, status=FORM_ERRORS)
    if form.password.data != form.confirm.data:
        return _render_index(password_form=form, password_error="The two new passwords are not the same.")
    svc = services()
    try:
        with svc.store.unit_of_work() as uow:
            change_password(
                uow, current_user.user_id, form.current.data or "", form.password.data or "", svc.clock.now()
            )
            uow.commit()
    except ValueError as exc:
        return _render_index(password_form=form, password_error=sentence(str(exc)), status=FORM_ERRORS)
    logout_user()
    flash(PASSWORD_SET, "success")
    return redirect(url_for("auth.login"), 303)


@bp.post("/account/email")
@login_required
def change_email_view() -> ResponseReturnValue:
    """A new address after the password; a confirmation link goes to it and a notice to the old one."""
    form = EmailForm()
    if not form.validate_on_submit():
        return _render_index(email_form=form, status=FORM_ERRORS)
    svc = services()
    try:
        with svc.store.unit_of_work() as uow:
            old = change_email(uow, current_user.user_id, form.current.data or "", form.email.data or "")
            user = uow.users.get(current_user.user_id)
            assert user is not None  # change_email found it
            security.send_verification(uow, svc.account_mailer(), user, svc.settings.web.base_url, svc.clock.now())
            new = user.email
            uow.commit()
    except ValueError as exc:
        return _render_index(email_form=form, email_error=sentence(str(exc)), status=FORM_ERRORS)
    except AccountEmailError as exc:
        log.warning("address change not made, confirmation not sent: %s", exc.user_message)
        return _render_index(email_form=form, email_error=VERIFY_FAILED, status=FORM_ERRORS)
    try:
        security.send_email_changed_notice(svc.account_mailer(), old, new)
    except AccountEmailError as exc:
        log.warning("notice of an address change not sent: %s", exc.user_message)
    flash(VERIFY_SENT.format(email=new), "success")
    return redirect(url_for("account.index"), 303)


# -- sessions ---------------------------------------------------------------------------------------------------


@bp.get("/account/sessions")
@login_required
def sessions_page() -> ResponseReturnValue:
    """Every open session of the signed-in person."""
    with services().store.unit_of_work() as uow:
        rows = sessions.open_sessions(uow, current_user.user_id)
        mine = sessions.session_id_of(uow, current_user.session_public_id)
    listed = [(row, sessions.describe_device(row.user_agent), row.id == mine) for row in rows]
    return render_template("account/sessions.html", sessions=listed)


@bp.post("/account/sessions/<int:session_id>/end")
@login_required
def end_session(session_id: int) -> ResponseReturnValue:
    """Sign one of your sessions out (this one too: then you are signed out here)."""
    svc = services()
    with svc.store.unit_of_work() as uow:
        mine = sessions.session_id_of(uow, current_user.session_public_id)
        ended = sessions.end(uow, current_user.user_id, session_id, svc.clock.now())
        uow.commit()
    if ended and session_id == mine:
        logout_user()
        flash("You have been signed out.", "info")
        return redirect(url_for("auth.login"), 303)
    flash("That session is signed out." if ended else "That session had already ended.", "info")
    return redirect(url_for("account.sessions_page"), 303)


@bp.post("/account/sessions/end-all")
@login_required
def end_all_sessions() -> ResponseReturnValue:
    """Sign out everywhere: every session of yours, this one included."""
    svc = services()
    with svc.store.unit_of_work() as uow:
        end_sessions(uow, current_user.user_id, svc.clock.now())
        uow.commit()
    logout_user()
    flash("You have been signed out everywhere.", "info")
    return redirect(url_for("auth.login"), 303)


# -- two-factor -------------------------------------------------------------------------------------------------


def _qr_svg(uri: str) -> str:
    """The enrolment QR code as a data: URI (the CSP allows images from data:)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=4, border=2))


def _render_two_factor(
    *, enrolment: two_factor.Enrolment | None = None, codes: list[str] | None = None, error: str = "", status: int = 200
) -> ResponseReturnValue:
    svc = services()
    with svc.store.unit_of_work() as uow:
        user = uow.users.get(current_user.user_id)
        enabled = user is not None and two_factor.is_enabled(user)
        if enrolment is None and user is not None and not codes:
            enrolment = two_factor.pending(svc.vault, user)
        left = two_factor.recovery_codes_left(uow, current_user.user_id) if enabled else 0
        required = two_factor.required_for(uow, current_user.user_id)
    return (
        render_template(
            "account/two_factor.html",
            enabled=enabled,
            enrolment=enrolment,
            qr=_qr_svg(enrolment.uri) if enrolment is not None else "",
            codes=codes or [],
            codes_left=left,
            required=required,
            error=error,
            code_form=CodeForm(),
            disable_form=DisableForm(),
        ),
        status,
    )


@bp.get("/account/two-factor", endpoint="two_factor")
@login_required
def two_factor_page() -> ResponseReturnValue:
    """Two-factor on or off; a pending enrolment's QR code."""
    return _render_two_factor()


@bp.post("/account/two-factor/begin")
@login_required
def begin_two_factor() -> ResponseReturnValue:
    """Start enrolment: a new secret (the page shows it and its QR code until a code confirms it)."""
    return _with_two_factor(
        lambda uow, user: two_factor.begin(uow, services().vault, user),
        lambda enrolment: _render_two_factor(enrolment=enrolment),
    )


def _with_two_factor(
    change: Callable[[UnitOfWork, User], T], answer: Callable[[T], ResponseReturnValue]
) -> ResponseReturnValue:
    """Make one two-factor change to the signed-in user and commit it; a refusal is the page with its reason."""
    try:
        with services().store.unit_of_work() as uow:
            user = uow.users.get(current_user.user_id)
            if user is None:
                return redirect(url_for("auth.login"))
            result = change(uow, user)
            uow.commit()
    except two_factor.TwoFactorError as exc:
        return _render_two_factor(error=sentence(exc.user_message), status=FORM_ERRORS)
    return answer(result)


@bp.post("/account/two-factor/confirm")
@login_required
def confirm_two_factor() -> ResponseReturnValue:
    """Turn two-factor on with the app's first code; the recovery codes are shown this once."""
    form = CodeForm()
    if not form.validate_on_submit():
        return _render_two_factor(error="Type the 6 digits your app shows.", status=FORM_ERRORS)
    svc = services()

    def turned_on(codes: list[str]) -> ResponseReturnValue:
        flash("Two-factor sign-in is on.", "success")
        return _render_two_factor(codes=codes)

    return _with_two_factor(
        lambda uow, user: two_factor.confirm(uow, svc.vault, user, form.code.data or "", svc.clock.now()), turned_on
    )


@bp.post("/account/two-factor/disable")
@login_required
def disable_two_factor() -> ResponseReturnValue:
    """Turn two-factor off (a code or the password proves it is you)."""
    form = DisableForm()
    if not form.validate_on_submit():
        return _render_two_factor(error="The form expired: try again.", status=FORM_ERRORS)
    svc = services()

    def turned_off(_: None) -> ResponseReturnValue:
        flash("Two-factor sign-in is off.", "info")
        return redirect(url_for("account.two_factor"), 303)

    return _with_two_factor(
        lambda uow, user: two_factor.disable(
            uow, svc.vault, user, code=form.code.data or "", password=form.password.data or "", now=svc.clock.now()
        ),
        turned_off,
    )


# -- the address check ------------------------------------------------------------------------------------------


@bp.post("/account/verify/resend")
@login_required
def resend_verification() -> ResponseReturnValue:
    """Send a new address-check link to the signed-in person's address."""
    svc = services()
    try:
        with svc.store.unit_of_work() as uow:
            user = uow.users.get(current_user.user_id)
            if user is None:
                return redirect(url_for("auth.login"))
            if user.email_verified_at is not None:
                flash(VERIFY_DONE, "info")
                return redirect(url_for("account.index"), 303)
            security.send_verification(uow, svc.account_mailer(), user, svc.settings.web.base_url, svc.clock.now())
            uow.commit()
            email = user.email
    except AccountEmailError as exc:
        log.warning("address check not sent: %s", exc.user_message)
        flash(VERIFY_FAILED, "error")
        return redirect(url_for("account.index"), 303)
    flash(VERIFY_SENT.format(email=email), "success")
    return redirect(url_for("account.index"), 303)


@bp.get("/account/verify/<token>")
def verify(token: str) -> ResponseReturnValue:
    """Use an address-check link."""
    redaction.register_secret(token)  # the access log line of this request must not carry it
    svc = services()
    try:
        with svc.store.unit_of_work() as uow:
            security.verify_email(uow, token, svc.clock.now())
            uow.commit()
    except security.LinkError as exc:
        return _link_refused("This confirmation link cannot be used", exc, url_for("account.index"))
    flash(VERIFY_DONE, "success")
    return redirect(url_for("account.index") if current_user.is_authenticated else url_for("auth.login"), 303)


# -- password reset ---------------------------------------------------------------------------------------------


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot() -> ResponseReturnValue:
    """Ask for a reset link: the same answer whether or not the address has an account."""
    form = ForgotForm()
    if not form.validate_on_submit():
        return render_template("auth/forgot.html", form=form, sent=False)
    email, address = (form.email.data or "").strip(), request.remote_addr or ""
    verdict = reset_throttle().check(email, address)
    if not verdict.allowed:
        page = render_template("auth/forgot.html", form=form, sent=False, error=RESET_THROTTLED)
        return page, 429, {"Retry-After": str(verdict.retry_after)}
    reset_throttle().failed(email, address)  # every request counts: each may send an email
    svc = services()
    try:
        with svc.store.unit_of_work() as uow:
            user = uow.users.by_email(email)
            if user is not None and user.is_active:
                security.send_password_reset(
                    uow, svc.account_mailer(), user, svc.settings.web.base_url, svc.clock.now()
                )
                uow.commit()
    except AccountEmailError as exc:
        # Same answer to the browser (it must not learn whether the address has an account); the operator sees it.
        log.warning("password reset email not sent: %s", exc.user_message)
    return render_template("auth/forgot.html", form=ForgotForm(formdata=None), sent=True)


def _link_refused(title: str, exc: NudgeError, again_url: str) -> ResponseReturnValue:
    page = render_template("auth/link_refused.html", title=title, message=sentence(exc.user_message), again=again_url)
    return page, LINK_REFUSED


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset(token: str) -> ResponseReturnValue:
    """Choose a new password with a reset link; every session ends."""
    redaction.register_secret(token)  # the access log line of this request must not carry it
    svc = services()
    try:
        with svc.store.unit_of_work() as uow:
            security.check_reset(uow, token, svc.clock.now())
    except security.LinkError as exc:
        return _link_refused("This reset link cannot be used", exc, url_for("account.forgot"))
    form = ResetForm()
    error = ""
    if form.validate_on_submit():
        if form.password.data != form.confirm.data:
            error = "The two passwords are not the same."
        else:
            try:
                with svc.store.unit_of_work() as uow:
                    security.reset_password(uow, token, form.password.data or "", svc.clock.now())
                    uow.commit()
            except security.LinkError as exc:
                return _link_refused("This reset link cannot be used", exc, url_for("account.forgot"))
            except ValueError as exc:
                error = sentence(str(exc))
            else:
                if current_user.is_authenticated:
                    logout_user()
                flash(PASSWORD_SET, "success")
                return redirect(url_for("auth.login"), 303)
    status = FORM_ERRORS
    return render_template("auth/reset.html", form=form, error=error, token=token), status

"""Accepting an invitation (connector.accounts.invitations), signed in or not.

- `GET /invitations/<token>` (no sign-in needed): who invited you to which organization with which role, or why the
  link does not work (unknown or changed, withdrawn, used, expired). The token is kept in
  `session["pending_invitation"]`; a signed-in person goes straight on to `invitations.accept`. Someone signed out
  may sign in with their password (the login page's `?next=` brings them back here: signing in clears the session,
  this page puts the token back), create a password account for the invited address, or sign in with a provider
  (`signup.signin`; that callback sends them to `invitations.accept` while `pending_invitation` is set).
- `GET /invitations/accept`: "Join <organization> as <role>", saying which account is signed in and, when it is
  another address than the invitation's, both ("You are signed in as X; the invitation was sent to Y"): people have
  several addresses, and whoever holds the link and accepts it while signed in joins.
- `POST /invitations/accept`: joins, forgets the token and lands on the organization.
- `POST /invitations/register`: a password account for the invited address (the link proves it is theirs), signed
  in at once, then on to `invitations.accept`.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user  # type: ignore[import-untyped, unused-ignore]
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField  # type: ignore[import-untyped, unused-ignore]
from wtforms.validators import DataRequired, EqualTo, Length  # type: ignore[import-untyped, unused-ignore]

from connector.accounts import invitations
from connector.accounts.invitations import InvitationError, InvitationView
from connector.accounts.passwords import check_password
from connector.accounts.users import create_user
from connector.domain.model import Role
from web.extensions import services
from web.sessions import start_session
from web.users import WebUser

bp = Blueprint("invitations", __name__)

SESSION_KEY = "pending_invitation"
STATUS = {"unknown": 404, "revoked": 410, "used": 410, "expired": 410, "member": 409}
ROLE_WORDS = {
    Role.OWNER: "an owner (everything, including members and disconnecting clients)",
    Role.ACCOUNTANT: "an accountant (works the clients: settings, approvals, tasks)",
    Role.VIEWER: "a viewer (looks, changes nothing)",
}


class RegisterForm(FlaskForm):
    display_name = StringField("Your name (optional)", validators=[Length(max=200)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField(
        "Password again", validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")]
    )


class AcceptForm(FlaskForm):
    """No fields: only the CSRF token."""


def _refused(error: InvitationError) -> ResponseReturnValue:
    session.pop(SESSION_KEY, None)
    return render_template("invitations/invalid.html", message=error.user_message), STATUS.get(error.reason, 400)


def _look_up(token: object) -> InvitationView:
    svc = services()
    with svc.store.unit_of_work() as uow:
        return invitations.look_up(uow, token, svc.clock.now())


def _client_names(view: InvitationView) -> list[str]:
    with services().store.unit_of_work() as uow:
        found = [uow.connections.get(view.organization_id, cid) for cid in view.connection_ids]
    return [connection.name or connection.tenant_id for connection in found if connection is not None]


def _page(template: str, view: InvitationView, token: str, **extra: object) -> str:
    return render_template(
        template,
        invitation=view,
        token=token,
        role_words=ROLE_WORDS[view.role],
        client_names=_client_names(view) if view.client_limited else [],
        **extra,
    )


@bp.get("/invitations/<token>")
def show(token: str) -> ResponseReturnValue:
    """The invitation, and the ways to sign in to accept it."""
    try:
        view = _look_up(token)
    except InvitationError as exc:
        return _refused(exc)
    session[SESSION_KEY] = token
    if current_user.is_authenticated:
        return redirect(url_for("invitations.accept"))
    with services().store.unit_of_work() as uow:
        has_account = uow.users.by_email(view.email) is not None
    return _page(
        "invitations/show.html",
        view,
        token,
        form=RegisterForm(),
        has_account=has_account,
        login_url=url_for("auth.login", next=url_for("invitations.show", token=token)),
    )


@bp.post("/invitations/register")
def register() -> ResponseReturnValue:
    """A password account for the invited address, signed in at once."""
    token = session.get(SESSION_KEY)
    try:
        view = _look_up(token)
    except InvitationError as exc:
        return _refused(exc)
    assert isinstance(token, str)  # _look_up refuses anything else
    if current_user.is_authenticated:
        return redirect(url_for("invitations.accept"), 303)
    form = RegisterForm()
    login_url = url_for("auth.login", next=url_for("invitations.show", token=token))
    error = ""
    if form.validate_on_submit():
        try:
            check_password(form.password.data or "")
            with services().store.unit_of_work() as uow:
                if uow.users.by_email(view.email) is not None:
                    raise ValueError(f"{view.email} already has an account: sign in with it instead")
                user = create_user(uow, view.email, form.password.data or "", (form.display_name.data or "").strip())
                user.email_verified_at = services().clock.now()  # the invitation link reached this mailbox
                uow.commit()
                signed_in = WebUser.from_model(user)
        except ValueError as exc:
            error = str(exc)[:1].upper() + str(exc)[1:] + ("" if str(exc).endswith(".") else ".")
        else:
            response = start_session(signed_in, url_for("invitations.accept"), 303)  # clears the session ...
            session[SESSION_KEY] = token  # ... but for the invitation being accepted
            return response
    page = _page(
        "invitations/show.html", view, token, form=form, has_account=False, login_url=login_url, register_error=error
    )
    return page, 200


@bp.route("/invitations/accept", methods=["GET", "POST"])
def accept() -> ResponseReturnValue:
    """GET: "Join <organization> as <role>"; POST: join, and land on the organization."""
    token = session.get(SESSION_KEY)
    if not token:
        return render_template(
            "invitations/invalid.html",
            message="There is no invitation waiting here. Open the link from your invitation email again.",
        ), 404
    if not current_user.is_authenticated:
        return redirect(url_for("invitations.show", token=token))
    svc = services()
    form = AcceptForm()
    if not form.validate_on_submit():
        try:
            view = _look_up(token)
        except InvitationError as exc:
            return _refused(exc)
        other_address = view.email.lower() != str(current_user.email).lower()
        return _page(
            "invitations/accept.html",
            view,
            token,
            form=form,
            other_address=other_address,
        )
    try:
        with svc.store.unit_of_work() as uow:
            view = invitations.accept(
                uow, token=token, user_id=current_user.user_id, now=svc.clock.now(), actor=str(current_user.email)
            )
            uow.commit()
    except InvitationError as exc:
        if exc.reason == "member":
            session.pop(SESSION_KEY, None)
            flash(exc.user_message, "info")
            return redirect(url_for("home.index"), 303)
        return _refused(exc)
    session.pop(SESSION_KEY, None)
    flash(f"Welcome to {view.organization_name}: you joined as {ROLE_WORDS[view.role]}.", "success")
    return redirect(url_for("home.organization", org_id=view.organization_id), 303)

""" "Sign up / Sign in with Xero" and "with Intuit" (OpenID Connect), generic over providers with `identify`.

`GET /signup/<provider>` shows a page with one button (a CSRF-protected POST starts the round trip);
the login page links "Sign in with <provider>" to `/signin/<provider>`. Both keep a
pending entry server-side, bound to this browser (state, PKCE verifier, nonce, mode; `web.oauth_flow`), and
come back to `/signup/<provider>/callback`, which uses the entry up before any call to the provider and
hands the rest to `connector.accounts.signup`.
The redirect URI is the configured one's host with that path, or the provider
option `signup_redirect_uri` (it must be registered with the provider, beside the connect callback).

When the provider verified an email that belongs to an existing Nudge account, the callback keeps the identity
in the session (`PENDING_LINK_KEY`, 10 minutes) and `/signup/link` asks for that account's password (or, signed
in as that user, a confirmation) before linking it. When `session["pending_invitation"]` is set at the start (the
invitations view set it), only identity scopes are asked for, no organization is created, and the callback hands
over to `invitations.accept` (which pops the key).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from typing import Any
from urllib.parse import urljoin

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user  # type: ignore[import-untyped, unused-ignore]
from flask_wtf import FlaskForm
from wtforms import PasswordField  # type: ignore[import-untyped, unused-ignore]
from wtforms.validators import Length  # type: ignore[import-untyped, unused-ignore]

from connector.accounts.signup import (
    LinkRequired,
    PendingLink,
    SignupError,
    begin_signup,
    complete_identity,
    complete_signin,
    complete_signup,
    link_identity,
    supports_signup,
)
from connector.accounts.users import authenticate
from connector.connections import pending
from connector.errors import NudgeError
from connector.ports import ProviderSettings, ProviderSpec
from web import oauth_flow
from web.connections import connected_message
from web.extensions import services
from web.oauth_flow import PendingError, PendingFlow, redirect_page
from web.sessions import start_session
from web.throttle import throttle
from web.users import WebUser
from web.wording import sentence

bp = Blueprint("signup", __name__)
log = logging.getLogger(__name__)

SIGNUP, SIGNIN, INVITE = "signup", "signin", "invite"
PENDING_INVITATION_KEY = "pending_invitation"  # set and popped by web.invitations (the teams feature)
PENDING_LINK_KEY = "nudge.pending_link"
LINK_TTL_S = 600


class LinkForm(FlaskForm):
    password = PasswordField("Password", validators=[Length(max=1024)])


def _provider(key: str) -> tuple[ProviderSpec, ProviderSettings]:
    """The configured provider `key` that can identify users, with the sign-up redirect URI; else 404."""
    registry = services().registry
    if key not in registry or not supports_signup(registry.spec(key)):
        abort(404)
    settings = registry.settings(key)
    redirect_uri = str(settings.options.get("signup_redirect_uri") or "") or urljoin(
        settings.redirect_uri, f"/signup/{key}/callback"
    )
    return registry.spec(key), replace(settings, redirect_uri=redirect_uri)


def signin_providers() -> list[tuple[str, str]]:
    """(key, display name) of the configured providers offering "Sign in/up with ..." (for templates)."""
    registry = services().registry
    specs = [registry.spec(key) for key in registry.keys()]  # noqa: SIM118 - Registry is not iterable
    return [(spec.key, _identity_name(spec)) for spec in specs if supports_signup(spec)]


def _identity_name(spec: ProviderSpec) -> str:
    """Whose account the button signs in with: "Intuit" for QuickBooks, "Xero" for Xero."""
    return spec.identity_name or spec.display_name


def _pending_invitation() -> str:
    value = session.get(PENDING_INVITATION_KEY)
    return value if isinstance(value, str) and value else ""


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {"signin_providers": signin_providers}


def _failure(title: str, message: str, status: int = 400) -> ResponseReturnValue:
    return render_template("signup/error.html", title=title, message=message), status


def _start(key: str, mode: str) -> ResponseReturnValue:
    spec, settings = _provider(key)
    if _pending_invitation():
        mode = INVITE  # an invitation gives the organization: identity scopes only, nothing created but the user
    try:
        authorization = begin_signup(spec, settings, sign_in_only=mode in (SIGNIN, INVITE))
    except NudgeError as exc:
        log.warning("could not start %s with %s: %s", mode, key, exc.user_message)
        return _failure(f"Could not start signing in with {_identity_name(spec)}", sentence(exc.user_message), 502)
    oauth_flow.remember(
        PendingFlow(
            provider=key,
            purpose=pending.SIGNUP,
            state=authorization.state,
            verifier=authorization.code_verifier,
            nonce=authorization.nonce,
            context={"mode": mode},
        )
    )
    return redirect_page(authorization.url, spec.display_name)


@bp.get("/signup/<provider>")
def signup_page(provider: str) -> ResponseReturnValue:
    """The "Sign up with <provider>" page; a signed-in user is sent to connect it from the dashboard instead."""
    spec, _settings = _provider(provider)
    if current_user.is_authenticated:
        return redirect(url_for("connections.launch", provider=spec.key))
    return render_template(
        "signup/signup.html",
        provider_key=spec.key,
        provider_name=spec.display_name,
        identity_name=_identity_name(spec),
        launched=request.args.get("launched") == "1",
    )


@bp.post("/signup/<provider>")
def signup(provider: str) -> ResponseReturnValue:
    spec, _settings = _provider(provider)
    if current_user.is_authenticated:
        return redirect(url_for("connections.launch", provider=spec.key), 303)
    return _start(provider, SIGNUP)


@bp.post("/signin/<provider>")
def signin(provider: str) -> ResponseReturnValue:
    """The login page's "Sign in with <provider>" button (a CSRF-protected POST): identity scopes only.

    Starting a round trip stores a pending entry, so a GET never starts one (no GET changes anything,
    and a link on another site cannot fill the table).
    """
    _provider(provider)
    if current_user.is_authenticated:
        return redirect(url_for("home.index"), 303)
    return _start(provider, SIGNIN)


@bp.get("/signup/<provider>/callback")
def callback(provider: str) -> ResponseReturnValue:
    spec, settings = _provider(provider)
    name = _identity_name(spec)
    try:
        flow = oauth_flow.take(spec, pending.SIGNUP)
    except PendingError as exc:
        log.info("%s sign-in callback refused: %s", provider, exc.user_message)
        return _failure(f"Signing in with {name} not completed", sentence(exc.user_message))
    if current_user.is_authenticated:
        return _failure(
            f"Signing in with {name} not completed",
            f"You are already signed in. Nothing was created; connect {spec.display_name} from your dashboard instead.",
        )
    mode = flow.context.get("mode")
    args = (
        request.args.to_dict(),
        flow.state,
        flow.verifier,
        flow.nonce,
        services().clock.now(),
    )
    try:
        user_id, org_id, message = _complete(str(mode), spec, settings, args)
    except LinkRequired as exc:
        log.info("%s with %s needs linking to an existing account", mode, provider)
        session[PENDING_LINK_KEY] = {
            **asdict(exc.link),
            "mode": str(mode),
            "expires": services().clock.now().timestamp() + LINK_TTL_S,
        }
        return redirect(url_for("signup.link"), 303)
    except SignupError as exc:
        log.info("%s with %s not completed: %s", mode, provider, exc.user_message)
        return _failure(f"Could not sign in with {name}", sentence(exc.user_message))
    except NudgeError as exc:
        log.warning("%s with %s failed: %s", mode, provider, exc.user_message)
        return _failure(f"Could not sign in with {name}", sentence(exc.user_message), 502)
    response = _sign_in(user_id, org_id, message)
    return response or _failure(f"Could not sign in with {name}", "This account cannot sign in.")


def _complete(
    mode: str, spec: ProviderSpec, settings: ProviderSettings, args: tuple[Any, ...]
) -> tuple[int, int | None, str]:
    """Finish the round trip for `mode`: (user id, organization to land on, message to flash)."""
    store = services().store
    if mode == INVITE:
        return complete_identity(store, spec, settings, *args).user_id, None, ""
    if mode == SIGNIN:
        return complete_signin(store, spec, settings, *args), None, ""
    result = complete_signup(store, services().vault, spec, settings, *args, starter=services().settings)
    if not result.created:
        message = f"You already have a Nudge account with this {_identity_name(spec)} user: you are signed in."
        return result.user_id, result.org_id, message
    message = " ".join(
        [f"Welcome to Nudge. Created {result.org_name}."] + [connected_message(file) for file in result.connections]
    )
    return result.user_id, None, message  # home shows the new organization


def _sign_in(user_id: int, org_id: int | None, message: str = "") -> ResponseReturnValue | None:
    """Sign `user_id` in through `web.sessions.start_session` (a session row; the two-factor step when it is on),
    then on to the invitation being accepted, else the organization the launch named, else home (None: this
    account cannot sign in). Only the pending invitation survives the fresh session (the invitations view pops it).
    """
    with services().store.unit_of_work() as uow:
        user = uow.users.get(user_id)
        web_user = WebUser.from_model(user) if user is not None else None
    if web_user is None or not web_user.is_active:
        return None
    invitation = _pending_invitation()
    response = start_session(web_user, _next_url(invitation, org_id), 303)
    if invitation:
        session[PENDING_INVITATION_KEY] = invitation
    if message:
        flash(message, "info")
    return response


def _sign_in_then(user_id: int, next_url: str, message: str) -> ResponseReturnValue | None:
    """Sign in (as `_sign_in`) and go on to `next_url` (after linking during a sign-up: connect the company)."""
    with services().store.unit_of_work() as uow:
        user = uow.users.get(user_id)
        web_user = WebUser.from_model(user) if user is not None else None
    if web_user is None or not web_user.is_active:
        return None
    response = start_session(web_user, next_url, 303)
    flash(message, "info")
    return response


def _next_url(invitation: str, org_id: int | None) -> str | None:
    """An invitation being accepted goes on to it; else the organization the launch named, else home (None)."""
    if invitation:
        if "invitations.accept" in current_app.view_functions:
            return url_for("invitations.accept")
        log.warning("a pending invitation but no invitations.accept view: sent home")
    if org_id is not None:
        return url_for("home.organization", org_id=org_id)
    return None


def _pending_link() -> tuple[PendingLink, str] | None:
    """The identity waiting to be linked in this session (and its round trip's mode), unless expired or malformed."""
    value = session.get(PENDING_LINK_KEY)
    if not isinstance(value, dict):
        return None
    try:
        expires = float(value["expires"])
        link = PendingLink(
            provider=str(value["provider"]),
            subject=str(value["subject"]),
            email=str(value["email"]),
            name=str(value["name"]),
            user_id=int(value["user_id"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    if expires < services().clock.now().timestamp() or link.provider not in services().registry:
        return None
    return link, str(value.get("mode", ""))


@bp.route("/signup/link", methods=["GET", "POST"])
def link() -> ResponseReturnValue:
    """ "Link this Intuit identity to your Nudge account": the account's password (or, signed in as that user, a
    confirmation) before the verified identity is attached to it."""
    found = _pending_link()
    if found is None:
        session.pop(PENDING_LINK_KEY, None)
        return _failure("Nothing to link", "No sign-in is waiting to be linked, or it expired. Start again.")
    pending_link, mode = found
    spec = services().registry.spec(pending_link.provider)
    signed_in_as_owner = current_user.is_authenticated and current_user.user_id == pending_link.user_id
    form = LinkForm()
    error = ""
    status = 200
    if form.validate_on_submit():
        verdict = throttle().check(pending_link.email, request.remote_addr or "")
        if not verdict.allowed:
            error, status = "Too many failed attempts. Wait a few minutes, then try again.", 429
        elif signed_in_as_owner or _password_ok(pending_link, form.password.data or ""):
            try:
                link_identity(services().store, pending_link, pending_link.user_id, services().clock.now())
            except SignupError as exc:
                session.pop(PENDING_LINK_KEY, None)
                return _failure(f"Could not link {_identity_name(spec)}", sentence(exc.user_message))
            session.pop(PENDING_LINK_KEY, None)
            linked = f"Linked: you can now sign in with {_identity_name(spec)}."
            response = (
                _sign_in_then(pending_link.user_id, url_for("connections.launch", provider=spec.key), linked)
                if mode == SIGNUP
                else _sign_in(pending_link.user_id, None, linked)
            )
            return response or _failure(f"Could not link {_identity_name(spec)}", "This account cannot sign in.")
        else:
            throttle().failed(pending_link.email, request.remote_addr or "")
            error, status = "That password is not right for this account.", 400
    page = render_template(
        "signup/link.html",
        form=form,
        email=pending_link.email,
        identity_name=_identity_name(spec),
        signed_in_as_owner=signed_in_as_owner,
        error=error,
    )
    return page, status


def _password_ok(pending_link: PendingLink, password: str) -> bool:
    with services().store.unit_of_work() as uow:
        user = authenticate(uow, pending_link.email, password)
        return user is not None and user.id == pending_link.user_id

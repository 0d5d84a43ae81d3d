""" "Sign up with Xero" and "Sign in with Xero" (OpenID Connect), generic over providers with `identify`.

`GET /signup/<provider>` shows a page with one button (a CSRF-protected POST starts the round trip);
the login page links "Sign in with <provider>" to `/signin/<provider>`. Both keep a
pending entry server-side, bound to this browser (state, PKCE verifier, nonce, mode; `web.oauth_flow`), and
come back to `/signup/<provider>/callback`, which uses the entry up before any call to the provider and
hands the rest to `connector.accounts.signup`.
The redirect URI is the configured one's host with that path, or the provider
option `signup_redirect_uri` (it must be registered with the provider, beside the connect callback).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any
from urllib.parse import urljoin

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user  # type: ignore[import-untyped, unused-ignore]

from connector.accounts.signup import SignupError, begin_signup, complete_signin, complete_signup, supports_signup
from connector.connections import pending
from connector.errors import NudgeError
from connector.ports import ProviderSettings, ProviderSpec
from web import oauth_flow
from web.connections import connected_message
from web.extensions import services
from web.oauth_flow import PendingError, PendingFlow, redirect_page
from web.users import WebUser

bp = Blueprint("signup", __name__)
log = logging.getLogger(__name__)

SIGNUP, SIGNIN = "signup", "signin"


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
    return [(spec.key, spec.display_name) for spec in specs if supports_signup(spec)]


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {"signin_providers": signin_providers}


def _failure(title: str, message: str, status: int = 400) -> ResponseReturnValue:
    return render_template("signup/error.html", title=title, message=message), status


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]) if text else "Something went wrong."


def _start(key: str, mode: str) -> ResponseReturnValue:
    spec, settings = _provider(key)
    try:
        authorization = begin_signup(spec, settings, sign_in_only=mode == SIGNIN)
    except NudgeError as exc:
        log.warning("could not start %s with %s: %s", mode, key, exc.user_message)
        return _failure(f"Could not start signing in with {spec.display_name}", _sentence(exc.user_message), 502)
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
    return render_template("signup/signup.html", provider_key=spec.key, provider_name=spec.display_name)


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
    name = spec.display_name
    try:
        flow = oauth_flow.take(spec, pending.SIGNUP)
    except PendingError as exc:
        log.info("%s sign-in callback refused: %s", provider, exc.user_message)
        return _failure(f"Signing in with {name} not completed", _sentence(exc.user_message))
    if current_user.is_authenticated:
        return _failure(
            f"Signing in with {name} not completed",
            f"You are already signed in. Nothing was created; connect {name} from your dashboard instead.",
        )
    mode = flow.context.get("mode")
    args = (
        request.args.to_dict(),
        flow.state,
        flow.verifier,
        flow.nonce,
        services().clock.now(),
    )
    store = services().store
    try:
        if mode == SIGNIN:
            user_id = complete_signin(store, spec, settings, *args)
            message = ""
        else:
            result = complete_signup(store, services().vault, spec, settings, *args, starter=services().settings)
            user_id = result.user_id
            if result.created:
                message = " ".join(
                    [f"Welcome to Nudge. Created {result.org_name}."]
                    + [connected_message(file) for file in result.connections]
                )
            else:
                message = f"You already have a Nudge account with this {name} user: you are signed in."
    except SignupError as exc:
        log.info("%s with %s not completed: %s", mode, provider, exc.user_message)
        return _failure(f"Could not sign in with {name}", _sentence(exc.user_message))
    except NudgeError as exc:
        log.warning("%s with %s failed: %s", mode, provider, exc.user_message)
        return _failure(f"Could not sign in with {name}", _sentence(exc.user_message), 502)
    with store.unit_of_work() as uow:
        user = uow.users.get(user_id)
        web_user = WebUser.from_model(user) if user is not None else None
    if web_user is None or not web_user.is_active:
        return _failure(f"Could not sign in with {name}", "This account cannot sign in.")
    session.clear()  # nothing from before sign-in survives it
    login_user(web_user)
    if message:
        flash(message, "info")
    return redirect(url_for("home.index"), 303)

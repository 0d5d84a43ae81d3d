"""Starting a signed-in session: the one way into Flask-Login's `login_user` for every kind of sign-in.

`start_session(user, next_url)` is called once the first factor is proven (a password in web.auth, a provider's
OpenID Connect sign-in in web.signup). When the user has two-factor on, nobody is signed in yet: the browser's
session remembers who is half-way (for 10 minutes) and the answer sends it to the code step
(`auth.two_factor`), which calls `finish_sign_in`. Otherwise a session row is recorded
(connector.accounts.sessions) and the cookie names it; `web.auth.load_user` refuses any cookie without one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_user  # type: ignore[import-untyped, unused-ignore]

from connector.accounts import sessions, two_factor
from web.extensions import services
from web.users import WebUser

PENDING_KEY = "nudge_two_factor"
PENDING_FOR = timedelta(minutes=10)


def start_session(user: WebUser, next_url: str | None = None, status: int = 302) -> ResponseReturnValue:
    """Sign `user` in after their first factor, or send them to the two-factor step; the redirect to follow."""
    with services().store.unit_of_work() as uow:
        row = uow.users.get(user.user_id)
        needs_code = row is not None and two_factor.is_enabled(row)
    session.clear()  # nothing from before sign-in survives it
    if needs_code:
        session[PENDING_KEY] = {
            "user": user.user_id,
            "version": user.session_version,
            "since": services().clock.now().isoformat(),
            "next": next_url or "",
        }
        return redirect(url_for("auth.two_factor"), status)
    finish_sign_in(user)
    return redirect(next_url or url_for("home.index"), status)


def pending_user_id(now: datetime) -> tuple[int, int, str] | None:
    """(user id, session version, next URL) of the browser half-way through sign-in, if still in time."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict):
        return None
    try:
        since = datetime.fromisoformat(str(pending["since"]))
        user_id, version, next_url = int(pending["user"]), int(pending["version"]), str(pending["next"])
    except (KeyError, TypeError, ValueError):
        return None
    if since.tzinfo is None or not timedelta(0) <= now - since <= PENDING_FOR:
        return None
    return user_id, version, next_url


def finish_sign_in(user: WebUser) -> None:
    """Record a session row for `user` and sign the browser in with it."""
    svc = services()
    with svc.store.unit_of_work() as uow:
        public_id = sessions.start(
            uow,
            user.user_id,
            svc.clock.now(),
            user_agent=request.headers.get("User-Agent", ""),
            ip_address=request.remote_addr or "",
        )
        uow.commit()
    session.pop(PENDING_KEY, None)
    user.bind_session(public_id)
    login_user(user)

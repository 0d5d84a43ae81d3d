"""Per-session records: one row per signed-in browser, so a person sees their sessions and can end any of them.

The browser's cookie carries the user id, the user's session version and a random public id; only the SHA-256
of the public id is stored. `find` refuses a missing or ended row; `last_seen_at` moves at most once a minute so
a busy page does not turn every read into a write. `connector.accounts.users.end_sessions` ends them all.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from connector.accounts import two_factor
from connector.storage import UnitOfWork
from connector.storage.tables import User, UserSession

SEEN_EVERY = timedelta(minutes=1)
USER_AGENT_MAX = 300
ADDRESS_MAX = 64
PUBLIC_ID_MAX = 100  # a cookie's public id longer than this was never ours


@dataclass(frozen=True, slots=True)
class SessionView:
    """A session as its owner sees it in the list (never the public id)."""

    id: int
    created_at: datetime
    last_seen_at: datetime
    user_agent: str
    ip_address: str


def hash_public_id(public_id: str) -> str:
    """The stored form of a session's public id (a long random string: SHA-256 is enough)."""
    return hashlib.sha256(public_id.encode("utf-8")).hexdigest()


def start(uow: UnitOfWork, user_id: int, now: datetime, *, user_agent: str = "", ip_address: str = "") -> str:
    """Record a new session for the user (uncommitted); returns its public id for the cookie."""
    public_id = secrets.token_urlsafe(32)
    uow.session.add(
        UserSession(
            user_id=user_id,
            public_id_hash=hash_public_id(public_id),
            created_at=now,
            last_seen_at=now,
            user_agent=user_agent[:USER_AGENT_MAX],
            ip_address=ip_address[:ADDRESS_MAX],
        )
    )
    uow.flush()
    return public_id


def find(uow: UnitOfWork, user_id: int, public_id: str, now: datetime) -> UserSession | None:
    """The user's open session with this public id, its `last_seen_at` moved on if a minute passed; else None."""
    found = signed_in(uow, user_id, public_id, now)
    return found.session if found is not None else None


@dataclass(frozen=True)
class SignedIn:
    """A request's user, their open session and whether an organization they own requires two-factor."""

    user: User
    session: UserSession
    owner_rule: bool


def signed_in(uow: UnitOfWork, user_id: int, public_id: str, now: datetime) -> SignedIn | None:
    """In one statement (it runs on every request): the user, their open session with this public id (its
    `last_seen_at` moved on if a minute passed) and the owners' two-factor rule; None for no such open session."""
    if not public_id or len(public_id) > PUBLIC_ID_MAX:
        return None
    row = uow.session.execute(
        select(User, UserSession, two_factor.owner_rule_applies(User.id))
        .join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.public_id_hash == hash_public_id(public_id), UserSession.ended_at.is_(None))
    ).first()
    if row is None or row[0].id != user_id:
        return None
    user, session, owner_rule = row
    if now - session.last_seen_at >= SEEN_EVERY:
        session.last_seen_at = now
    return SignedIn(user, session, bool(owner_rule))


def open_sessions(uow: UnitOfWork, user_id: int) -> list[SessionView]:
    """The user's sessions that have not ended, most recently seen first."""
    rows = uow.session.scalars(
        select(UserSession)
        .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
    ).all()
    return [SessionView(row.id, row.created_at, row.last_seen_at, row.user_agent, row.ip_address) for row in rows]


def end(uow: UnitOfWork, user_id: int, session_id: int, now: datetime) -> bool:
    """End one of the user's sessions; False when it is not theirs or already ended."""
    result = uow.session.execute(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


def end_all(uow: UnitOfWork, user_id: int, now: datetime) -> int:
    """End every open session of the user; how many ended."""
    result = uow.session.execute(
        update(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None)).values(ended_at=now)
    )
    return int(getattr(result, "rowcount", 0))


def session_id_of(uow: UnitOfWork, public_id: str) -> int | None:
    """The row id of the session with this public id (to mark "this session" in the list), else None."""
    if not public_id or len(public_id) > PUBLIC_ID_MAX:
        return None
    return uow.session.scalars(
        select(UserSession.id).where(UserSession.public_id_hash == hash_public_id(public_id))
    ).first()


def describe_device(user_agent: str) -> str:
    """A person's words for a user agent: "Firefox on Windows", or "Unknown device"."""
    agent = user_agent.lower()
    browser = next(
        (
            name
            for needle, name in (
                ("edg/", "Edge"),
                ("opr/", "Opera"),
                ("firefox/", "Firefox"),
                ("chromium/", "Chromium"),
                ("chrome/", "Chrome"),
                ("safari/", "Safari"),
                ("curl/", "curl"),
            )
            if needle in agent
        ),
        "",
    )
    system = next(
        (
            name
            for needle, name in (
                ("iphone", "iPhone"),
                ("ipad", "iPad"),
                ("android", "Android"),
                ("windows", "Windows"),
                ("mac os", "macOS"),
                ("cros", "ChromeOS"),
                ("linux", "Linux"),
            )
            if needle in agent
        ),
        "",
    )
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Unknown device"

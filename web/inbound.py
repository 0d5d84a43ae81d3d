"""Inbound email webhooks (issue 17, docs/replies.md): `POST /inbound/email/postmark` and `/inbound/email/mailgun`.

Called by the mail provider, not a browser: no CSRF token, no session. Each is verified before anything is read:

- Postmark signs nothing; its inbound webhook URL carries HTTP Basic credentials
  (`https://user:password@nudge.example/inbound/email/postmark`), compared in constant time with
  `mail.inbound_postmark_basic_auth` ("user:password"). Not configured: 404.
- Mailgun signs each POST: `signature` = hex HMAC-SHA256 of `timestamp + token` under
  `mail.inbound_mailgun_signing_key`; the timestamp must be within `MAILGUN_MAX_AGE` of now and a token is
  accepted once (kept with the webhook deliveries, pruned after `scheduler.webhook_retention_days`).

The delivery is turned back into RFC 5322 bytes (Mailgun's `body-mime` as is) and handed to the intake
(connector.replies.intake). 200 only once the reply is stored (the provider retries anything else); 401 on a bad
credential or signature, 413 when too large, 400 when the body is not the provider's format, 429 when a
client address sends too much. Bodies are never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, request
from limits import parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import RequestEntityTooLarge

from connector.bootstrap import reply_addresses
from connector.errors import NudgeError
from connector.mail.inbound.compose import compose
from connector.replies.intake import ReplyIntake
from connector.storage.tables import WebhookDelivery
from web.extensions import csrf, services

bp = Blueprint("inbound", __name__)
csrf.exempt(bp)
log = logging.getLogger(__name__)
MAILGUN_MAX_AGE = timedelta(minutes=10)
MAILGUN_TOKENS = "mailgun-inbound"  # WebhookDelivery.provider of the tokens already used
RATE_LIMIT = "120 per minute; 2000 per hour"  # per client address, both endpoints together
_LIMITER_KEY = "nudge.inbound_limiter"


def _answer(status: int, text: str = "") -> Response:
    return Response(text, status=status, mimetype="text/plain")


def _intake() -> ReplyIntake:
    settings = services().settings
    return ReplyIntake(
        services().store,
        reply_addresses(settings),
        pause_days=settings.mail.reply_pause_days,
        max_bytes=settings.mail.inbound_max_bytes,
    )


def _limited() -> bool:
    limiter = current_app.extensions.get(_LIMITER_KEY)
    if limiter is None:
        storage = storage_from_string(services().settings.web.ratelimit_storage_uri)
        limiter = current_app.extensions[_LIMITER_KEY] = MovingWindowRateLimiter(storage)
    address = request.remote_addr or "unknown"
    return not all(limiter.hit(item, "inbound", address) for item in parse_many(RATE_LIMIT))


def _body(limit: int) -> bytes | None:
    """The raw body, or None when larger than `limit`."""
    if request.content_length is not None and request.content_length > limit:
        return None
    try:
        body = request.get_data(cache=True)
    except RequestEntityTooLarge:
        return None
    return None if len(body) > limit else body


def _store(raw: bytes, source: str) -> Response:
    try:
        outcome = _intake().receive(raw, source=source, now=services().clock.now())
    except NudgeError as exc:  # the database: not stored, so the provider must retry
        log.warning("%s inbound email not stored (%s); the sender retries", source, exc.user_message)
        return _answer(503, "not stored, retry later")
    log.info("%s inbound email %s: %s%s", source, outcome.inbound_id, outcome.kind, " (again)" * outcome.duplicate)
    return _answer(200, "stored")


# -- Postmark ----------------------------------------------------------------------------------------
def _basic_auth_matches(expected: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected.encode("utf-8")).digest())


@bp.post("/inbound/email/postmark")
def postmark() -> Response:
    """One Postmark inbound delivery (JSON), verified by the webhook URL's Basic credentials."""
    expected = services().settings.mail.inbound_postmark_basic_auth
    if not expected:
        return _answer(404)
    if not _basic_auth_matches(expected):
        return Response("", status=401, headers={"WWW-Authenticate": 'Basic realm="nudge-inbound"'})
    if _limited():
        return _answer(429, "too many requests")
    body = _body(services().settings.mail.inbound_max_bytes)
    if body is None:
        return _answer(413, "too large")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _answer(400, "expected Postmark's inbound JSON")
    if not isinstance(data, dict):
        return _answer(400, "expected Postmark's inbound JSON")
    return _store(postmark_message(data), "postmark")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def postmark_message(data: dict[str, Any]) -> bytes:
    """Postmark's inbound JSON as RFC 5322 bytes: its Headers[] (the original Message-ID, In-Reply-To, References,
    Auto-Submitted...), From, To, Cc, OriginalRecipient, Subject, Date, and TextBody / HtmlBody."""
    headers: list[tuple[object, object]] = []
    for field in ("From", "To", "Cc", "Subject", "Date"):
        if _text(data.get(field)):
            headers.append((field, data[field]))
    if _text(data.get("OriginalRecipient")):
        headers.append(("Delivered-To", data["OriginalRecipient"]))
    given = data.get("Headers")
    names = set()
    if isinstance(given, list):
        for item in given[:200]:
            if isinstance(item, dict) and _text(item.get("Name")) and item["Name"].lower() not in _OWN:
                headers.append((item["Name"], _text(item.get("Value"))))
                names.add(item["Name"].lower())
    if "message-id" not in names and _text(data.get("MessageID")):
        headers.append(("Message-ID", f"<{data['MessageID']}@inbound.postmarkapp.com>"))
    return compose(headers, _text(data.get("TextBody")), _text(data.get("HtmlBody")))


_OWN = frozenset({"from", "to", "cc", "subject", "date", "delivered-to"})  # from Postmark's own fields


# -- Mailgun -----------------------------------------------------------------------------------------
def mailgun_signature_ok(key: str, timestamp: str, token: str, signature: str, now: datetime) -> str:
    """ "" when the signature is right and fresh, else why not (the answer's reason, never the key)."""
    if not (timestamp and token and signature):
        return "missing signature fields"
    expected = hmac.new(key.encode("utf-8"), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.strip().lower()):
        return "bad signature"
    try:
        sent = datetime.fromtimestamp(int(timestamp), tz=now.tzinfo)
    except (ValueError, OverflowError, OSError):
        return "bad timestamp"
    if abs(now - sent) > MAILGUN_MAX_AGE:
        return "stale timestamp"
    return ""


def _token_used(token: str) -> bool:
    with services().store.unit_of_work() as uow:
        found = uow.session.scalars(
            select(WebhookDelivery.id).where(
                WebhookDelivery.provider == MAILGUN_TOKENS, WebhookDelivery.event_id == token[:200]
            )
        ).first()
        return found is not None


def _remember_token(token: str, now: datetime) -> bool:
    """Record the token as used; False when another delivery used it first."""
    try:
        with services().store.unit_of_work() as uow:
            uow.session.add(WebhookDelivery(provider=MAILGUN_TOKENS, event_id=token[:200], received_at=now))
            uow.commit()
    except (IntegrityError, NudgeError):
        return False
    return True


@bp.post("/inbound/email/mailgun")
def mailgun() -> Response:
    """One Mailgun inbound route delivery (form fields, `body-mime` when the route posts the raw MIME)."""
    key = services().settings.mail.inbound_mailgun_signing_key
    if not key:
        return _answer(404)
    if _limited():
        return _answer(429, "too many requests")
    if _body(services().settings.mail.inbound_max_bytes) is None:
        return _answer(413, "too large")
    form = request.form
    now = services().clock.now()
    token = form.get("token", "")
    problem = mailgun_signature_ok(key, form.get("timestamp", ""), token, form.get("signature", ""), now)
    try:
        if not problem and _token_used(token):
            problem = "replayed token"
    except NudgeError as exc:  # the database: nothing stored, the provider retries
        log.warning("mailgun inbound not checked (%s); the sender retries", exc.user_message)
        return _answer(503, "not stored, retry later")
    if problem:
        log.warning("mailgun inbound refused: %s", problem)
        return _answer(401, problem)
    raw = mailgun_message(form.get)
    answer = _store(raw, "mailgun")
    if answer.status_code == 200:
        _remember_token(token, now)
    return answer


def mailgun_message(field: Callable[[str], str | None]) -> bytes:
    """Mailgun's fields as RFC 5322 bytes: `body-mime` as sent, else `message-headers` (JSON [[name, value]])
    with `body-plain` / `body-html`, and `recipient` as Delivered-To."""
    mime = field("body-mime")
    if mime:
        return mime.encode("utf-8", "surrogateescape")
    headers: list[tuple[object, object]] = []
    if field("recipient"):
        headers.append(("Delivered-To", field("recipient")))
    try:
        listed = json.loads(field("message-headers") or "[]")
    except ValueError:
        listed = []
    if isinstance(listed, list):
        for pair in listed[:200]:
            if isinstance(pair, list) and len(pair) == 2:
                headers.append((pair[0], pair[1]))
    names = {str(name).lower() for name, _ in headers}
    for name, key in (("From", "from"), ("Subject", "subject")):
        if name.lower() not in names and field(key):
            headers.append((name, field(key)))
    return compose(headers, field("body-plain") or "", field("body-html") or "")

"""Inbound webhooks deliver a parsed email as JSON or form fields: `compose` turns those parts back into RFC 5322
bytes so every way in goes through the same parser and intake. Hostile values: header names that are not
RFC 5322 field names are dropped, line breaks and control characters in values become spaces, non-ASCII is
RFC 2047-encoded, and the bodies travel base64-encoded in UTF-8."""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.charset import BASE64, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import formataddr, getaddresses

_FIELD_NAME = re.compile(r"[!-9;-~]{1,76}")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]+")
# Headers describing the original MIME body: the composed message has its own.
_BODY_HEADERS = frozenset({"content-type", "content-transfer-encoding", "mime-version", "content-disposition"})
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "reply-to", "sender", "delivered-to", "x-original-to"})
MAX_HEADERS = 200
MAX_VALUE = 4000


def _clean(value: object) -> str:
    return _CONTROLS.sub(" ", str(value if value is not None else ""))[:MAX_VALUE].strip()


def _part(subtype: str, text: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype)
    charset = Charset("utf-8")
    charset.body_encoding = BASE64
    part.set_payload(text, charset=charset)
    return part


def compose(headers: Iterable[tuple[object, object]], text: str, html: str) -> bytes:
    """The message with `headers` (first occurrence order kept) and a text and/or HTML body."""
    body: MIMEMultipart | MIMENonMultipart
    if text and html:
        body = MIMEMultipart("alternative")
        body.attach(_part("plain", text))
        body.attach(_part("html", html))
    elif html:
        body = _part("html", html)
    else:
        body = _part("plain", text or "")
    for count, (name, value) in enumerate(headers):
        if count >= MAX_HEADERS:
            break
        field = str(name or "").strip()
        if not _FIELD_NAME.fullmatch(field) or field.lower() in _BODY_HEADERS:
            continue
        cleaned = _clean(value)
        if not cleaned.isascii() and field.lower() in _ADDRESS_HEADERS:
            # encode the display names only: an encoded word must never hide the address itself
            pairs = getaddresses([cleaned])[:100]
            cleaned = ", ".join(formataddr((name, address), charset="utf-8") for name, address in pairs if address)
        body[field] = cleaned if cleaned.isascii() else Header(cleaned, "utf-8").encode()
    return body.as_bytes()

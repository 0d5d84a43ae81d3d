"""Keep secrets out of logs: a log-record factory that masks known secret values and token patterns.

Every secret Nudge opens (tokens, keys) is registered here; any log record — from Nudge, an SDK or
a library — has those values and bearer/token-looking fields replaced by `<redacted>` before any
handler sees it, including the formatted traceback.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from typing import Any

REDACTED = "<redacted>"
_MIN_SECRET_LENGTH = 8
_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)([\"']?(?:access_token|refresh_token|id_token|client_secret|password|authorization)[\"']?"
        r"\s*[:=]\s*[\"']?)[^\"'&\s,}]+"
    ),
    re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]{8,}"),
    # OAuth callback query strings in access logs: the authorization code is a credential until used.
    re.compile(r"(?i)([?&](?:code|code_verifier|refresh_token|access_token)=)[^&\s\"']+"),
]
_lock = threading.Lock()
_secrets: set[str] = set()
_installed = False


def register_secret(value: str) -> None:
    """Mask `value` wherever it would appear in a log record from now on."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """`text` with registered secrets and token-looking fields masked."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    return text


def install() -> None:
    """Install the redacting record factory once per process (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
            record.exc_info = None
        return record

    logging.setLogRecordFactory(factory)

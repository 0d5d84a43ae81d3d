"""The development outbox: each message written as an .eml file, nothing leaves the machine."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from connector.config import MailSettings
from connector.errors import (
    MailTransient,
)
from connector.mail.message import OutgoingMessage, PreparedMessage, SentReceipt, log_dropped, prepare

log = logging.getLogger(__name__)


class MaildirMailer:
    """Writes each message as `<path>/<id>.eml` (plus `<id>.envelope.json` naming the envelope).

    For development and the demo: nothing leaves the machine. A retry of the same message rewrites
    the same file. The .eml is exactly what SMTP would carry, so it has no Bcc header.
    """

    name = "maildir"

    def __init__(
        self,
        path: str | os.PathLike[str],
        settings: MailSettings | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.path = Path(path)
        self.settings = settings or MailSettings(backend="maildir", outbox_path=str(path))
        self._clock = clock or (lambda: datetime.now(UTC))

    def __repr__(self) -> str:
        return f"MaildirMailer(path={str(self.path)!r})"

    def send(self, message: OutgoingMessage) -> SentReceipt:
        """Write `message` to the outbox folder; MailTransient if the folder cannot be written."""
        return self.deliver(self.prepare(message))

    def prepare(self, message: OutgoingMessage) -> PreparedMessage:
        """Check `message` and render it, dated by the mailer's clock (InvalidMessage: nothing is written)."""
        prepared = prepare(message, self.settings, now=self._clock())
        log_dropped(prepared)
        return prepared

    def deliver(self, prepared: PreparedMessage) -> SentReceipt:
        """Write the prepared bytes to the outbox folder; MailTransient if the folder cannot be written."""
        stem = hashlib.sha256(prepared.message_id.encode()).hexdigest()[:32]
        envelope = {
            "message_id": prepared.message_id,
            "from": prepared.envelope_from,
            "to": list(prepared.to),
            "cc": list(prepared.cc),
            "bcc": list(prepared.bcc),
            "dropped": [{"address": d.address, "reason": d.reason, "field": d.field} for d in prepared.dropped],
        }
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            target = self.path / f"{stem}.eml"
            _write_atomically(self.path / f"{stem}.envelope.json", json.dumps(envelope, indent=2).encode())
            _write_atomically(target, prepared.as_bytes())
        except OSError as exc:
            raise MailTransient(f"could not write to the outbox {self.path}: {exc.strerror or exc}") from None
        log.info("mail %s written to %s", prepared.message_id, target)
        return SentReceipt(prepared.message_id, prepared.envelope_to, prepared.dropped, str(target))


def _write_atomically(target: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise

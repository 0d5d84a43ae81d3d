"""IMAP polling (issue 17): for installs whose reply address is an ordinary mailbox rather than a webhook.

`ImapPoller.poll()` connects to `mail.imap_host` (ssl, starttls or none), selects `mail.imap_folder`, searches
UNSEEN and, for each message, fetches its bytes with BODY.PEEK[] (so fetching alone does not mark it read),
hands them to the intake and only then sets \\Seen: a message whose storing failed stays unseen and is fetched
again by the next poll (the intake is idempotent, so a message stored twice is one row). A message the parser
cannot read is stored as unmatched and marked seen like any other; a message larger than
`mail.inbound_max_bytes` is stored as unmatched from its size alone (never fetched whole). Any network or
protocol error ends the poll (logged, without the password or any message text); the next poll reconnects.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from connector.config import MailSettings
from connector.errors import NudgeError
from connector.replies.intake import ReplyIntake

log = logging.getLogger(__name__)
MAX_PER_POLL = 200  # messages handled by one poll; the rest wait for the next
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


@dataclass
class PollReport:
    """What one poll did."""

    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    failed: int = 0
    error: str = ""
    kinds: dict[str, int] = field(default_factory=dict)


class ImapPoller:
    """Polls one mailbox and feeds the intake."""

    def __init__(
        self, settings: MailSettings, intake: ReplyIntake, now: Callable[[], datetime], *, timeout: float = 30
    ) -> None:
        self.settings = settings
        self.intake = intake
        self.now = now
        self.timeout = timeout

    def __repr__(self) -> str:  # no password in reprs
        return f"ImapPoller({self.settings.imap_host}:{self.settings.imap_port}, {self.settings.imap_folder!r})"

    def poll(self) -> PollReport:
        """One pass over the unseen messages; never raises for the server's or a message's faults."""
        report = PollReport()
        try:
            client = self._connect()
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
            report.error = f"cannot reach the IMAP server {self.settings.imap_host}: {_safe(exc, self.settings)}"
            log.warning("%s", report.error)
            return report
        try:
            self._poll(client, report)
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
            report.error = f"IMAP poll stopped: {_safe(exc, self.settings)}"
            log.warning("%s; the next poll reconnects", report.error)
        finally:
            _logout(client)
        return report

    def _connect(self) -> imaplib.IMAP4:
        host, port, security = self.settings.imap_host, self.settings.imap_port, self.settings.imap_security
        client: imaplib.IMAP4
        if security == "ssl":
            client = imaplib.IMAP4_SSL(host, port, ssl_context=ssl.create_default_context(), timeout=self.timeout)
        else:
            client = imaplib.IMAP4(host, port, timeout=self.timeout)
            if security == "starttls":
                client.starttls(ssl.create_default_context())
        try:
            client.login(self.settings.imap_username, self.settings.imap_password)
        except imaplib.IMAP4.error:
            _logout(client)
            raise imaplib.IMAP4.error(f"the IMAP server refused the login of {self.settings.imap_username!r}") from None
        return client

    def _poll(self, client: imaplib.IMAP4, report: PollReport) -> None:
        status, _ = client.select(_quoted(self.settings.imap_folder))
        if status != "OK":
            raise imaplib.IMAP4.error(f"the folder {self.settings.imap_folder!r} cannot be opened")
        status, found = client.uid("SEARCH", "UNSEEN")
        if status != "OK" or not found or not found[0]:
            return
        for uid in found[0].split()[:MAX_PER_POLL]:
            self._one(client, uid.decode("ascii"), report)

    def _one(self, client: imaplib.IMAP4, uid: str, report: PollReport) -> None:
        status, sized = client.uid("FETCH", uid, "(RFC822.SIZE)")
        size_match = _SIZE.search(b" ".join(part if isinstance(part, bytes) else part[0] for part in sized or []))
        size = int(size_match.group(1)) if size_match else 0
        too_large = size > self.settings.inbound_max_bytes  # only its header is fetched: stored as unmatched
        status, data = client.uid("FETCH", uid, "(BODY.PEEK[HEADER])" if too_large else "(BODY.PEEK[])")
        raw = _message_bytes(data) if status == "OK" else b""
        if not raw:
            report.failed += 1
            log.warning("IMAP message uid %s could not be fetched; the next poll tries again", uid)
            return
        report.fetched += 1
        try:
            outcome = self.intake.receive(raw, source="imap", now=self.now(), size=max(size, len(raw)))
        except NudgeError as exc:  # the database: leave it unseen for the next poll
            report.failed += 1
            log.warning("IMAP message uid %s not stored (%s); it stays unseen", uid, exc.user_message)
            return
        except Exception:  # a bug must not stop the worker: the message stays unseen and is logged once per poll
            report.failed += 1
            log.exception("IMAP message uid %s could not be handled; it stays unseen", uid)
            return
        report.kinds[outcome.kind] = report.kinds.get(outcome.kind, 0) + 1
        if outcome.duplicate:
            report.duplicates += 1
        else:
            report.stored += 1
        client.uid("STORE", uid, "+FLAGS", "(\\Seen)")


def _message_bytes(data: list[object] | None) -> bytes:
    for part in data or []:
        if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], bytes):
            return part[1]
    return b""


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _safe(exc: BaseException, settings: MailSettings) -> str:
    text = str(exc) or type(exc).__name__
    if settings.imap_password:
        text = text.replace(settings.imap_password, "<password>")
    return text[:300]


def _logout(client: imaplib.IMAP4) -> None:
    with contextlib.suppress(OSError, imaplib.IMAP4.error, ssl.SSLError):  # the connection may be gone already
        client.logout()

"""The worker's reply-mailbox job (issue 17): poll `mail.imap_host` every `mail.imap_poll_seconds` when set."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from connector.bootstrap import reply_addresses
from connector.replies.imap import ImapPoller
from connector.replies.intake import ReplyIntake
from connector.worker.scheduler import PeriodicJob


def reply_jobs(services: Any) -> list[PeriodicJob]:
    """The IMAP poll as a periodic job of the worker, or none when no IMAP mailbox is configured."""
    mail = services.settings.mail
    if not mail.imap_host:
        return []
    intake = ReplyIntake(
        services.store,
        reply_addresses(services.settings),
        pause_days=mail.reply_pause_days,
        max_bytes=mail.inbound_max_bytes,
    )
    poller = ImapPoller(mail, intake, services.clock.now)
    return [PeriodicJob("imap replies", timedelta(seconds=max(1, mail.imap_poll_seconds)), poller.poll)]

"""An aiosmtpd server on 127.0.0.1 for a test's own handler, and the MailSettings that point at it."""

from __future__ import annotations

import email
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from connector.config import MailSettings
from tests.support.net import free_port


@contextmanager
def smtp_server(handler: Any, controller: type[Controller] = Controller) -> Iterator[int]:
    """Serve `handler` (an aiosmtpd handler: `handle_DATA`...) on a free port until exit; the port."""
    port = free_port()
    server = controller(handler, hostname="127.0.0.1", port=port, ready_timeout=5)
    server.start()
    try:
        yield port
    finally:
        server.stop()


def smtp_settings(port: int, **settings: Any) -> MailSettings:
    """Plain SMTP (no TLS) to 127.0.0.1:`port`; `settings` adds or overrides the rest (from_address...)."""
    return MailSettings(
        **{"backend": "smtp", "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none", **settings}
    )


@dataclass
class Inbox:
    """An aiosmtpd handler keeping each message and its envelope recipients as they arrived."""

    received: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(bytes(envelope.content), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"

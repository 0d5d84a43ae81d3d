"""build(settings) -> Services: the only place concrete adapters are chosen. Nothing runs at import."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property

from connector import redaction
from connector.config import Settings
from connector.errors import ConfigError
from connector.mail import mailer_for
from connector.ports import Clock, SystemClock
from connector.registry import Registry
from connector.reminders import MailReminderSender
from connector.storage import Store
from connector.vault import Vault


@dataclass
class Services:
    """What the web app, the CLI and the worker share in one process."""

    settings: Settings
    store: Store
    registry: Registry
    clock: Clock = field(default_factory=SystemClock)

    @cached_property
    def vault(self) -> Vault:
        """The key ring; raises VaultError (naming the variable to set) when no key is configured."""
        return Vault.from_keys(self.settings.vault.keys, self.settings.vault.active_key, variable="NUDGE_VAULT_KEY")

    def reminder_sender(self) -> MailReminderSender:
        """Reminder emails through the configured mailer (SMTP, or the maildir outbox in development)."""
        return MailReminderSender(self.store, mailer_for(self.settings.mail), self.clock.now)

    def require_ready_to_serve(self) -> None:
        """Fail closed before serving: a vault key and a session secret must be set."""
        _ = self.vault
        if not self.settings.web.secret_key:
            raise ConfigError("web.secret_key is empty: set NUDGE_SECRET_KEY (any long random text)")


def build(settings: Settings, *, clock: Clock | None = None) -> Services:
    """Services for `settings`: the store, the provider registry and the clock."""
    redaction.install()
    logging.getLogger().setLevel(settings.log_level)
    return Services(
        settings=settings,
        store=Store.from_url(settings.database.url, echo=settings.database.echo, pool_size=settings.database.pool_size),
        registry=Registry.discover(settings.providers),
        clock=clock or SystemClock(),
    )

"""build(settings) -> Services: the only place concrete adapters are chosen. Nothing runs at import."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from connector.config import MailSettings, Settings
from connector.errors import ConfigError
from connector.mail.customer_link import CustomerLinks
from connector.mail.inbound.reply_address import ReplyAddresses, derive_key
from connector.mail.maildir import MaildirMailer
from connector.mail.message import Mailer
from connector.mail.reminders import MailReminderSender
from connector.mail.smtp import SmtpMailer
from connector.ports import Clock, SystemClock
from connector.receivables.statements import StatementMaker
from connector.registry import Registry
from connector.storage import Store
from connector.vault import redaction
from connector.vault.keyring import Vault

VAULT_VARIABLE = "NUDGE_VAULT_KEY"


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
        return Vault.from_keys(self.settings.vault.keys, self.settings.vault.active_key, variable=VAULT_VARIABLE)

    def require_vault(self) -> Vault:
        """The key ring, checked against the database's canary: VaultError naming the variable when wrong."""
        from connector.vault.canary import check_canary

        vault = self.vault
        check_canary(self.store, vault, variable=VAULT_VARIABLE)
        return vault

    def reminder_sender(self) -> MailReminderSender:
        """Reminder emails through the configured mailer (SMTP, or the maildir outbox in development)."""
        return MailReminderSender(
            self.store,
            mailer_for(self.settings.mail, self.clock.now),
            self.clock.now,
            reply_addresses=reply_addresses(self.settings),
            statements=StatementMaker(self.store),
            customer_links=customer_links(self.settings),
        )

    def account_mailer(self) -> Mailer:
        """The mailer for account emails (invitations, password resets, address checks): the install's own."""
        return mailer_for(self.settings.mail, self.clock.now)

    def require_ready_to_serve(self) -> None:
        """Fail closed before serving: a vault key that opens the database's canary and a session secret."""
        self.require_vault()
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


def reply_addresses(settings: Settings) -> ReplyAddresses | None:
    """Per-thread reply addresses (issue 17) when `mail.reply_address` is set; signed with `mail.reply_signing_key`,
    else a key derived from `web.secret_key`. None when replies are not captured (or no key exists)."""
    mail = settings.mail
    if not mail.reply_address:
        return None
    key = mail.reply_signing_key.encode("utf-8") if mail.reply_signing_key else b""
    if not key and settings.web.secret_key:
        key = derive_key(settings.web.secret_key)
    if not key:
        raise ConfigError("mail.reply_address is set but neither mail.reply_signing_key nor web.secret_key is")
    try:
        return ReplyAddresses(mail.reply_address, key)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def customer_links(settings: Settings) -> CustomerLinks | None:
    """Customer page links (issue 17) under `web.base_url`, signed with `web.secret_key` and working
    `web.customer_link_days`; None without a secret (reminders then carry no link: there is no page to open)."""
    if not settings.web.secret_key:
        return None
    return CustomerLinks(settings.web.secret_key, settings.web.base_url, settings.web.customer_link_days)


def mailer_for(settings: MailSettings, clock: Callable[[], datetime] | None = None) -> Mailer:
    """The mailer `settings.backend` names: SmtpMailer for "smtp", MaildirMailer for "maildir"; `clock` dates
    each message (Nudge's clock: the demo's simulated days, the real time otherwise)."""
    if settings.backend == "smtp":
        return SmtpMailer(settings, clock=clock)
    if settings.backend == "maildir":
        if not settings.outbox_path:
            raise ConfigError("mail.backend is maildir but mail.outbox_path is empty")
        return MaildirMailer(settings.outbox_path, settings, clock=clock)
    raise ConfigError(f"unknown mail backend {settings.backend!r} (expected maildir or smtp)")

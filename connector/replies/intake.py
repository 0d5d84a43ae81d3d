"""The intake: one received email, stored once, filed under its customer, and what it changes.

`receive` parses the raw bytes (connector.mail.inbound.parsing), finds the thread, stores an `inbound_messages`
row and, in the same transaction:

- matched, written by a person (`human`): an activity `reply.human` on the customer's (and the invoice's)
  timeline, an open item in the inbox's "Customer replies" group, and automatic reminders to that customer
  paused for `mail.reply_pause_days` (the customer's own `paused_until`, the pause people set on the Customer
  page, moved later and never earlier; audited as a change by "customer reply"); the client is made due so
  the planner turns what was planned into holds at once;
- matched, automatic (`auto_reply`: out of office, bounces, lists): an activity `reply.auto_reply` only: it
  neither pauses the cadence nor opens an inbox item;
- `unmatched`: no valid token and no known Message-ID: kept (organization unknown) for the logs; nothing else.

Matching: a recipient `replies+<token>@…` whose token verifies (connector.mail.inbound.reply_address), else
In-Reply-To / References naming a Message-ID Nudge sent (`sent_messages`). A token wins over the headers.
Idempotent: the same Message-ID (else the same bytes) for the same organization is stored once, whatever the
route and however often the webhook or the poller delivers it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.library.overrides import record_change
from connector.mail.inbound.parsing import InboundEmail, parse
from connector.mail.inbound.reply_address import ReplyAddresses, ReplyThread, thread_hash
from connector.mail.message import redact_address
from connector.storage import Store, UnitOfWork
from connector.storage.tables import Connection, Customer, InboundMessage, SentMessage

log = logging.getLogger(__name__)

HUMAN = "human"
AUTO_REPLY = "auto_reply"
UNMATCHED = "unmatched"
REPLY_ACTOR = "customer reply"
ACTIVITY_PREFIX = "reply."  # connector.receivables.invoices.REPLY_PREFIX: the timeline's "reply" entries


@dataclass(frozen=True, slots=True)
class Intake:
    """What `receive` did: the stored row's id, its kind, and whether it was a repeat of one stored before."""

    inbound_id: int
    kind: str
    duplicate: bool
    paused_until: date | None = None


@dataclass(frozen=True, slots=True)
class _Match:
    connection: Connection
    customer: Customer | None
    customer_external_id: str
    sent: SentMessage | None
    thread: str
    route: str


class ReplyIntake:
    """Files received emails (`receive`) for the webhook and the IMAP poller alike."""

    def __init__(
        self, store: Store, addresses: ReplyAddresses | None, *, pause_days: int = 5, max_bytes: int = 10 * 2**20
    ) -> None:
        self.store = store
        self.addresses = addresses
        self.pause_days = pause_days
        self.max_bytes = max_bytes

    def receive(self, raw: bytes, *, source: str, now: datetime, size: int | None = None) -> Intake:
        """Store and file one raw RFC 5322 message. Never raises for what the message contains (an unreadable
        one is stored as unmatched); StorageError when the database fails (the caller must not acknowledge).
        `size` is the message's real size when only part of it (its header) was fetched."""
        size = max(size or 0, len(raw))
        oversize = size > self.max_bytes
        email = parse(raw[: self.max_bytes])
        with self.store.unit_of_work() as uow:
            match = None if oversize else self._match(uow.session, email)
            org_id = match.connection.organization_id if match else None
            fingerprint = _fingerprint(org_id, email.message_id, raw)
            found = uow.session.scalars(select(InboundMessage).where(InboundMessage.fingerprint == fingerprint)).first()
            if found is not None:
                return Intake(found.id, found.kind, True, found.paused_until)
            kind = UNMATCHED if match is None else (AUTO_REPLY if email.auto_reply else HUMAN)
            reason = (
                "larger than mail.inbound_max_bytes"
                if oversize
                else email.auto_reply
                if kind == AUTO_REPLY
                else ("no reply token and no known Message-ID" if kind == UNMATCHED else "")
            )
            row = InboundMessage(
                organization_id=org_id,
                connection_id=match.connection.id if match else None,
                customer_external_id=match.customer_external_id if match else "",
                sent_message_id=match.sent.id if match and match.sent else None,
                thread_hash=match.thread if match else "",
                route=match.route if match else "",
                source=source[:20],
                fingerprint=fingerprint,
                message_id=email.message_id,
                from_address=email.from_address,
                from_name=email.from_name,
                subject=email.subject,
                received_at=now,
                text=email.trimmed,
                size=size,
                kind=kind,
                reason=reason[:200],
                handled=kind != HUMAN,  # only a person's reply waits in the inbox
            )
            savepoint = uow.session.begin_nested()
            uow.session.add(row)
            try:
                savepoint.commit()
            except IntegrityError:  # the same message stored by another delivery meanwhile
                uow.session.rollback()
                again = uow.session.scalars(
                    select(InboundMessage).where(InboundMessage.fingerprint == fingerprint)
                ).one()
                return Intake(again.id, again.kind, True, again.paused_until)
            if match is not None:
                if kind == HUMAN and match.customer is not None:
                    row.paused_until = self._pause(uow, match.connection, match.customer, now)
                self._record(uow, match, row, email, now)
            uow.commit()
            log.info(
                "reply %s stored as %s (%s, from %s)", row.id, kind, source, redact_address(email.from_address or "?")
            )
            return Intake(row.id, kind, False, row.paused_until)

    # -- matching ----------------------------------------------------------------------------------
    def _match(self, session: Session, email: InboundEmail) -> _Match | None:
        by_token = self._by_token(session, email)
        sent = _sent_named(session, email.references)
        if by_token is not None:
            connection, customer, thread = by_token
            if sent is not None and (
                sent.connection_id != connection.id or sent.customer_external_id != customer.external_id
            ):
                sent = None  # the headers name another customer's message: the signed token decides
            sent = sent or _latest_sent(session, connection.id, customer.external_id, thread)
            return _Match(connection, customer, customer.external_id, sent, thread, "token")
        if sent is None:
            return None
        connection_row = session.get(Connection, sent.connection_id)
        if connection_row is None:
            return None
        customer_row = session.scalars(
            select(Customer).where(
                Customer.connection_id == sent.connection_id, Customer.external_id == sent.customer_external_id
            )
        ).first()
        return _Match(connection_row, customer_row, sent.customer_external_id, sent, "", "headers")

    def _by_token(self, session: Session, email: InboundEmail) -> tuple[Connection, Customer, str] | None:
        if self.addresses is None:
            return None
        for recipient in email.recipients:
            thread: ReplyThread | None = self.addresses.read(recipient)
            if thread is None:
                continue
            connection = session.get(Connection, thread.connection_id)
            customer = session.get(Customer, thread.customer_id)
            if (
                connection is not None
                and customer is not None
                and connection.organization_id == thread.organization_id
                and customer.connection_id == connection.id
            ):
                return connection, customer, thread.thread_hash
        return None

    # -- effects -----------------------------------------------------------------------------------
    def _pause(self, uow: UnitOfWork, connection: Connection, customer: Customer, now: datetime) -> date | None:
        """Pause the customer's reminders `pause_days` from the client's local today (never shortening a pause)."""
        if self.pause_days <= 0:
            return None
        until = _local_today(connection, now) + timedelta(days=self.pause_days)
        if customer.paused_until is not None and customer.paused_until >= until:
            return customer.paused_until
        before = {"paused_until": customer.paused_until.isoformat() if customer.paused_until else None}
        customer.paused_until = until
        customer.updated_at = now
        record_change(
            uow,
            connection,
            actor=REPLY_ACTOR,
            now=now,
            entity="customer",
            entity_id=customer.id,
            kind="customer.overrides_updated",
            subject=customer.name or customer.external_id,
            before=before,
            after={"paused_until": until.isoformat()},
            about={"customer": customer.external_id, "customer_id": customer.id},
        )
        if connection.next_run_at is None or connection.next_run_at > now:
            connection.next_run_at = now  # replan now: what was planned for this customer becomes a hold
        return until

    def _record(self, uow: UnitOfWork, match: _Match, row: InboundMessage, email: InboundEmail, now: datetime) -> None:
        invoices = list(match.sent.invoice_external_ids or []) if match.sent else []
        detail: dict[str, object] = {
            "customer": match.customer_external_id,
            "inbound": row.id,
            "from": email.from_address,
            "subject": email.subject,
            "text": email.trimmed[:2000],
            "route": match.route,
        }
        if match.customer is not None:
            detail["customer_id"] = match.customer.id
        if len(invoices) == 1:
            detail["invoice"] = str(invoices[0])
        if invoices:
            detail["invoices"] = [str(i) for i in invoices]
        if row.kind == AUTO_REPLY:
            detail["auto_reply"] = row.reason
        if row.paused_until is not None:
            detail["paused_until"] = row.paused_until.isoformat()
        uow.activities.record(
            match.connection.organization_id,
            f"{ACTIVITY_PREFIX}{row.kind}",
            (email.subject or "(no subject)")[:200],
            connection_id=match.connection.id,
            actor=email.from_address[:200],
            at=now,
            detail=detail,
        )


def _fingerprint(org_id: int | None, message_id: str, raw: bytes) -> str:
    name = message_id or f"sha256:{hashlib.sha256(raw).hexdigest()}"
    return hashlib.sha256(f"{org_id or 0}\n{name}".encode()).hexdigest()


def _sent_named(session: Session, references: tuple[str, ...]) -> SentMessage | None:
    """The message Nudge sent that the reply names (In-Reply-To first, then the newest References)."""
    if not references:
        return None
    rows = {
        row.message_id: row
        for row in session.scalars(select(SentMessage).where(SentMessage.message_id.in_(list(references))))
    }
    return next((rows[ref] for ref in references if ref in rows), None)


def _latest_sent(session: Session, connection_id: int, customer_external_id: str, thread: str) -> SentMessage | None:
    """The latest message of the thread the token names (a thread key is `<conn>:invoice:<id>` or
    `<conn>:customer:<id>`, compared by hash), else the customer's latest message."""
    rows = list(
        session.scalars(
            select(SentMessage)
            .where(SentMessage.connection_id == connection_id, SentMessage.customer_external_id == customer_external_id)
            .order_by(SentMessage.sent_at.desc(), SentMessage.id.desc())
            .limit(200)
        )
    )
    for row in rows:
        keys = [f"{connection_id}:customer:{customer_external_id}"]
        keys += [f"{connection_id}:invoice:{invoice}" for invoice in row.invoice_external_ids or []]
        if thread in {thread_hash(key) for key in keys}:
            return row
    return rows[0] if rows else None


def _local_today(connection: Connection, now: datetime) -> date:
    try:
        zone = ZoneInfo(connection.time_zone) if connection.time_zone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    return now.astimezone(zone).date()

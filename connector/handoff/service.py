"""Making a hand-off pack exactly once, for the executor (its `HandoffDesk`).

`StoreHandoffDesk.make_pack(action, connection_id, adapter)` is called for an escalation of an `escalate: handoff`
step after its task is opened. The pack covers every invoice of that customer handed over on the same local day
(the escalations planned for that day, one per invoice), so one customer gets one letter. Its key hashes the
connection, customer, day and invoices: an escalation retried after a crash, or a second escalation of the same
day, finds the pack (made once, unique key) instead of making another. The letter is dated the client's local
day it is made.

What the ledger is asked, before anything is stored: each invoice's PDF and pay link, and the customer's address
and phone. A transient failure there (the provider down) raises, so the executor retries the escalation with the
same key; a ledger that has no PDF, link or contact for one leaves it out (named in the pack).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from connector.domain.actions import KEY_LENGTH, Action, ActionKind
from connector.domain.calendar import zone
from connector.domain.handoff import claim_for, is_uk_client
from connector.domain.model import ActionState, InvoiceSnapshot
from connector.errors import NudgeError, Rejected, Transient
from connector.handoff.evidence import Evidence, read_evidence
from connector.handoff.files import FINAL_DEMAND, PRE_ACTION, Contact, PackFiles, make_files
from connector.outbox.planning import snapshot_of
from connector.ports import AccountingAdapter
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import ClientSettings, HandoffPack, Invoice

log = logging.getLogger(__name__)
DEFAULT_LOCALE = "en_GB"
_LIVE_STATES = tuple(
    s.value for s in ActionState if s not in (ActionState.CANCELLED, ActionState.SUPERSEDED, ActionState.SKIPPED)
)


def pack_key(connection_id: str, customer_external_id: str, day: str, invoice_ids: tuple[str, ...]) -> str:
    """40 hex of sha256 over (connection, customer, local day, sorted invoice ids): one pack per customer and day."""
    raw = "\x1f".join(("handoff", connection_id, customer_external_id, day, *sorted(set(invoice_ids))))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:KEY_LENGTH]


class StoreHandoffDesk:
    """The executor's `HandoffDesk` over the store: makes (or finds) the pack of a hand-off escalation."""

    def __init__(
        self, store: Store, now: Callable[[], datetime], *, uk_base_rate: Decimal | None, locale: str = DEFAULT_LOCALE
    ) -> None:
        self.store = store
        self.now = now
        self.uk_base_rate = uk_base_rate
        self.locale = locale

    def make_pack(self, action: Action, connection_id: int, adapter: AccountingAdapter) -> str:
        """The id (as text) of the pack covering `action`'s invoices: found, or made now and stored once."""
        if action.kind is not ActionKind.ESCALATE or not action.handoff:
            raise Rejected(f"a {action.kind.value} action without hand-off makes no hand-off pack")
        with self.store.unit_of_work() as uow:
            connection = uow.connections.by_id(connection_id)
            if connection is None:
                raise Rejected(f"connection {connection_id} does not exist")
            invoice_ids = self._same_day(uow.session, connection_id, action)
            key = pack_key(str(connection_id), action.customer_external_id, action.local_date.isoformat(), invoice_ids)
            found = uow.session.scalar(select(HandoffPack.id).where(HandoffPack.pack_key == key))
            if found is not None:
                return str(found)
            evidence = read_evidence(uow, connection, action.customer_external_id, invoice_ids, self.locale)
            snapshots = {
                row.external_id: snapshot_of(row)
                for row in uow.session.scalars(
                    select(Invoice).where(Invoice.connection_id == connection_id, Invoice.external_id.in_(invoice_ids))
                )
            }
            client = uow.session.get(ClientSettings, connection_id)
            tz_name = (client.time_zone if client else "") or connection.time_zone or "UTC"
        letter_date = self.now().astimezone(_zone(tz_name)).date()
        files = self._files(evidence, snapshots, adapter, letter_date, key)
        return self._store(action, connection_id, key, evidence, files, letter_date)

    @staticmethod
    def _same_day(session: Session, connection_id: int, action: Action) -> tuple[str, ...]:
        """The invoices of the customer's hand-off escalations of the action's local day (the action's own)."""
        rows = session.scalars(
            select(ActionRow.payload).where(
                ActionRow.connection_id == connection_id,
                ActionRow.customer_external_id == action.customer_external_id,
                ActionRow.kind == ActionKind.ESCALATE.value,
                ActionRow.state.in_(_LIVE_STATES),
            )
        )
        ids = set(action.invoice_external_ids)
        day = action.local_date.isoformat()
        for payload in rows:
            if payload.get("handoff") is True and payload.get("local_date") == day:
                ids.update(str(i) for i in payload.get("invoice_external_ids") or ())
        return tuple(sorted(ids))

    def _files(
        self,
        evidence: Evidence,
        snapshots: dict[str, InvoiceSnapshot],
        adapter: AccountingAdapter,
        letter_date: date,
        key: str,
    ) -> PackFiles:
        uk = is_uk_client(evidence.country, evidence.home_currency)
        claims = [claim_for(debt, letter_date, statutory=uk, base_rate=self.uk_base_rate) for debt in evidence.debts]
        pdfs: dict[str, bytes] = {}
        links: dict[str, str] = {}
        for external_id, snapshot in snapshots.items():
            pdf = _asked(partial(adapter.invoice_pdf, snapshot), "invoice PDF", external_id)
            if pdf:
                pdfs[external_id] = pdf
            link = _asked(partial(adapter.payment_link, snapshot), "pay link", external_id)
            if link:
                links[external_id] = link
        found = _asked(partial(adapter.customer_contacts, evidence.customer_external_id), "contact", "")
        contact = Contact(tuple(found.address), found.phone) if found is not None else Contact()
        return make_files(
            evidence,
            claims,
            kind=PRE_ACTION if uk and self.uk_base_rate is not None else FINAL_DEMAND,
            letter_date=letter_date,
            reference=key[:10].upper(),
            contact=contact,
            invoice_pdfs=pdfs,
            pay_links=links,
            base_rate=self.uk_base_rate,
        )

    def _store(
        self, action: Action, connection_id: int, key: str, evidence: Evidence, files: PackFiles, letter_date: date
    ) -> str:
        now = self.now()
        numbers = [debt.number for debt in evidence.debts]
        values = {
            "pack_key": key,
            "organization_id": evidence.organization_id,
            "connection_id": connection_id,
            "action_key": action.key,
            "customer_external_id": evidence.customer_external_id,
            "customer_name": evidence.customer_name[:300],
            "invoice_external_ids": [debt.external_id for debt in evidence.debts],
            "invoice_numbers": numbers,
            "kind": files.kind,
            "letter_date": letter_date,
            "totals": {
                t.currency: {
                    "invoices": t.invoices,
                    "outstanding": str(t.outstanding.amount),
                    "interest": str(t.interest.amount),
                    "compensation": str(t.compensation.amount),
                    "claimed": str(t.claimed.amount),
                }
                for t in files.totals
            },
            "letter_pdf": files.letter_pdf,
            "evidence_zip": files.evidence_zip,
            "placement_csv": files.placement_csv,
            "missing_pdfs": list(files.missing_pdfs),
            "created_at": now,
        }
        with self.store.unit_of_work() as uow:
            insert = pg_insert if uow.session.get_bind().dialect.name == "postgresql" else sqlite_insert
            made = uow.session.execute(
                insert(HandoffPack).values(**values).on_conflict_do_nothing(index_elements=["pack_key"])
            )
            if made.rowcount:  # type: ignore[attr-defined]
                uow.activities.record(
                    evidence.organization_id,
                    "handoff.pack",
                    f"Hand-off pack for {evidence.customer_name}"[:200],
                    connection_id=connection_id,
                    at=now,
                    detail={
                        "customer": evidence.customer_external_id,
                        "invoices": numbers,
                        "kind": files.kind,
                        "pack": key,
                        "action": action.key,
                        "missing_pdfs": list(files.missing_pdfs),
                    },
                )
            uow.commit()
            pack_id = uow.session.scalar(select(HandoffPack.id).where(HandoffPack.pack_key == key))
        assert pack_id is not None
        return str(pack_id)


_T = TypeVar("_T")


def _asked(call: Callable[[], _T], what: str, external_id: str) -> _T | None:
    """`call()`'s answer; None when the ledger refuses (no such PDF, link or contact). A transient failure
    propagates: the escalation is retried with the same key, and the pack is made then."""
    try:
        return call()
    except Transient:
        raise
    except NudgeError as exc:
        log.info("hand-off pack: the ledger gave no %s for %s: %s", what, external_id or "the customer", exc)
        return None


def _zone(name: str) -> ZoneInfo:
    try:
        return zone(name)
    except ValueError:  # an unknown zone on the row: the letter is dated in UTC rather than not made
        return zone("UTC")

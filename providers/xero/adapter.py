"""XeroAdapter: one Xero organisation (tenant) behind Nudge's AccountingAdapter port.

Sync (docs/design.md "Sync", docs/provider-api-facts.md §2.2):
- full reconcile (cursor None): customer contacts (`where=IsCustomer==true`, pageSize 1000), then
  open receivables `where=Type=="ACCREC"`, `Statuses=AUTHORISED,SUBMITTED`, `order=UpdatedDateUTC ASC`,
  `summaryOnly`, pageSize 1000 — 10,000 open invoices take 10 invoice calls.
- incremental: the same with `If-Modified-Since: <cursor>` and every status, so paid, voided and
  deleted invoices flow through; contacts are fetched by `IDs` only for invoices that changed.
- money (issue 11, `Page.payments`): a sweep that brought changed invoices also reads the receivable
  Payments and CreditNotes modified since (a payment, its deletion or a credit allocation always
  changes its invoice, so a quiet sweep stays one call); the first sync also reads the payments embedded
  in the open invoices it saw partly paid (by `IDs`, only when there are any). The open credit
  (overpayments, prepayments, unallocated credit notes: three listings) is read before acting through
  `open_credits()`, not by the daily reconcile, so a connection at rest costs two calls a day to reconcile
  (contacts, open invoices) and one per safety-net poll (issue 13: at most 6 reads a day).
- the cursor is the largest `UpdatedDateUTC` seen (inclusive: upserts are idempotent); a full
  reconcile never moves it past the server time at which it started, so changes made while it
  ran are picked up by the next incremental sweep.
Known limit of Xero's offset paging: if invoices change while a multi-page listing runs, one unchanged
invoice may shift across a page boundary and be missed by that run; the next full reconcile sees it.
Concurrency: the full reconcile's first invoice answer states the page count; the pages after it are read
ahead concurrently (`page_concurrency`, at most the organisation's 5 concurrent calls, §2.4, every call through
the tenant's shared limiter, which keeps the 60 a minute) and handed over in order with the cursors of a
one-page-at-a-time sweep. Incremental sweeps read one page after another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import urllib3
from xero_python.accounting import (
    Allocation,
    Allocations,
    Contact,
    CreditNote,
    CreditNotes,
    CurrencyCode,
    HistoryRecord,
    HistoryRecords,
    Invoice,
    Invoices,
    LineAmountTypes,
    LineItem,
    RequestEmpty,
)
from xero_python.exceptions import HTTPStatusException
from xero_python.identity import IdentityApi

from connector.domain.model import (
    ConnectionInfo,
    CustomerSnapshot,
    InvoiceSnapshot,
    InvoiceStatus,
    PaymentKind,
    PaymentSnapshot,
)
from connector.domain.money import Money
from connector.errors import AuthError, MappingError, NotFound, Rejected, Transient
from connector.ports import OpenCredits, Page, ProviderSettings, Quarantined, TokenSet, TokenSource, WriteResult
from connector.ratelimit.readahead import ReadAhead, read_ahead_width
from connector.ratelimit.tenant import LimitWaits
from providers.xero import mapping
from providers.xero.client import Answer, RateLimiter, XeroClient, status_of
from providers.xero.constants import (
    CONTACT_IDS_PER_CALL,
    FEE_MARKER,
    HISTORY_DETAILS_MAX,
    IDEMPOTENCY_KEY_MAX,
    IDENTITY_TIMEOUT,
    NOTE_MARKER,
    NOTE_RECORDS_MAX,
    PAGE_SIZE,
    PROVIDER_KEY,
    REFERENCE_MAX,
)
from providers.xero.oauth import FixedTokens, api_client, connections_base, revoke

OPEN_STATUSES = ["AUTHORISED", "SUBMITTED"]
ALL_STATUSES = ["DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED"]
DEFAULT_OPTIONS: dict[str, str] = {
    "late_fee_account_code": "260",
    "late_fee_tax_type": "NONE",
    "late_fee_item_code": "",
    "fee_reference_prefix": "Late fee for",
    "credit_account_code": "",  # "" = late_fee_account_code
    "credit_tax_type": "",  # "" = late_fee_tax_type
    "credit_reference_prefix": "Credit for",
    "home_currency": "",  # "" = read /Organisation once when an invoice names no currency
}


def xero_time_zone(name: str) -> ZoneInfo:
    """The zone a Xero `Timezone` names: an IANA name, or Xero's Windows-style id (`NEWZEALANDSTANDARDTIME`); UTC
    when it names none."""
    return ZoneInfo(mapping.zone_name(name) or "UTC")


def idempotency_key(key: str, suffix: str = "") -> str:
    """The action key (plus a per-call suffix) within Xero's 128 characters; longer keys are hashed."""
    text = f"{key}:{suffix}" if suffix else key
    if len(text) <= IDEMPOTENCY_KEY_MAX:
        return text
    return hashlib.sha256(text.encode()).hexdigest()


def split_note(text: str, limit: int = HISTORY_DETAILS_MAX, most: int = NOTE_RECORDS_MAX) -> list[str]:
    """Cut `text` into at most `most` history notes of at most `limit` characters, on word boundaries, numbered
    if several; what does not fit ends in "…" (a long note is cut, never refused)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return [text] if text else []
    room = limit - len("[9/9] ")
    parts: list[str] = []
    rest = text
    while rest:
        if len(rest) <= room:
            parts.append(rest)
            break
        if len(parts) == most - 1:
            parts.append(rest[: room - 1].rstrip() + "…")
            break
        cut = rest.rfind(" ", 0, room + 1)
        if cut <= 0:
            cut = room
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return [f"[{n}/{len(parts)}] {part}" for n, part in enumerate(parts, start=1)]


def _where_text(value: str) -> str:
    """A value safe inside a `where` string literal (quotes and backslashes dropped)."""
    return value.replace('"', "").replace("\\", "")


def _guid(value: str) -> str:
    cleaned = value.strip().lower()
    if not cleaned or any(ch not in "0123456789abcdef-" for ch in cleaned):
        raise Rejected(f"{value!r} is not a Xero id.", provider=PROVIDER_KEY)
    return cleaned


class XeroAdapter:
    """AccountingAdapter for one Xero tenant. Every method raises only connector.errors.ProviderError."""

    def __init__(
        self,
        tenant_id: str,
        token_source: TokenSource,
        settings: ProviderSettings,
        *,
        limiter: RateLimiter | None = None,
        today: Callable[[], date] | None = None,
        page_concurrency: int | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.settings = settings
        self.options: dict[str, Any] = {**DEFAULT_OPTIONS, **dict(settings.options)}
        self.client = XeroClient(tenant_id, token_source, settings, limiter=limiter)
        # Invoice pages a full reconcile fetches at once (1: one after another), within the organisation's
        # concurrent-call limit (5, docs/provider-api-facts.md §2.4); the keyword wins over the option.
        self.page_concurrency = read_ahead_width(
            self.options.get("page_concurrency") if page_concurrency is None else page_concurrency,
            self.client.limiter.concurrent,
            provider=PROVIDER_KEY,
        )
        self._today = today  # None: the organisation's date at Xero's own time (see `ledger_date`)
        self._contacts: dict[str, CustomerSnapshot] = {}
        self._home_currency = str(self.options.get("home_currency") or "")
        self._organisation: dict[str, Any] | None = None
        self._zone: ZoneInfo | None = None

    def __repr__(self) -> str:
        return f"XeroAdapter(tenant={self.tenant_id!r})"

    def limit_waits(self) -> LimitWaits:
        """How often and how long calls of this tenant waited for its limits (connector.ratelimit.CountsLimitWaits)."""
        return self.client.limiter.limit_waits()

    # -- helpers ------------------------------------------------------------------------------------
    def organisation(self) -> dict[str, Any]:
        """GET /Organisation, once per adapter (base currency, time zone)."""
        if self._organisation is None:
            rows = self.client.call("get_organisations").json().get("Organisations") or [{}]
            self._organisation = dict(rows[0]) if isinstance(rows[0], dict) else {}
        return self._organisation

    def home_currency(self) -> str:
        """The organisation's base currency (options, else one /Organisation call, cached)."""
        if not self._home_currency:
            self._home_currency = str(self.organisation().get("BaseCurrency") or "")
            if not self._home_currency:
                raise Rejected("Xero's organisation names no base currency.", provider=PROVIDER_KEY)
        return self._home_currency

    def ledger_zone(self) -> ZoneInfo:
        """The organisation's time zone: option `time_zone` (IANA), else /Organisation's `Timezone`, else UTC."""
        if self._zone is None:
            name = str(self.options.get("time_zone") or "") or str(self.organisation().get("Timezone") or "")
            self._zone = xero_time_zone(name)
        return self._zone

    def ledger_date(self, answer: Mapping[str, Any] | None = None) -> date:
        """Today's calendar date in the organisation's time zone — what fee invoices and credits are dated.

        "Now" is Xero's own `DateTimeUTC` of `answer` (the call just made) when there is one, else this
        machine's clock; never the UTC date, which in New Zealand is still yesterday each morning.
        """
        if self._today is not None:
            return self._today()
        try:
            now = mapping.parse_instant((answer or {}).get("DateTimeUTC"))
        except ValueError:
            now = datetime.now(UTC)
        return now.astimezone(self.ledger_zone()).date()

    def _map(self, raw: dict[str, Any]) -> InvoiceSnapshot:
        currency = str(raw.get("CurrencyCode") or "") or self.home_currency()
        snapshot = mapping.to_invoice(raw, home_currency=currency)
        contact = self._contacts.get(snapshot.customer_external_id)
        if contact is not None and contact.emails and not snapshot.emails:
            snapshot = replace(snapshot, emails=contact.emails)
        return snapshot

    def _map_page(self, rows: list[dict[str, Any]]) -> tuple[list[InvoiceSnapshot], list[Quarantined], datetime | None]:
        invoices: list[InvoiceSnapshot] = []
        quarantined: list[Quarantined] = []
        newest: datetime | None = None
        for raw in rows:
            if str(raw.get("Type") or "ACCREC") != "ACCREC":
                continue
            try:
                snapshot = self._map(raw)
            except MappingError as exc:
                quarantined.append(Quarantined(exc.external_id, exc.field, exc.reason))
                continue
            invoices.append(snapshot)
            if newest is None or snapshot.updated_at > newest:
                newest = snapshot.updated_at
        return invoices, quarantined, newest

    def _load_contacts(self, ids: list[str]) -> int:
        """Fetch contacts not yet known by id (≤ 100 per call); returns the number of calls made."""
        missing = [i for i in dict.fromkeys(ids) if i and i not in self._contacts]
        calls = 0
        for start in range(0, len(missing), CONTACT_IDS_PER_CALL):
            chunk = missing[start : start + CONTACT_IDS_PER_CALL]
            body = self.client.call("get_contacts", i_ds=chunk, include_archived=True).json()
            calls += 1
            for raw in body.get("Contacts") or []:
                try:
                    customer = mapping.to_customer(raw)
                except MappingError:
                    continue
                self._contacts[customer.external_id] = customer
        return calls

    def _all_customers(self) -> int:
        """Every customer contact (pageSize 1000); returns the number of calls made."""
        calls = 0
        page = 1
        while True:
            body = self.client.call(
                "get_contacts", where="IsCustomer==true", page=page, page_size=PAGE_SIZE, include_archived=True
            ).json()
            calls += 1
            for raw in body.get("Contacts") or []:
                try:
                    customer = mapping.to_customer(raw)
                except MappingError:
                    continue
                self._contacts[customer.external_id] = customer
            pagination = body.get("pagination") or {}
            if page >= int(pagination.get("pageCount") or 0) or len(body.get("Contacts") or []) < PAGE_SIZE:
                return calls
            page += 1

    def _customers_of(self, invoices: list[InvoiceSnapshot]) -> list[CustomerSnapshot]:
        seen: dict[str, CustomerSnapshot] = {}
        for invoice in invoices:
            cid = invoice.customer_external_id
            if cid and cid not in seen:
                seen[cid] = self._contacts.get(cid) or CustomerSnapshot(cid, invoice.customer_name)
        return list(seen.values())

    # -- sync -------------------------------------------------------------------------------------
    def changed_invoices(self, cursor: str | None, *, first_sync: bool = False) -> Iterator[Page]:
        """Pages of invoices changed since `cursor` (None: every open receivable, `full=True`).

        The cursor is `<max UpdatedDateUTC>` plus the ids already seen at exactly that instant
        (`<iso>|<id>,<id>`): the boundary is inclusive, so nothing sharing the instant is lost, yet a
        quiet sweep returns nothing and costs one call.
        """
        with _InvoicePages(self, cursor is None, _read_cursor(cursor)[0]) as pages:
            yield from self._sweep(cursor, pages, first_sync=first_sync)

    def _sweep(self, cursor: str | None, pages: _InvoicePages, *, first_sync: bool) -> Iterator[Page]:
        """`changed_invoices`, reading the invoice listing's answers from `pages`."""
        full = cursor is None
        since, boundary = _read_cursor(cursor)
        pending_calls = self._all_customers() if full else 0
        newest, newest_ids = since, set(boundary)
        started: datetime | None = None
        changed = False
        partly_paid: list[str] = []  # open invoices the reconcile saw with money already applied
        page = 1
        while True:
            body = pages.answer(page)
            pending_calls += 1
            if started is None and body.get("DateTimeUTC"):
                started = mapping.parse_instant(body["DateTimeUTC"])
            all_rows = body.get("Invoices") or []
            rows = [r for r in all_rows if not _already_seen(r, since, boundary)]
            if not full:
                ids = [str((r.get("Contact") or {}).get("ContactID") or "") for r in rows]
                pending_calls += self._load_contacts(ids)
            invoices, quarantined, _ = self._map_page(rows)
            newest, newest_ids = _newest(invoices, newest, newest_ids)
            cursor_at, cursor_ids = newest, newest_ids
            if full and started is not None and (cursor_at is None or cursor_at > started):
                # Never past the reconcile's start: changes made while it ran come with the next sweep.
                cursor_at, cursor_ids = started, set()
            next_cursor = _write_cursor(cursor_at, cursor_ids) if cursor_at is not None else cursor
            last = page >= _page_count(body) or len(all_rows) < PAGE_SIZE
            changed = changed or bool(rows)
            if full and first_sync:
                partly_paid.extend(_partly_paid(rows))
            payments: dict[tuple[PaymentKind, str], list[PaymentSnapshot]] = {}
            if last:
                pending_calls += pages.close()  # pages read ahead past a listing that ended early
            if last and since is not None and changed:
                pending_calls += self._money_since(since, payments, quarantined)
            if last and partly_paid:
                pending_calls += self._embedded_payments(partly_paid, payments, quarantined)
            yield Page(
                invoices=invoices,
                customers=self._customers_of(invoices),
                next_cursor=next_cursor,
                quarantined=quarantined,
                calls=pending_calls,
                full=full,
                payments=payments,
            )
            pending_calls = 0
            if last:
                return
            page += 1

    def _invoice_page(self, listing: Mapping[str, Any], page: int) -> dict[str, Any]:
        """One page of the invoice listing (on a read-ahead thread during a full reconcile)."""
        body: dict[str, Any] = self.client.call("get_invoices", page=page, **listing).json()
        return body

    def _money_since(
        self,
        since: datetime,
        payments: dict[tuple[PaymentKind, str], list[PaymentSnapshot]],
        quarantined: list[Quarantined],
    ) -> int:
        """The Payments and CreditNotes modified since the cursor, into `payments`; the calls made.

        A payment, its deletion or a credit allocation always changes its invoice, so this runs only when
        invoices changed: a quiet sweep stays one call.
        """
        calls = 0
        for method, collection, where in (
            ("get_payments", "Payments", 'PaymentType=="ACCRECPAYMENT"'),
            ("get_credit_notes", "CreditNotes", 'Type=="ACCRECCREDIT"'),
        ):
            kwargs: dict[str, Any] = {"where": where, "if_modified_since": since}
            calls += self._read_money(method, collection, kwargs, payments, quarantined)
        return calls

    def open_credits(self) -> OpenCredits:
        """The open credit: every received overpayment and prepayment (few; each with its allocations, so a
        stale unapplied row is corrected) and the AUTHORISED receivable credit notes. Three listings, read
        before acting (connector.sync.credits), never on a poll."""
        payments: dict[tuple[PaymentKind, str], list[PaymentSnapshot]] = {}
        quarantined: list[Quarantined] = []
        calls = 0
        for method, collection, where in (
            ("get_overpayments", "Overpayments", 'Type=="RECEIVE-OVERPAYMENT"'),
            ("get_prepayments", "Prepayments", 'Type=="RECEIVE-PREPAYMENT"'),
            ("get_credit_notes", "CreditNotes", 'Status=="AUTHORISED" AND Type=="ACCRECCREDIT"'),
        ):
            calls += self._read_money(method, collection, {"where": where}, payments, quarantined)
        return OpenCredits(payments, quarantined, calls)

    def _embedded_payments(
        self,
        invoice_ids: list[str],
        payments: dict[tuple[PaymentKind, str], list[PaymentSnapshot]],
        quarantined: list[Quarantined],
    ) -> int:
        """The payments embedded in these invoices (full, not summaryOnly, ≤ 100 per call); the calls made.

        A Xero Payment pays exactly one invoice, so its embedded summary (PaymentID, Date, Amount) with the
        invoice as context is its complete set. Only the reconcile needs this: the payments made on open
        invoices before it (incremental sweeps read Payments modified since). A credit note embedded there
        that the open-credit listing did not bring (fully allocated) is read whole by id (≤ 25 per call).
        """
        calls = 0
        credit_ids: list[str] = []
        for start in range(0, len(invoice_ids), CONTACT_IDS_PER_CALL):
            chunk = invoice_ids[start : start + CONTACT_IDS_PER_CALL]
            body = self.client.call("get_invoices", i_ds=chunk, page=1, page_size=PAGE_SIZE).json()
            calls += 1
            for invoice in body.get("Invoices") or []:
                self._embedded_in(invoice, payments, quarantined)
                credit_ids.extend(_embedded_ids(invoice, "CreditNotes", "CreditNoteID"))
        missing = [i for i in dict.fromkeys(credit_ids) if (PaymentKind.CREDIT, i) not in payments]
        for start in range(0, len(missing), CREDIT_IDS_PER_CALL):
            chunk = missing[start : start + CREDIT_IDS_PER_CALL]
            where = " OR ".join(f'CreditNoteID==guid("{i}")' for i in chunk)
            calls += self._read_money("get_credit_notes", "CreditNotes", {"where": where}, payments, quarantined)
        return calls

    def _embedded_in(
        self,
        invoice: Mapping[str, Any],
        payments: dict[tuple[PaymentKind, str], list[PaymentSnapshot]],
        quarantined: list[Quarantined],
    ) -> None:
        """The Payments[] embedded in one full invoice, each with the invoice as its context."""
        context = {k: invoice.get(k) for k in ("InvoiceID", "Type", "Contact", "CurrencyCode")}
        embedded = invoice.get("Payments")
        for raw in embedded if isinstance(embedded, list) else []:
            if not isinstance(raw, Mapping):
                continue
            item = {**raw, "Invoice": context}
            try:
                snapshots = mapping.to_payments(item, home_currency=self._money_currency(item))
                object_id, kind = mapping.money_key(item)
            except MappingError as exc:
                quarantined.append(Quarantined(exc.external_id, exc.field, exc.reason))
                continue
            payments[(kind, object_id)] = snapshots

    def _money_currency(self, raw: Mapping[str, Any]) -> str:
        """The object's own currency when it names one (no Organisation call), else the home currency."""
        invoice = raw.get("Invoice")
        named = raw.get("CurrencyCode") or (invoice.get("CurrencyCode") if isinstance(invoice, Mapping) else "")
        return named if isinstance(named, str) and named else self.home_currency()

    def _read_money(
        self,
        method: str,
        collection: str,
        kwargs: dict[str, Any],
        payments: dict[tuple[PaymentKind, str], list[PaymentSnapshot]],
        quarantined: list[Quarantined],
    ) -> int:
        """Every page of one money listing mapped into `payments` (bad objects quarantined); the calls made."""
        calls, page = 0, 1
        while True:
            body = self.client.call(method, page=page, page_size=PAGE_SIZE, **kwargs).json()
            calls += 1
            rows = body.get(collection) or []
            for raw in rows:
                try:
                    snapshots = mapping.to_payments(raw, home_currency=self._money_currency(raw))
                except MappingError as exc:
                    quarantined.append(Quarantined(exc.external_id, exc.field, exc.reason))
                    continue
                object_id, kind = mapping.money_key(raw)
                payments[(kind, object_id)] = snapshots
            pagination = body.get("pagination") or {}
            if page >= int(pagination.get("pageCount") or 0) or len(rows) < PAGE_SIZE:
                return calls
            page += 1

    def get_invoice(self, external_id: str) -> InvoiceSnapshot | None:
        """The invoice now; None when Xero has no such invoice or it is DELETED."""
        try:
            body = self.client.call("get_invoice", _guid(external_id)).json()
        except NotFound:
            return None
        rows = body.get("Invoices") or []
        if not rows:
            return None
        try:
            snapshot = self._map(rows[0])
        except MappingError as exc:
            raise Rejected(
                f"Xero invoice {external_id} could not be read ({exc.field}).", provider=PROVIDER_KEY
            ) from None
        return None if snapshot.status is InvoiceStatus.DELETED else snapshot

    def customer_contacts(self, external_id: str) -> CustomerSnapshot:
        """The contact's name, primary email and "include in emails" persons."""
        try:
            body = self.client.call("get_contact", _guid(external_id)).json()
        except NotFound:
            raise Rejected(f"Xero has no contact {external_id}.", provider=PROVIDER_KEY, status=404) from None
        customer = mapping.to_customer((body.get("Contacts") or [{}])[0])
        self._contacts[customer.external_id] = customer
        return customer

    def unapplied_credit(self, customer_external_id: str) -> Money | None:
        """Overpayments, prepayments and credit notes not yet allocated (the hold rule)."""
        contact = _guid(customer_external_id)
        base = f'Contact.ContactID==guid("{contact}") AND Status=="AUTHORISED"'
        totals: dict[str, Decimal] = {}
        for method, collection, where in (
            ("get_overpayments", "Overpayments", base),
            ("get_prepayments", "Prepayments", base),
            ("get_credit_notes", "CreditNotes", base + ' AND Type=="ACCRECCREDIT"'),
        ):
            body = self.client.call(method, where=where).json()
            for row in body.get(collection) or []:
                if str(row.get("Type") or "").startswith("SPEND"):
                    continue
                remaining = mapping.amount(row.get("RemainingCredit") or 0)
                if remaining > 0:
                    currency = str(row.get("CurrencyCode") or "") or self.home_currency()
                    totals[currency] = totals.get(currency, Decimal(0)) + remaining
        if not totals:
            return None
        if len(totals) == 1:
            currency, value = next(iter(totals.items()))
            return Money.of(value, currency)
        home = self.home_currency()
        return Money.of(totals[home], home) if home in totals else None

    def provider_reminders_enabled(self) -> bool:
        """Whether Xero's own invoice reminders are on (double-chasing warning; docs/provider-api-facts.md §2.7)."""
        body = self.client.call("get_invoice_reminders").json()
        rows = body.get("InvoiceReminders") or []
        return bool(rows and rows[0].get("Enabled"))

    # -- write-back -----------------------------------------------------------------------------------
    def add_note(self, invoice: InvoiceSnapshot, text: str, key: str) -> WriteResult:
        """PUT /Invoices/{id}/History with the key: the note split to the Details length limit (at most
        NOTE_RECORDS_MAX records, the rest cut), its last record ending in `[nudge <key hash>]`. Xero dates each
        record itself (DateUTC). The history is read first: a key whose marker is already there writes nothing,
        whether or not Xero still remembers the Idempotency-Key (its replay window is [unverified], §2.4)."""
        ident = _guid(invoice.external_id)
        marker = f"{NOTE_MARKER}{hashlib.sha256(key.encode()).hexdigest()[:8]}]"
        notes = split_note(text, HISTORY_DETAILS_MAX - len(marker) - 1)
        if not notes:
            raise Rejected("An empty note cannot be written to Xero.", provider=PROVIDER_KEY)
        history = self.client.call("get_invoice_history", ident).json().get("HistoryRecords") or []
        if any(isinstance(row, dict) and marker in str(row.get("Details") or "") for row in history):
            return WriteResult(external_ref=invoice.external_id, replayed=True)
        notes[-1] = f"{notes[-1]} {marker}"
        records = HistoryRecords(history_records=[HistoryRecord(details=note) for note in notes])
        answer = self.client.call(
            "create_invoice_history", ident, records, idempotency_key=idempotency_key(key), retry_writes=True
        )
        return WriteResult(external_ref=invoice.external_id, replayed=_replayed(answer))

    def _reference(self, prefix_option: str, invoice: InvoiceSnapshot, key: str) -> str:
        prefix = str(self.options.get(prefix_option) or "").strip()
        tag = hashlib.sha256(key.encode()).hexdigest()[:10]
        return _where_text(f"{prefix} {invoice.number or invoice.external_id} ({tag})").strip()[:REFERENCE_MAX]

    def _fee_reference(self, invoice: InvoiceSnapshot, key: str) -> tuple[str, str]:
        """(the fee invoice's Reference, ending in Nudge's FEE_MARKER; the marker-less one earlier versions wrote,
        still looked for so that a fee written before the marker existed is found again, not written twice)."""
        legacy = self._reference("fee_reference_prefix", invoice, key)
        return f"{legacy[: REFERENCE_MAX - len(FEE_MARKER) - 1]} {FEE_MARKER}".strip(), legacy

    def _find_invoice_by_reference(
        self, reference: str, legacy: str = ""
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """The invoice with `reference` (or `legacy`; None when there is none) and the whole answer."""
        where = f'Type=="ACCREC" AND Reference=="{reference}"'
        if legacy and legacy != reference:
            where += f' OR Type=="ACCREC" AND Reference=="{legacy}"'  # AND binds tighter than OR
        body = self.client.call(
            "get_invoices",
            where=where,
            statuses=["DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED"],
        ).json()
        rows = body.get("Invoices") or []
        return (rows[0] if rows else None), body

    def create_fee_invoice(self, invoice: InvoiceSnapshot, amount: Money, description: str, key: str) -> WriteResult:
        """A new AUTHORISED ACCREC invoice for the fee, due today, `Reference` naming the original and ending in
        Nudge's FEE_MARKER (any Nudge syncing this organisation knows the invoice as a fee, never to be chased)."""
        if amount.currency != invoice.currency or not amount.is_positive():
            raise Rejected("A late fee must be a positive amount in the invoice's currency.", provider=PROVIDER_KEY)
        reference, legacy = self._fee_reference(invoice, key)
        found, lookup = self._find_invoice_by_reference(reference, legacy)
        if found is not None:
            return WriteResult(external_ref=str(found["InvoiceID"]), replayed=True)
        today = self.ledger_date(lookup)
        line = LineItem(
            description=description[:4000] or "Late fee",
            quantity=Decimal(1),
            unit_amount=amount.amount,
            account_code=str(self.options["late_fee_account_code"]),
            tax_type=str(self.options["late_fee_tax_type"]),
        )
        if self.options.get("late_fee_item_code"):
            line.item_code = str(self.options["late_fee_item_code"])
        fee = Invoice(
            type="ACCREC",
            contact=Contact(contact_id=_guid(invoice.customer_external_id)),
            line_items=[line],
            date=today,
            due_date=today,
            status="AUTHORISED",
            reference=reference,
            currency_code=CurrencyCode(invoice.currency),
            line_amount_types=LineAmountTypes("Exclusive"),
        )
        answer = self.client.call(
            "create_invoices", Invoices(invoices=[fee]), idempotency_key=idempotency_key(key), retry_writes=True
        )
        created = (answer.json().get("Invoices") or [{}])[0]
        return WriteResult(external_ref=str(created.get("InvoiceID") or ""), replayed=_replayed(answer))

    def create_credit(self, invoice: InvoiceSnapshot, amount: Money, reason: str, key: str) -> WriteResult:
        """An AUTHORISED ACCRECCREDIT credit note allocated to `invoice` (discount or fee reversal)."""
        if amount.currency != invoice.currency or not amount.is_positive():
            raise Rejected("A credit must be a positive amount in the invoice's currency.", provider=PROVIDER_KEY)
        reference = self._reference("credit_reference_prefix", invoice, key)
        body = self.client.call("get_credit_notes", where=f'Type=="ACCRECCREDIT" AND Reference=="{reference}"').json()
        existing = next((row for row in body.get("CreditNotes") or [] if row.get("Status") != "VOIDED"), None)
        replayed = existing is not None
        if existing is None:
            credit = CreditNote(
                type="ACCRECCREDIT",
                contact=Contact(contact_id=_guid(invoice.customer_external_id)),
                date=self.ledger_date(body),
                status="AUTHORISED",
                reference=reference,
                currency_code=CurrencyCode(invoice.currency),
                line_amount_types=LineAmountTypes("Exclusive"),
                line_items=[
                    LineItem(
                        description=reason[:4000] or "Credit",
                        quantity=Decimal(1),
                        unit_amount=amount.amount,
                        account_code=str(
                            self.options.get("credit_account_code") or self.options["late_fee_account_code"]
                        ),
                        tax_type=str(self.options.get("credit_tax_type") or self.options["late_fee_tax_type"]),
                    )
                ],
            )
            answer = self.client.call(
                "create_credit_notes",
                CreditNotes(credit_notes=[credit]),
                idempotency_key=idempotency_key(key, "credit"),
                retry_writes=True,
            )
            existing = (answer.json().get("CreditNotes") or [{}])[0]
        credit_id = str(existing.get("CreditNoteID") or "")
        allocated = any(
            str((a.get("Invoice") or {}).get("InvoiceID") or "") == invoice.external_id
            for a in existing.get("Allocations") or []
        )
        if not allocated and mapping.amount(existing.get("RemainingCredit", amount.amount)) > 0:
            allocation = Allocation(
                invoice=Invoice(invoice_id=_guid(invoice.external_id)),
                amount=amount.amount,
                date=self.ledger_date(body),
            )
            self.client.call(
                "create_credit_note_allocation",
                credit_id,
                Allocations(allocations=[allocation]),
                idempotency_key=idempotency_key(key, "allocate"),
                retry_writes=True,
            )
        return WriteResult(external_ref=credit_id, replayed=replayed)

    def void_fee_invoice(self, external_ref: str, key: str) -> WriteResult:
        """VOIDED (AUTHORISED/SUBMITTED without payments) or DELETED (DRAFT) — docs/provider-api-facts.md §2.2."""
        invoice_id = _guid(external_ref)
        try:
            current = (self.client.call("get_invoice", invoice_id).json().get("Invoices") or [{}])[0]
        except NotFound:
            raise Rejected(f"Xero has no invoice {external_ref} to void.", provider=PROVIDER_KEY, status=404) from None
        status = str(current.get("Status") or "")
        if status in ("VOIDED", "DELETED"):
            return WriteResult(external_ref=invoice_id, replayed=True)
        target = "DELETED" if status == "DRAFT" else "VOIDED"
        self.client.call(
            "update_invoice",
            invoice_id,
            Invoices(invoices=[Invoice(invoice_id=invoice_id, status=target)]),
            idempotency_key=idempotency_key(key),
            retry_writes=True,
        )
        return WriteResult(external_ref=invoice_id)

    def invoice_pdf(self, invoice: InvoiceSnapshot) -> bytes | None:
        """GET /Invoices/{id} with `Accept: application/pdf`."""
        try:
            answer = self.client.call("get_invoice_as_pdf", _guid(invoice.external_id))
        except NotFound:
            return None
        return answer.data if answer.data.startswith(b"%PDF") else None

    def payment_link(self, invoice: InvoiceSnapshot) -> str | None:
        """The OnlineInvoice URL (None for drafts and other invoices Xero has no online view of)."""
        try:
            body = self.client.call("get_online_invoice", _guid(invoice.external_id)).json()
        except (NotFound, Rejected):
            return None
        rows = body.get("OnlineInvoices") or []
        url = str(rows[0].get("OnlineInvoiceUrl") or "") if rows else ""
        return url or None

    def send_via_provider(self, invoice: InvoiceSnapshot, to: str, key: str) -> WriteResult:
        """POST /Invoices/{id}/Email: Xero mails the contact's addresses (docs/provider-api-facts.md §2.3), never `to`
        unless it is one of them — so a `to` outside them is refused rather than silently ignored."""
        contact = self.customer_contacts(invoice.customer_external_id)
        if to and to.lower() not in (e.lower() for e in contact.emails):
            raise Rejected(
                "Xero only emails the contact's own addresses; add this address to the contact in Xero first.",
                provider=PROVIDER_KEY,
            )
        self.client.call(
            "email_invoice",
            _guid(invoice.external_id),
            RequestEmpty(),
            idempotency_key=idempotency_key(key),
            retry_writes=True,
        )
        return WriteResult(external_ref=invoice.external_id)


class _InvoicePages:
    """The invoice listing's answers, page by page in order (a context manager: closing it stops the read-ahead).

    A full reconcile knows from the first answer how many pages follow and reads them concurrently,
    `page_concurrency` at once, through the tenant's shared limiter; pages beyond that count (invoices added
    meanwhile) are read one by one when an answer says another follows. An incremental sweep reads each page
    only when the previous answer says another follows.
    """

    def __init__(self, adapter: XeroAdapter, full: bool, since: datetime | None) -> None:
        self._adapter = adapter
        self._full = full
        self._listing: dict[str, Any] = {
            "where": 'Type=="ACCREC"',
            "statuses": OPEN_STATUSES if full else ALL_STATUSES,
            "order": "UpdatedDateUTC ASC",
            "page_size": PAGE_SIZE,
            "summary_only": True,
        }
        if since is not None:
            self._listing["if_modified_since"] = since
        self._ahead: ReadAhead[dict[str, Any]] | None = None

    def answer(self, page: int) -> dict[str, Any]:
        """The answer for `page` (pages are asked for in order, from 1)."""
        if self._ahead is not None:
            fetched = next(self._ahead, None)
            if fetched is not None:
                return fetched
        body = self._adapter._invoice_page(self._listing, page)
        if page == 1 and self._full:
            later = range(2, _page_count(body) + 1)
            tasks = (partial(self._adapter._invoice_page, self._listing, number) for number in later)
            name = f"xero-pages-{self._adapter.tenant_id[:8]}"
            self._ahead = ReadAhead(tasks, width=self._adapter.page_concurrency, name=name)
        return body

    def close(self) -> int:
        """Stop reading ahead; the number of pages read ahead but never asked for (each was a call)."""
        ahead, self._ahead = self._ahead, None
        return len(ahead.close()) if ahead is not None else 0

    def __enter__(self) -> _InvoicePages:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _page_count(body: Mapping[str, Any]) -> int:
    """The listing's page count as its answer states it (0 when it states none)."""
    pagination = body.get("pagination") or {}
    try:
        return int(pagination.get("pageCount") or 0)
    except (TypeError, ValueError, AttributeError):
        raise Transient("Xero answered with an unreadable page count.", provider=PROVIDER_KEY) from None


BOUNDARY_IDS_MAX = 50  # beyond this many ties the boundary invoices simply come again (idempotent upserts)


def _read_cursor(cursor: str | None) -> tuple[datetime | None, frozenset[str]]:
    if not cursor:
        return None, frozenset()
    stamp, _, ids = cursor.partition("|")
    return mapping.parse_cursor(stamp), frozenset(i for i in ids.split(",") if i)


CREDIT_IDS_PER_CALL = 25  # credit notes fetched by id through one `where` of OR-ed guid() clauses


def _embedded_ids(invoice: Mapping[str, Any], collection: str, id_field: str) -> list[str]:
    """The well-formed ids of the objects embedded in an invoice's `collection` (e.g. its CreditNotes)."""
    out = []
    embedded = invoice.get(collection)
    for raw in embedded if isinstance(embedded, list) else []:
        value = raw.get(id_field) if isinstance(raw, Mapping) else None
        if isinstance(value, str):
            with suppress(Rejected):
                out.append(_guid(value))
    return out


def _partly_paid(rows: list[dict[str, Any]]) -> list[str]:
    """The open invoices among `rows` that already have money on them (`AmountPaid` or `AmountCredited` > 0)."""
    out = []
    for raw in rows:
        try:
            paid = any(mapping.amount(raw.get(field) or 0) > 0 for field in ("AmountPaid", "AmountCredited"))
        except (ValueError, ArithmeticError):
            continue
        if paid and raw.get("InvoiceID") and str(raw.get("Type") or "ACCREC") == "ACCREC":
            out.append(str(raw["InvoiceID"]))
    return out


def _newest(
    invoices: list[InvoiceSnapshot], newest: datetime | None, ids: set[str]
) -> tuple[datetime | None, set[str]]:
    """The largest `updated_at` so far and the ids seen at exactly that instant, after `invoices`."""
    for invoice in invoices:
        if newest is None or invoice.updated_at > newest:
            newest, ids = invoice.updated_at, {invoice.external_id}
        elif invoice.updated_at == newest:
            ids.add(invoice.external_id)
    return newest, ids


def _write_cursor(moment: datetime, ids: set[str]) -> str:
    text = mapping.cursor_text(moment)
    if ids and len(ids) <= BOUNDARY_IDS_MAX:
        text += "|" + ",".join(sorted(ids))
    return text


def _already_seen(raw: dict[str, Any], since: datetime | None, boundary: frozenset[str]) -> bool:
    """An invoice at exactly the cursor's instant that the previous sweep already delivered."""
    if since is None or not boundary or str(raw.get("InvoiceID") or "") not in boundary:
        return False
    try:
        return mapping.parse_instant(raw.get("UpdatedDateUTC")) <= since
    except ValueError:
        return False


def _replayed(answer: Answer) -> bool:
    # Only the emulator says so; real Xero gives no sign of a replay (docs/provider-api-facts.md §2.4 [unverified]).
    return answer.headers.get("idempotency-replayed", "") == "true"


def build_adapter(tenant_id: str, token_source: TokenSource, settings: ProviderSettings) -> XeroAdapter:
    """ProviderSpec.adapter: the adapter for one connected organisation (no network until the first call)."""
    return XeroAdapter(tenant_id, token_source, settings)


def connect(settings: ProviderSettings, callback_params: Mapping[str, str], tokens: TokenSet) -> list[ConnectionInfo]:
    """ProviderSpec.connect: one ConnectionInfo per organisation authorised in THIS consent, with its country,
    holiday subdivision and time zone (one GET /Organisation per organisation, `mapping.organisation_region`).

    `GET /connections` alone lists every organisation the Xero user ever connected to the app (other
    Nudge organizations' included); `authEventId` — the access token's `authentication_event_id`
    claim — narrows it to the ones this consent connected (docs/provider-api-facts.md §2.1).
    """
    rows = _list_connections(settings, tokens, auth_event_id(tokens.access_token))
    return [_connection_info(row, _organisation_region(settings, tokens, row)) for row in rows]


def _organisation_region(settings: ProviderSettings, tokens: TokenSet, row: Any) -> dict[str, str]:
    """country / subdivision / time_zone of one connected organisation: one GET /Organisation (none for a
    PRACTICE tenant, which has no accounting file; its values stay "")."""
    tenant_type = str(getattr(row.tenant_type, "value", row.tenant_type) or "ORGANISATION")
    if tenant_type != "ORGANISATION":
        return {"country": "", "subdivision": "", "time_zone": ""}
    client = XeroClient(str(row.tenant_id), FixedTokens(tokens), settings)
    organisations = client.call("get_organisations").json().get("Organisations") or [{}]
    return mapping.organisation_region(organisations[0] if isinstance(organisations[0], dict) else {})


def auth_event_id(access_token: str) -> str:
    """The `authentication_event_id` claim of a Xero access token (a JWT), naming the consent that issued it.

    Read without verifying the signature: the token came straight from Xero's token endpoint over TLS,
    and the claim only narrows what Xero itself then lists. A token without the claim is refused.
    """
    parts = access_token.split(".")
    claim: Any = None
    if len(parts) == 3:
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (ValueError, binascii.Error):
            claims = None
        claim = claims.get("authentication_event_id") if isinstance(claims, dict) else None
    if not isinstance(claim, str) or not claim.strip():
        raise AuthError(
            "Xero's access token does not say which consent it belongs to; connect again.", provider=PROVIDER_KEY
        )
    return claim.strip()


def _list_connections(settings: ProviderSettings, tokens: TokenSet, event: str = "") -> list[Any]:
    """GET /connections (only those of consent `event` when given) with `tokens`."""
    identity = IdentityApi(api_client(FixedTokens(tokens), settings), base_url=connections_base(settings))
    try:
        if event:
            rows = identity.get_connections(auth_event_id=event, _request_timeout=IDENTITY_TIMEOUT)
        else:
            rows = identity.get_connections(_request_timeout=IDENTITY_TIMEOUT)
    except HTTPStatusException as exc:
        raise _connections_refused(status_of(exc)) from None
    except (OSError, ValueError, urllib3.exceptions.HTTPError) as exc:
        raise Transient(f"Xero could not be reached ({type(exc).__name__}).", provider=PROVIDER_KEY) from None
    return list(rows or [])


def disconnect_tenants(settings: ProviderSettings, tokens: TokenSet, tenant_ids: Collection[str]) -> list[str]:
    """End this Xero user's connection to each of `tenant_ids` (DELETE /connections/{id}); the tenants removed.

    Only those organisations lose Nudge's access: the grant, and the user's other connections (which
    other Nudge organizations may use), live on. Revoking the refresh token instead would remove every
    connection of the user (docs/provider-api-facts.md §2.1) — so it is revoked only once none is left.
    """
    wanted = set(tenant_ids)
    if not wanted:
        return []
    identity = IdentityApi(api_client(FixedTokens(tokens), settings), base_url=connections_base(settings))
    removed: list[str] = []
    for row in _list_connections(settings, tokens):
        tenant = str(row.tenant_id)
        if tenant not in wanted:
            continue
        try:
            identity.delete_connection(str(row.id), _request_timeout=IDENTITY_TIMEOUT)
        except HTTPStatusException as exc:
            if status_of(exc) != 404:  # 404: already gone, which is what was wanted
                raise _connections_refused(status_of(exc)) from None
        except (OSError, ValueError, urllib3.exceptions.HTTPError) as exc:
            raise Transient(f"Xero could not be reached ({type(exc).__name__}).", provider=PROVIDER_KEY) from None
        removed.append(tenant)
    if removed and not _list_connections(settings, tokens):
        revoke(settings, tokens)  # the user has no connection left: the refresh token can die too
    return removed


def tenant_connected(settings: ProviderSettings, tokens: TokenSet, tenant_id: str) -> bool:
    """Whether this Xero user still has a connection to `tenant_id` (GET /connections)."""
    return any(str(row.tenant_id) == tenant_id for row in _list_connections(settings, tokens))


def _connections_refused(status: int) -> AuthError | Transient | Rejected:
    if status in (401, 403):
        return AuthError("Xero refused to list the connected organisations.", provider=PROVIDER_KEY)
    if status >= 500 or status == 429:
        return Transient(f"Xero failed to list connections (HTTP {status}).", provider=PROVIDER_KEY)
    return Rejected(f"Xero rejected the connections request (HTTP {status}).", provider=PROVIDER_KEY)


def _connection_info(row: Any, region: Mapping[str, str]) -> ConnectionInfo:
    tenant_type = getattr(row.tenant_type, "value", row.tenant_type)
    return ConnectionInfo(
        provider=PROVIDER_KEY,
        tenant_id=str(row.tenant_id),
        name=str(row.tenant_name or ""),
        tenant_type=str(tenant_type or "ORGANISATION"),
        extra={"connection_id": str(row.id or ""), "auth_event_id": str(row.auth_event_id or ""), **region},
    )

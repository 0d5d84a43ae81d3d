"""QuickBooks Online behind Nudge's AccountingAdapter port (docs/design.md "The provider port").

Sync: a full reconcile is one batch call (open-invoice COUNT, customers, and the open credits: Payments with
UnappliedAmt and CreditMemos with a Balance left, their first 1000 each) then pages of 1000 open invoices
(MAXRESULTS maximum, docs/provider-api-facts.md §1.3): the first alone, the others read ahead concurrently
(`page_concurrency`, at most the realm's 10 concurrent calls, §1.6, every call through its shared limiter) and
handed over in order, so the sync stores them exactly as it would one after another. Incremental sync is one
CDC call for Invoice, Customer, Payment and CreditMemo with the server's `time` as the next cursor (§1.4),
falling back to a full reconcile when the cursor is older than CDC's 30-day window. Writes pass the action
key as `requestid` (§1.2) and look for their deterministic reference before re-creating anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from itertools import chain
from typing import Any

from quickbooks import QuickBooks

from connector.domain.model import ConnectionInfo, CustomerSnapshot, InvoiceSnapshot, PaymentKind, PaymentSnapshot
from connector.domain.money import Money
from connector.errors import MappingError, NotFound, ProviderError, Rejected, ReplayedObjectGone, Transient
from connector.ports import OpenCredits, Page, ProviderSettings, Quarantined, TokenSet, TokenSource, WriteResult
from connector.ratelimit.readahead import ReadAhead, read_ahead_width
from connector.ratelimit.tenant import LimitWaits
from providers.quickbooks.client import Duplicate, QboClient, StaleObject, digits, quote, request_id
from providers.quickbooks.constants import (
    CDC_MAX_OBJECTS,
    CDC_WINDOW,
    DOC_NUMBER_MAX,
    FEE_MARKER,
    NOTE_MARKER,
    PAGE_SIZE,
    PRIVATE_NOTE_MAX,
    PROVIDER_KEY,
)
from providers.quickbooks.mapping import MONEY_ENTITIES, is_voided, parse_instant, to_customer, to_invoice, to_payments
from providers.quickbooks.oauth import FixedTokens
from providers.quickbooks.region import company_region

OPEN_INVOICES = "FROM Invoice WHERE Balance > '0'"
CUSTOMER_PAGE = "SELECT * FROM Customer ORDERBY Id STARTPOSITION {} MAXRESULTS 1000"
# Money not (fully) applied yet: what a full reconcile reads besides open invoices (the unapplied-credit hold).
OPEN_CREDITS = {"Payment": "FROM Payment WHERE UnappliedAmt > '0'", "CreditMemo": "FROM CreditMemo WHERE Balance > '0'"}
CDC_ENTITIES = ("Invoice", "Customer", "Payment", "CreditMemo")
PaymentMap = dict[tuple[PaymentKind, str], list[PaymentSnapshot]]

DEFAULT_OPTIONS: dict[str, Any] = {
    "home_currency": "USD",
    "late_fee_item_name": "Late fee",
    "late_fee_income_account": "Late fee income",
    "late_fee_tax_code": "NON",
    "fee_doc_number_prefix": "LF-",
    "credit_item_name": "Early payment discount",
    "credit_income_account": "Discounts given",
    "credit_doc_number_prefix": "CR-",
}


def credit_batch_items() -> list[dict[str, str]]:
    """The batch items that read the open credits: each entity's COUNT and its first page."""
    return [
        item
        for entity, query in OPEN_CREDITS.items()
        for item in (
            {"bId": f"{entity}-count", "Query": f"SELECT COUNT(*) {query}"},
            {"bId": f"{entity}-page", "Query": f"SELECT * {query} ORDERBY Id STARTPOSITION 1 MAXRESULTS {PAGE_SIZE}"},
        )
    ]


@dataclass(frozen=True)
class _PageLayout:
    """What the reconcile's batch answer told about the pages to read."""

    pages: int  # pages of open invoices (at least 1, even when there are none)
    invoices: int  # open invoices counted
    customer_pages: int  # pages of customers (the first came with the batch)


@dataclass(frozen=True)
class _FetchedPage:
    """One page's raw answers, read ahead of the consumer: its open invoices and the customers riding along."""

    index: int
    invoices: list[Any]
    customers: list[Any]
    calls: int


def _short(key: str, n: int = 8) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:n]


def _text(value: str, limit: int) -> str:
    """Single-line-safe text for a ledger field (control characters other than newline dropped)."""
    cleaned = "".join(ch for ch in value if ch == "\n" or ch.isprintable())
    return cleaned[:limit]


class QuickBooksAdapter:
    """One QuickBooks company (realm) as an AccountingAdapter."""

    # The reconcile's one batch call carries the open credits too: no separate read before acting that day.
    reconcile_reads_open_credits = True

    def __init__(
        self,
        realm: str,
        token_source: TokenSource,
        settings: ProviderSettings,
        *,
        clock: Callable[[], datetime] | None = None,
        client: QboClient | None = None,
        page_concurrency: int | None = None,
    ) -> None:
        self.realm = digits(realm, "company id")
        self.settings = settings
        self.options = {**DEFAULT_OPTIONS, **dict(settings.options or {})}
        self.home_currency = str(self.options["home_currency"]).upper()
        self.client = client or QboClient(self.realm, token_source, settings)
        # Pages a full reconcile fetches at once (1: one after another), within the realm's concurrent-call
        # limit (10, docs/provider-api-facts.md §1.6); the keyword wins over the `page_concurrency` option.
        self.page_concurrency = read_ahead_width(
            self.options.get("page_concurrency") if page_concurrency is None else page_concurrency,
            self.client.limiter.concurrent,
            provider=PROVIDER_KEY,
        )
        self._clock = clock or (lambda: datetime.now(UTC))
        self._items: dict[str, str] = {}
        self._company_time = ""  # `time` of the last query answer: QuickBooks' now in the company's offset

    def __repr__(self) -> str:
        return f"QuickBooksAdapter(realm={self.realm!r})"

    def limit_waits(self) -> LimitWaits:
        """How often and how long calls of this tenant waited for its limits (connector.ratelimit.CountsLimitWaits)."""
        return self.client.limiter.limit_waits()

    @property
    def calls(self) -> int:
        """API calls made so far by this adapter (retries included)."""
        return self.client.calls

    # -- reading -----------------------------------------------------------------------------------
    def _map_invoices(self, raws: list[Any]) -> tuple[list[InvoiceSnapshot], list[Quarantined]]:
        invoices: list[InvoiceSnapshot] = []
        quarantined: list[Quarantined] = []
        for raw in raws:
            try:
                invoices.append(to_invoice(raw, home_currency=self.home_currency))
            except MappingError as exc:
                quarantined.append(Quarantined(exc.external_id, exc.field, exc.reason))
        return invoices, quarantined

    def _map_customers(self, raws: list[Any]) -> tuple[list[CustomerSnapshot], list[Quarantined]]:
        customers: list[CustomerSnapshot] = []
        quarantined: list[Quarantined] = []
        for raw in raws:
            try:
                customers.append(to_customer(raw))
            except MappingError as exc:
                quarantined.append(Quarantined(exc.external_id, "Customer." + exc.field, exc.reason))
        return customers, quarantined

    def _map_payments(self, raws: Mapping[str, list[Any]]) -> tuple[PaymentMap, list[Quarantined]]:
        """Each Payment/CreditMemo object's complete current set of snapshots (a tombstone: [])."""
        payments: PaymentMap = {}
        quarantined: list[Quarantined] = []
        used_on = _memo_invoices(raws)
        for entity, kind in MONEY_ENTITIES.items():
            for raw in raws.get(entity) or []:
                if entity == "CreditMemo":
                    raw = _with_invoice_links(raw, used_on.get(_id_of(raw), []))
                try:
                    payments[(kind, _id_of(raw))] = to_payments({entity: raw}, home_currency=self.home_currency)
                except MappingError as exc:
                    quarantined.append(Quarantined(exc.external_id, f"{entity}.{exc.field}", exc.reason))
        return payments, quarantined

    def _open_credits(self, by_id: dict[str, dict[str, Any]]) -> tuple[dict[str, list[Any]], int]:
        """The open credits (their first 1000 of each entity rode in the batch; more cost a query per 1000):
        (objects by entity, calls made)."""
        raws: dict[str, list[Any]] = {}
        calls = 0
        for entity, query in OPEN_CREDITS.items():
            try:
                count = int(self._batch_result(by_id[f"{entity}-count"]).get("totalCount", 0))
                raws[entity] = list(self._batch_result(by_id[f"{entity}-page"]).get(entity) or [])
            except (KeyError, ValueError, TypeError) as exc:
                raise Transient(
                    "QuickBooks sent a batch answer of an unexpected shape.", provider=PROVIDER_KEY
                ) from exc
            for start in range(1 + PAGE_SIZE, count + 1, PAGE_SIZE):
                answer = self.client.query(f"SELECT * {query} ORDERBY Id STARTPOSITION {start} MAXRESULTS {PAGE_SIZE}")
                calls += 1
                raws[entity] += list(answer.get(entity) or [])
        return raws, calls

    def open_credits(self) -> OpenCredits:
        """Payments with UnappliedAmt and CreditMemos with a Balance left: one batch call (COUNT and first
        1000 of each), a query per further 1000."""
        answers, _ = self.client.batch(credit_batch_items())
        raws, calls = self._open_credits({str(a.get("bId")): a for a in answers})
        payments, quarantined = self._map_payments(raws)
        return OpenCredits(payments, quarantined, calls + 1)

    def _batch_result(self, item: dict[str, Any]) -> dict[str, Any]:
        if "Fault" in item:
            with self.client.translate():
                QuickBooks.handle_exceptions(item["Fault"])
        result = item.get("QueryResponse")
        if not isinstance(result, dict):
            raise Transient("QuickBooks sent a batch answer of an unexpected shape.", provider=PROVIDER_KEY)
        return result

    def changed_invoices(self, cursor: str | None, *, first_sync: bool = False) -> Iterator[Page]:
        """Pages of changed invoices; the last page's next_cursor is the CDC cursor for next time.

        cursor None (or older than CDC's 30 days): a full reconcile of open invoices, pages marked
        `full`; intermediate pages carry next_cursor None, so an interrupted reconcile starts over.
        """
        if cursor is None or self._too_old(cursor):
            yield from self._full_reconcile()
            return
        yield from self._incremental(cursor)

    def _too_old(self, cursor: str) -> bool:
        try:
            since = parse_instant(cursor)
        except ValueError:
            return True
        return since < self._clock() - CDC_WINDOW + timedelta(minutes=10)

    def _full_reconcile(self) -> Iterator[Page]:
        answers, server_time = self.client.batch(
            [
                {"bId": "invoices", "Query": f"SELECT COUNT(*) {OPEN_INVOICES}"},
                {"bId": "customers", "Query": "SELECT COUNT(*) FROM Customer"},
                {"bId": "customer-page", "Query": CUSTOMER_PAGE.format(1)},
                *credit_batch_items(),
            ]
        )
        by_id = {str(a.get("bId")): a for a in answers}
        try:
            total = int(self._batch_result(by_id["invoices"]).get("totalCount", 0))
            customer_total = int(self._batch_result(by_id["customers"]).get("totalCount", 0))
            first_customers = self._batch_result(by_id["customer-page"]).get("Customer") or []
        except (KeyError, ValueError, TypeError) as exc:
            raise Transient("QuickBooks sent a batch answer of an unexpected shape.", provider=PROVIDER_KEY) from exc
        cursor = server_time or self._clock().isoformat()
        customers, quarantined = self._map_customers(list(first_customers))
        credit_raws, calls = self._open_credits(by_id)
        payments, bad_credits = self._map_payments(credit_raws)
        quarantined += bad_credits
        customer_pages = (customer_total + PAGE_SIZE - 1) // PAGE_SIZE
        pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
        calls += 1
        layout = _PageLayout(pages=pages, invoices=total, customer_pages=customer_pages)
        # The first page goes alone (an answer every page would get — a refused token, a throttle — comes
        # once, not `width` times); the rest are read ahead concurrently while the consumer stores it.
        head = iter([self._fetch_page(layout, 0)])  # an exhausted iterator lets go of its page
        later = (partial(self._fetch_page, layout, index) for index in range(1, pages))
        with ReadAhead(later, width=self.page_concurrency, name=f"qbo-pages-{self.realm}") as rest:
            for fetched in chain(head, rest):
                extra_customers, more = self._map_customers(fetched.customers)
                invoices, bad = self._map_invoices(fetched.invoices)
                last = fetched.index == pages - 1
                yield Page(
                    invoices=invoices,
                    customers=(customers if fetched.index == 0 else []) + extra_customers,
                    next_cursor=cursor if last else None,
                    quarantined=quarantined + more + bad,
                    calls=calls + fetched.calls,
                    full=True,
                    payments=payments if fetched.index == 0 else {},
                )
                calls = 0
                quarantined = []
                if fetched.invoices and len(fetched.invoices) < PAGE_SIZE and not last:
                    # Fewer open invoices than counted (some got paid meanwhile): finish with an empty last
                    # page, which carries the calls of the pages already read ahead past the end.
                    spent = sum(page.calls for page in rest.close())
                    yield Page(invoices=[], customers=[], next_cursor=cursor, calls=spent, full=True)
                    return

    def _fetch_page(self, layout: _PageLayout, index: int) -> _FetchedPage:
        """Page `index` of the reconcile's open invoices, with the customer page that rides along (customers
        beyond the first 1000 ride along later pages; the last page brings any still left). Runs on a
        read-ahead thread: it only reads from QuickBooks, through the realm's shared limiter."""
        calls = 0
        customers: list[Any] = []
        if 0 < index < layout.customer_pages:
            answer = self.client.query(CUSTOMER_PAGE.format(1 + index * PAGE_SIZE))
            calls += 1
            customers += list(answer.get("Customer") or [])
        invoices: list[Any] = []
        if layout.invoices:
            start = 1 + index * PAGE_SIZE
            answer = self.client.query(
                f"SELECT * {OPEN_INVOICES} ORDERBY Id STARTPOSITION {start} MAXRESULTS {PAGE_SIZE}"
            )
            calls += 1
            invoices = list(answer.get("Invoice") or [])
        if index == layout.pages - 1:
            for more_index in range(layout.pages, layout.customer_pages):
                answer = self.client.query(CUSTOMER_PAGE.format(1 + more_index * PAGE_SIZE))
                calls += 1
                customers += list(answer.get("Customer") or [])
        return _FetchedPage(index=index, invoices=invoices, customers=customers, calls=calls)

    def _incremental(self, cursor: str) -> Iterator[Page]:
        """CDC pages from `cursor`, each entity advancing on its own (RS-26).

        CDC caps every entity at 1000 objects per answer, oldest first (docs/provider-api-facts.md §1.4). A
        truncated entity continues from its own newest change (inclusive; objects already yielded at that
        instant are not yielded again); an entity that came back whole is done up to that answer's server
        time. A page's next_cursor is the earliest instant not yet read completely for some entity.
        """
        since = dict.fromkeys(CDC_ENTITIES, cursor)  # pending entity -> its changedSince
        done: dict[str, str] = {}  # complete entity -> server time of the answer that completed it
        seen: dict[str, dict[str, datetime]] = {entity: {} for entity in CDC_ENTITIES}  # yielded at the boundary
        while since:
            value = min(since.values(), key=parse_instant)
            entities = [entity for entity in CDC_ENTITIES if since.get(entity) == value]
            try:
                answer = self.client.cdc(",".join(entities), value)
            except Rejected:
                # The server refused the window (e.g. beyond 30 days by its clock): reconcile instead.
                yield from self._full_reconcile()
                return
            raws, server_time = _cdc_answer(answer, entities)
            stalled = False
            for entity in entities:
                objects = raws[entity]
                raws[entity] = _unseen(objects, seen[entity])
                if len(objects) < CDC_MAX_OBJECTS:
                    del since[entity]
                    done[entity] = server_time or value
                    continue
                newest = _newest(objects)
                if newest is None or parse_instant(newest) <= parse_instant(value):
                    stalled = True  # 1000 changes within one instant: CDC cannot page past them
                    continue
                since[entity] = newest
                at = parse_instant(newest)
                seen[entity] = {_id_of(obj): at for obj in objects if _stamp_of(obj) == at}
            invoices, quarantined = self._map_invoices(raws.get("Invoice", []))
            customers, bad = self._map_customers(raws.get("Customer", []))
            payments, bad_money = self._map_payments(raws)
            quarantined += bad + bad_money
            if stalled:
                yield Page(invoices, customers, None, quarantined, calls=1, payments=payments)
                yield from self._full_reconcile()
                return
            next_cursor = min([*since.values(), *done.values()], key=parse_instant)
            yield Page(invoices, customers, next_cursor, quarantined, calls=1, payments=payments)

    def get_invoice(self, external_id: str) -> InvoiceSnapshot | None:
        try:
            raw = self.client.read("Invoice", external_id)
        except NotFound:
            return None
        try:
            return to_invoice(raw, home_currency=self.home_currency)
        except MappingError as exc:
            raise Rejected(
                f"QuickBooks invoice {exc.external_id} has an unreadable {exc.field}.", provider=PROVIDER_KEY
            ) from None

    def customer_contacts(self, external_id: str) -> CustomerSnapshot:
        raw = self.client.read("Customer", external_id)
        try:
            return to_customer(raw)
        except MappingError as exc:
            raise Rejected(
                f"QuickBooks customer {exc.external_id} has an unreadable {exc.field}.", provider=PROVIDER_KEY
            ) from None

    def unapplied_credit(self, customer_external_id: str) -> Money | None:
        """Unapplied payments (UnappliedAmt) plus open credit memos (RemainingCredit): one batch call."""
        ref = quote(digits(customer_external_id, "customer id"))
        answers, _ = self.client.batch(
            [
                # ref is digits-only and escaped by quote().
                {"bId": "payments", "Query": f"SELECT * FROM Payment WHERE CustomerRef = {ref} MAXRESULTS 1000"},  # noqa: S608
                {"bId": "credits", "Query": f"SELECT * FROM CreditMemo WHERE CustomerRef = {ref} MAXRESULTS 1000"},  # noqa: S608
            ]
        )
        amounts: dict[str, Decimal] = {}
        for answer in answers:
            result = self._batch_result(answer)
            for entity, field in (("Payment", "UnappliedAmt"), ("CreditMemo", "RemainingCredit")):
                for raw in result.get(entity) or []:
                    value = Decimal(str(raw.get(field) or 0))
                    if value > 0:
                        currency = str((raw.get("CurrencyRef") or {}).get("value") or self.home_currency).upper()
                        amounts[currency] = amounts.get(currency, Decimal(0)) + value
        if len(amounts) != 1:
            return None  # none, or spread over several currencies (not comparable to one invoice)
        currency, amount = next(iter(amounts.items()))
        return Money(amount, currency)

    # -- writing -----------------------------------------------------------------------------------
    def add_note(self, invoice: InvoiceSnapshot, text: str, key: str) -> WriteResult:
        """Append a dated line to PrivateNote with a raw-JSON sparse update (the SDK object would send defaults,
        §3.2): `YYYY-MM-DD <text> [nudge <key hash>]`, dated in the company's own offset. A replayed `key` finds
        its marker and writes nothing; a text too long for the field is cut, never refused."""
        ident = digits(invoice.external_id)
        marker = f"{NOTE_MARKER}{_short(key)}]"
        for attempt in range(2):
            raw = self.client.read("Invoice", ident)
            current = str(raw.get("PrivateNote") or "")
            if marker in current:
                return WriteResult(ident, replayed=True)
            day = _company_date(self.client.server_time, self._clock()).isoformat()
            room = PRIVATE_NOTE_MAX - len(day) - len(marker) - 2
            line = f"{day} {_text(' '.join(text.split()), room)} {marker}"
            note = _keep_newest(f"{current}\n{line}" if current else line)
            body = {"Id": ident, "SyncToken": raw.get("SyncToken"), "sparse": True, "PrivateNote": note}
            try:
                self.client.update("Invoice", json.dumps(body), request_id(key, f":{attempt}" if attempt else ""))
            except StaleObject:
                if attempt == 0:
                    continue  # re-read, re-apply, retry once (docs/provider-api-facts.md §1.5)
                raise
            return WriteResult(ident)
        raise Rejected("The QuickBooks invoice kept changing; the note will be retried.", provider=PROVIDER_KEY)

    def _find_one(self, entity: str, field: str, value: str) -> dict[str, Any] | None:
        # entity and field are constants of this module; the value is escaped by quote().
        answer = self.client.query(f"SELECT * FROM {entity} WHERE {field} = {quote(value)}")  # noqa: S608
        self._company_time = str(answer.get("_time") or "")  # the company's clock, in its own offset (RS-27)
        found = answer.get(entity) or []
        return found[0] if found and isinstance(found[0], dict) else None

    def _ensure_item(self, name: str, account_name: str) -> str:
        """Id of the service Item `name`, created once (with its income account) when missing."""
        if name in self._items:
            return self._items[name]
        item = self._find_one("Item", "Name", name)
        if item is None:
            account = self._find_one("Account", "Name", account_name)
            if account is None:
                body = {
                    "Name": account_name,
                    "AccountType": "Other Income",
                    "AccountSubType": "OtherMiscellaneousIncome",
                }
                try:
                    account = self.client.create(
                        "Account", json.dumps(body), f"nudge-account-{_short(account_name, 24)}"
                    )
                except Duplicate:
                    account = self._find_one("Account", "Name", account_name)
            if account is None:
                raise Rejected(
                    f"The QuickBooks account {account_name!r} could not be found or created.", provider=PROVIDER_KEY
                )
            item_body: dict[str, Any] = {
                "Name": name,
                "Type": "Service",
                "IncomeAccountRef": {"value": str(account["Id"])},
            }
            try:
                item = self.client.create("Item", json.dumps(item_body), f"nudge-item-{_short(name, 24)}")
            except Duplicate:  # created meanwhile by another worker
                item = self._find_one("Item", "Name", name)
            if item is None:
                raise Rejected(f"The QuickBooks item {name!r} could not be found or created.", provider=PROVIDER_KEY)
        self._items[name] = str(item["Id"])
        return self._items[name]

    def _doc_number(self, prefix: str, invoice: InvoiceSnapshot, key: str) -> str:
        """Deterministic DocNumber naming the original invoice (≤ 21 chars; hashed when too long)."""
        doc = f"{prefix}{invoice.number}-{_short(key, 4)}"
        return doc if len(doc) <= DOC_NUMBER_MAX else f"{prefix}{_short(key, DOC_NUMBER_MAX - len(prefix))}"

    def _currency_ref(self, amount: Money) -> dict[str, Any]:
        return {} if amount.currency == self.home_currency else {"CurrencyRef": {"value": amount.currency}}

    def _sales_line(self, item_id: str, amount: Money, description: str) -> dict[str, Any]:
        return {
            "DetailType": "SalesItemLineDetail",
            "Amount": str(amount.amount),
            "Description": _text(description, 4000),
            "SalesItemLineDetail": {
                "ItemRef": {"value": item_id},
                "Qty": 1,
                "UnitPrice": str(amount.amount),
                "TaxCodeRef": {"value": str(self.options["late_fee_tax_code"])},
            },
        }

    def create_fee_invoice(self, invoice: InvoiceSnapshot, amount: Money, description: str, key: str) -> WriteResult:
        """A separate late-fee invoice, due now, found by its deterministic DocNumber on replay (§1.8 b)."""
        doc = self._doc_number(str(self.options["fee_doc_number_prefix"]), invoice, key)
        existing = self._find_one("Invoice", "DocNumber", doc)
        if existing is not None:
            return WriteResult(str(existing["Id"]), replayed=True)
        item = self._ensure_item(str(self.options["late_fee_item_name"]), str(self.options["late_fee_income_account"]))
        today = _company_date(self._company_time, self._clock()).isoformat()  # the company's date, not UTC's
        body: dict[str, Any] = {
            "CustomerRef": {"value": digits(invoice.customer_external_id, "customer id")},
            "DocNumber": doc,
            "TxnDate": today,
            "DueDate": today,
            "Line": [self._sales_line(item, amount, description)],
            # The marker first, where no later cut of the note can reach it: Nudge's own fee, never chased.
            "PrivateNote": _text(
                f"{FEE_MARKER} Late fee for invoice {invoice.number} (QuickBooks id {invoice.external_id})",
                PRIVATE_NOTE_MAX,
            ),
            "CustomerMemo": {"value": _text(f"Late fee for invoice {invoice.number}", 1000)},
            **self._currency_ref(amount),
        }
        if invoice.emails:
            body["BillEmail"] = {"Address": ", ".join(invoice.emails)}
        try:
            created = self._create_verified("Invoice", body, request_id(key))
        except Duplicate:
            found = self._find_one("Invoice", "DocNumber", doc)
            if found is None:
                raise
            return WriteResult(str(found["Id"]), replayed=True)
        return WriteResult(str(created["Id"]))

    def _create_verified(self, entity: str, body: dict[str, Any], rid: str) -> dict[str, Any]:
        """Create with `rid`, then read the object back: a replayed requestid may answer with a record the user
        has deleted since (GET → 610); its Id must not be stored as done (RS-03)."""
        created = self.client.create(entity, json.dumps(body), rid)
        ident = str(created.get("Id") or "")
        try:
            current = self.client.read(entity, ident)
        except NotFound:
            raise ReplayedObjectGone(
                f"QuickBooks answered a retried request with {entity.lower()} {ident}, which has since been "
                "deleted in QuickBooks; nothing new was created.",
                provider=PROVIDER_KEY,
                external_id=ident,
            ) from None
        if is_voided(current):
            raise ReplayedObjectGone(
                f"QuickBooks answered a retried request with {entity.lower()} {ident}, which has since been "
                "voided in QuickBooks; nothing new was created.",
                provider=PROVIDER_KEY,
                external_id=ident,
            )
        return created

    def add_fee_line(self, invoice: InvoiceSnapshot, amount: Money, description: str, key: str) -> WriteResult:
        """A late-fee line on the invoice itself (sparse update re-sending every line, §1.5/§1.8 a)."""
        ident = digits(invoice.external_id)
        item = self._ensure_item(str(self.options["late_fee_item_name"]), str(self.options["late_fee_income_account"]))
        marker = f"[nudge {_short(key)}]"
        for attempt in range(2):
            raw = self.client.read("Invoice", ident)
            lines = [ln for ln in raw.get("Line") or [] if ln.get("DetailType") != "SubTotalLineDetail"]
            if any(marker in str(ln.get("Description") or "") for ln in lines):
                return WriteResult(ident, replayed=True)
            lines.append(self._sales_line(item, amount, f"{_text(description, 3900)} {marker}"))
            body = {"Id": ident, "SyncToken": raw.get("SyncToken"), "sparse": True, "Line": lines}
            try:
                self.client.update(
                    "Invoice", json.dumps(body, default=str), request_id(key, f":{attempt}" if attempt else "")
                )
            except StaleObject:
                if attempt == 0:
                    continue
                raise
            return WriteResult(ident)
        raise Rejected("The QuickBooks invoice kept changing; the fee line will be retried.", provider=PROVIDER_KEY)

    def create_credit(self, invoice: InvoiceSnapshot, amount: Money, reason: str, key: str) -> WriteResult:
        """A CreditMemo applied to the invoice through a zero-amount Payment linking both (QBO's way)."""
        ident = digits(invoice.external_id)
        customer = digits(invoice.customer_external_id, "customer id")
        doc = self._doc_number(str(self.options["credit_doc_number_prefix"]), invoice, key)
        memo = self._find_one("CreditMemo", "DocNumber", doc)
        replayed = memo is not None
        if memo is None:
            item = self._ensure_item(str(self.options["credit_item_name"]), str(self.options["credit_income_account"]))
            body = {
                "CustomerRef": {"value": customer},
                "DocNumber": doc,
                "Line": [self._sales_line(item, amount, reason)],
                "PrivateNote": _text(f"{reason} — invoice {invoice.number} (QuickBooks id {ident})", 4000),
                **self._currency_ref(amount),
            }
            try:
                memo = self._create_verified("CreditMemo", body, request_id(key, ":cm"))
            except Duplicate:
                memo = self._find_one("CreditMemo", "DocNumber", doc)
                if memo is None:
                    raise
                replayed = True
        remaining = Decimal(str(memo.get("RemainingCredit", memo.get("TotalAmt", 0))))
        if remaining > 0:
            current = self.client.read("Invoice", ident)
            apply = min(remaining, Decimal(str(current.get("Balance") or 0)))
            if apply > 0:
                payment = {
                    "CustomerRef": {"value": customer},
                    "TotalAmt": 0,
                    "Line": [
                        {"Amount": str(apply), "LinkedTxn": [{"TxnId": ident, "TxnType": "Invoice"}]},
                        {"Amount": str(apply), "LinkedTxn": [{"TxnId": str(memo["Id"]), "TxnType": "CreditMemo"}]},
                    ],
                    **self._currency_ref(amount),
                }
                self.client.create("Payment", json.dumps(payment), request_id(key, ":apply"))
        return WriteResult(str(memo["Id"]), replayed=replayed)

    def void_fee_invoice(self, external_ref: str, key: str) -> WriteResult:
        ident = digits(external_ref)
        for attempt in range(2):
            raw = self.client.read("Invoice", ident)
            if is_voided(raw):
                return WriteResult(ident, replayed=True)
            body = json.dumps({"Id": ident, "SyncToken": raw.get("SyncToken")})
            try:
                self.client.post(
                    "invoice", body, request_id(key, f":{attempt}" if attempt else ""), {"operation": "void"}
                )
            except StaleObject:
                if attempt == 0:
                    continue
                raise
            return WriteResult(ident)
        raise Rejected("The QuickBooks fee invoice kept changing; voiding will be retried.", provider=PROVIDER_KEY)

    def invoice_pdf(self, invoice: InvoiceSnapshot) -> bytes | None:
        try:
            content = self.client.pdf("Invoice", invoice.external_id)
        except NotFound:
            return None
        return content if content.startswith(b"%PDF") else None

    def payment_link(self, invoice: InvoiceSnapshot) -> str | None:
        """InvoiceLink (needs `include=invoiceLink`; present when online payment is possible)."""
        try:
            raw = self.client.read("Invoice", invoice.external_id, params={"include": "invoiceLink"})
        except NotFound:
            return None
        link = raw.get("InvoiceLink")
        if isinstance(link, str) and (link.startswith("https://") or _loopback_link(link)):
            return link
        return None

    def send_via_provider(self, invoice: InvoiceSnapshot, to: str, key: str) -> WriteResult:
        """QuickBooks emails the invoice itself (`/send?sendTo=`, octet body: docs/provider-api-facts.md §1.8)."""
        ident = digits(invoice.external_id)
        address = to.strip()
        if "\r" in address or "\n" in address or "@" not in address or len(address) > 320:
            raise Rejected("Not a valid email address for QuickBooks to send to.", provider=PROVIDER_KEY)
        self.client.post(
            f"invoice/{ident}/send", None, request_id(key), {"sendTo": address}, content_type="application/octet-stream"
        )
        return WriteResult(ident)


def _keep_newest(note: str) -> str:
    """`note` within PrivateNote's limit: the oldest lines give way, Nudge's fee marker stays where it was."""
    if len(note) <= PRIVATE_NOTE_MAX:
        return note
    head = f"{FEE_MARKER} " if note.startswith(FEE_MARKER) else ""
    return head + "…" + note[-(PRIVATE_NOTE_MAX - len(head) - 1) :]


def _company_date(company_time: str, fallback: datetime) -> date:
    """The company's calendar date: a QuickBooks `time` (`2026-02-05T09:30:00.000-08:00`) read in its own
    offset — never the UTC date, a day off every evening in California; `fallback`'s date without one."""
    try:
        moment = datetime.fromisoformat(company_time.replace("Z", "+00:00"))
    except ValueError:
        return fallback.date()
    return moment.date() if moment.tzinfo is not None else fallback.date()


def _cdc_answer(answer: dict[str, Any], entities: list[str]) -> tuple[dict[str, list[Any]], str]:
    """(objects by entity, server time) of one CDC answer; a shape surprise is Transient."""
    try:
        blocks = answer["CDCResponse"][0]["QueryResponse"]
        raws: dict[str, list[Any]] = {entity: [] for entity in entities}
        for block in blocks:
            for entity in entities:
                raws[entity] += list(block.get(entity) or [])
        server_time = str(answer.get("time") or "")
        if server_time:
            parse_instant(server_time)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise Transient("QuickBooks sent a CDC answer of an unexpected shape.", provider=PROVIDER_KEY) from exc
    return raws, server_time


def _linked(holder: Any) -> list[dict[str, Any]]:
    links = holder.get("LinkedTxn") if isinstance(holder, dict) else None
    return [link for link in links if isinstance(link, dict)] if isinstance(links, list) else []


def _memo_invoices(raws: Mapping[str, list[Any]]) -> dict[str, list[str]]:
    """Credit memo id -> the invoices it was used on, as the same answer's Payments (a line linking the memo
    beside lines linking invoices) and Invoices (their own LinkedTxn naming the memo) tell it."""
    used_on: dict[str, list[str]] = {}

    def add(memo: str, invoice: str) -> None:
        if memo and invoice and invoice not in used_on.setdefault(memo, []):
            used_on[memo].append(invoice)

    for payment in raws.get("Payment") or []:
        lines = payment.get("Line") if isinstance(payment, dict) else None
        links = [link for line in lines for link in _linked(line)] if isinstance(lines, list) else []
        memos = [str(link.get("TxnId") or "") for link in links if link.get("TxnType") == "CreditMemo"]
        invoices = [str(link.get("TxnId") or "") for link in links if link.get("TxnType") == "Invoice"]
        for memo in memos:
            for invoice in invoices:
                add(memo, invoice)
    for invoice in raws.get("Invoice") or []:
        for link in _linked(invoice):
            if link.get("TxnType") == "CreditMemo":
                add(str(link.get("TxnId") or ""), _id_of(invoice))
    return used_on


def _with_invoice_links(memo: Any, invoices: list[str]) -> Any:
    """The memo with `invoices` as its LinkedTxn when it names no invoice itself (a copy; as-is otherwise)."""
    if not invoices or not isinstance(memo, dict) or any(link.get("TxnType") == "Invoice" for link in _linked(memo)):
        return memo
    return {**memo, "LinkedTxn": [*_linked(memo), *({"TxnId": i, "TxnType": "Invoice"} for i in invoices)]}


def _id_of(obj: Any) -> str:
    return str(obj.get("Id") or "") if isinstance(obj, dict) else ""


def _stamp_text(obj: Any) -> str | None:
    meta = obj.get("MetaData") if isinstance(obj, dict) else None
    text = meta.get("LastUpdatedTime") if isinstance(meta, dict) else None
    return text if isinstance(text, str) and text else None


def _stamp_of(obj: Any) -> datetime | None:
    """An object's MetaData.LastUpdatedTime, None when missing or unreadable (mapping quarantines it)."""
    text = _stamp_text(obj)
    if text is None:
        return None
    try:
        return parse_instant(text)
    except ValueError:
        return None


def _unseen(objects: list[Any], seen: dict[str, datetime]) -> list[Any]:
    """`objects` without those already yielded unchanged at the previous answer's boundary instant."""
    return [obj for obj in objects if (at := _stamp_of(obj)) is None or seen.get(_id_of(obj)) != at]


def _newest(objects: list[Any]) -> str | None:
    """The newest LastUpdatedTime among `objects`, as QuickBooks wrote it (the next changedSince)."""
    stamped = [(at, text) for obj in objects if (at := _stamp_of(obj)) is not None and (text := _stamp_text(obj))]
    return max(stamped)[1] if stamped else None


def _loopback_link(link: Any) -> bool:
    return isinstance(link, str) and link.startswith(("http://127.0.0.1:", "http://localhost:"))


def build_adapter(tenant_id: str, token_source: TokenSource, settings: ProviderSettings) -> QuickBooksAdapter:
    """ProviderSpec.adapter: nothing touches the network until the first call."""
    return QuickBooksAdapter(tenant_id, token_source, settings)


def connect(settings: ProviderSettings, callback_params: Mapping[str, str], tokens: TokenSet) -> list[ConnectionInfo]:
    """ProviderSpec.connect: the company behind a callback (realmId): its name, country, holiday subdivision and
    time zone from CompanyInfo (providers/quickbooks/region.py), its home currency from Preferences."""
    realm = callback_params.get("realmId", "")
    if not realm.isdigit():
        raise Rejected("The QuickBooks callback carried no valid company id (realmId).", provider=PROVIDER_KEY)
    client = QboClient(realm, FixedTokens(tokens), settings)
    info = client.company_info()
    region = company_region(info, client.server_time)  # country, subdivision, time_zone ("" when unknown)
    name = str(info.get("CompanyName") or info.get("LegalName") or f"QuickBooks company {realm}")
    extra = {**region, "home_currency": client.home_currency()}
    return [ConnectionInfo(provider=PROVIDER_KEY, tenant_id=realm, name=name, extra=extra)]


__all__ = ["ProviderError", "QuickBooksAdapter", "build_adapter", "connect"]

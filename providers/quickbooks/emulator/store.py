"""The emulated QuickBooks companies: entities, SyncTokens, balances, CDC history, requestid replay.

Payload shapes follow the real samples in docs/payloads (qbo_invoice_query.json,
qbo_invoice_read.json): amounts are JSON numbers, dates `YYYY-MM-DD`, instants ISO 8601 with the
company's UTC offset (`2015-07-24T10:35:08-07:00`), ids and SyncTokens strings.
Amounts are computed in Decimal and stored as floats rounded to cents, so responses serialise fast.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from providers._emulator import EmulatorClock
from providers.quickbooks.emulator import query as qlang

ENTITIES = ("Invoice", "Customer", "Item", "CreditMemo", "Payment", "Account")
_PATHS = {name.lower(): name for name in ENTITIES}
CDC_MAX_DAYS = 30
CDC_MAX_OBJECTS = 1000
CURRENCY_NAMES = {
    "USD": "United States Dollar",
    "EUR": "Euro",
    "GBP": "British Pound Sterling",
    "CAD": "Canadian Dollar",
    "AUD": "Australian Dollar",
    "JPY": "Japanese Yen",
}


class QboFault(Exception):
    """A QuickBooks Fault answer: HTTP status plus the Fault body fields (docs/provider-api-facts.md §1.5)."""

    def __init__(
        self, status: int, code: str, message: str, detail: str = "", kind: str = "ValidationFault", element: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail or message
        self.kind = kind
        self.element = element

    def body(self, time: str) -> dict[str, Any]:
        error: dict[str, Any] = {"Message": self.message, "Detail": self.detail, "code": self.code}
        if self.element:
            error["element"] = self.element
        return {"Fault": {"Error": [error], "type": self.kind}, "time": time}


def not_found(entity: str, ident: str) -> QboFault:
    return QboFault(
        400,
        "610",
        "Object Not Found",
        f"Object Not Found : Something you're trying to use has been made inactive. "
        f"Check the fields with accounts, customers, items, vendors or employees. ({entity} {ident})",
    )


def _money(value: Any) -> Decimal:
    return Decimal(str(value if value not in (None, "") else 0)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _num(value: Decimal) -> float:
    return float(value)


ChangeListener = Callable[[str, str, str, str, datetime], None]  # realm, entity, id, operation, when


@dataclass
class Company:
    """One QuickBooks company (realm) and everything in it."""

    realm: str
    name: str
    currency: str = "USD"
    multicurrency: bool = False
    tz: tzinfo = field(default_factory=lambda: timezone(timedelta(hours=-7)))
    # Where the company is (CompanyInfo.Country, CompanyAddr.CountrySubDivisionCode); QuickBooks has no zone field.
    country: str = "US"
    subdivision: str = ""
    entities: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {n: {} for n in ENTITIES})
    updated: dict[tuple[str, str], datetime] = field(default_factory=dict)  # full-precision change instants
    tombstones: dict[str, dict[str, datetime]] = field(default_factory=lambda: {n: {} for n in ENTITIES})
    applied: dict[str, Decimal] = field(default_factory=dict)  # invoice id -> payments/credits applied
    next_ids: dict[str, int] = field(default_factory=lambda: {n: 1 for n in ENTITIES})
    next_doc: int = 1001
    docs: dict[str, dict[str, str]] = field(default_factory=lambda: {n: {} for n in ENTITIES})  # DocNumber index
    replies: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # requestid -> answered response
    # (entity, id) -> user edits to apply, one after each API read of that object (the SyncToken-bump knob)
    edits_after_read: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)


class Store:
    """All companies of one emulator, their entity rules and change notifications."""

    def __init__(self, clock: EmulatorClock) -> None:
        self.clock = clock
        self.companies: dict[str, Company] = {}
        self.listeners: list[ChangeListener] = []
        self._lock = threading.Lock()
        self._next_realm = 9341452000000001

    # -- companies -----------------------------------------------------------------------------
    def add_company(
        self,
        name: str,
        realm: str = "",
        currency: str = "USD",
        multicurrency: bool = False,
        utc_offset_hours: int = -7,
        *,
        country: str = "US",
        subdivision: str = "",
        time_zone: str = "",
    ) -> Company:
        """A new company; its clock runs in `time_zone` (IANA) when given, else at the fixed `utc_offset_hours`."""
        try:
            zone: tzinfo = ZoneInfo(time_zone) if time_zone else timezone(timedelta(hours=utc_offset_hours))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {time_zone!r}") from None
        with self._lock:
            if not realm:
                realm = str(self._next_realm)
                self._next_realm += 1
            if not realm.isdigit():
                raise ValueError("realm ids are digits")
            if realm in self.companies:
                raise ValueError(f"company {realm} exists")
            company = Company(
                realm=realm,
                name=name,
                currency=currency.upper(),
                multicurrency=multicurrency,
                tz=zone,
                country=country.upper(),
                subdivision=subdivision.upper(),
            )
            self.companies[realm] = company
        # Every new QBO company has a Services income account and a Services item.
        account = self.create(realm, "Account", {"Name": "Services", "AccountType": "Income"}, notify=False)
        self.create(
            realm,
            "Item",
            {"Name": "Services", "Type": "Service", "IncomeAccountRef": {"value": account["Id"]}},
            notify=False,
        )
        return company

    def company(self, realm: str) -> Company:
        try:
            return self.companies[realm]
        except KeyError:
            raise QboFault(
                403, "120", "Authorization Failure", "The company is not known to this emulator.", "AuthorizationFault"
            ) from None

    # -- time ----------------------------------------------------------------------------------
    def stamp(self, company: Company, moment: datetime | None = None) -> str:
        """Instant as QBO renders MetaData times: seconds, company offset."""
        return (moment or self.clock.now()).astimezone(company.tz).isoformat(timespec="seconds")

    def response_time(self, company: Company | None = None) -> str:
        """The `time` field of a response: milliseconds, company offset (sample `...50.01-07:00`)."""
        tz = company.tz if company else timezone(timedelta(hours=-7))
        return self.clock.now().astimezone(tz).isoformat(timespec="milliseconds")

    def today(self, company: Company) -> date:
        return self.clock.now().astimezone(company.tz).date()

    # -- generic entity operations ----------------------------------------------------------------
    def _touch(self, company: Company, entity: str, obj: dict[str, Any], *, created: bool = False) -> datetime:
        now = self.clock.now()
        meta = obj.setdefault("MetaData", {})
        stamp = self.stamp(company, now)
        if created:
            meta["CreateTime"] = stamp
        meta["LastUpdatedTime"] = stamp
        company.updated[(entity, obj["Id"])] = now
        return now

    def _notify(self, realm: str, entity: str, ident: str, operation: str, when: datetime) -> None:
        for listener in list(self.listeners):
            listener(realm, entity, ident, operation, when)

    def read(self, realm: str, entity: str, ident: str) -> dict[str, Any]:
        company = self.company(realm)
        if not ident.isdigit():
            raise QboFault(
                400, "2030", "Invalid ID", f"Id should be a valid number. Supplied value:{ident}", element="id"
            )
        with company.lock:
            obj = company.entities[entity].get(ident)
            if obj is None:
                raise not_found(entity, ident)
            return copy.deepcopy(obj)

    def edit_after_next_reads(self, realm: str, entity: str, ident: str, edits: list[dict[str, Any]]) -> None:
        """After each of the next len(edits) API reads of the object, a user edits it (sparse; SyncToken bumps)."""
        company = self.company(realm)
        with company.lock:
            company.edits_after_read.setdefault((entity, ident), []).extend(copy.deepcopy(edits))

    def edit_after_read(self, realm: str, entity: str, ident: str) -> None:
        """Apply the next pending user edit of the object just read, if one is armed (between read and write)."""
        company = self.companies.get(realm)
        if company is None:
            return
        with company.lock:
            pending = company.edits_after_read.get((entity, ident))
            if not pending:
                return
            changes = pending.pop(0)
            obj = company.entities[entity].get(ident)
            if obj is None:
                return
            body = {**changes, "Id": ident, "SyncToken": obj["SyncToken"], "sparse": True}
        self.update(realm, entity, body)

    def create(self, realm: str, entity: str, body: dict[str, Any], *, notify: bool = True) -> dict[str, Any]:
        company = self.company(realm)
        with company.lock:
            if body.get("Id"):
                raise QboFault(400, "2010", "Request has invalid or unsupported property", "Id is set on create")
            obj = copy.deepcopy(body)
            obj.pop("sparse", None)
            ident = str(company.next_ids[entity])
            obj["Id"] = ident
            obj["SyncToken"] = "0"
            getattr(self, f"_prepare_{entity.lower()}")(company, obj, None)
            company.next_ids[entity] += 1
            if obj.get("DocNumber"):
                company.docs[entity][str(obj["DocNumber"])] = ident
            obj["domain"] = "QBO"
            obj["sparse"] = False
            company.entities[entity][ident] = obj
            when = self._touch(company, entity, obj, created=True)
            after = getattr(self, f"_after_{entity.lower()}", None)
            if after:
                after(company, obj)
            result = copy.deepcopy(obj)
        if notify:
            self._notify(realm, entity, ident, "Create", when)
        return result

    def _current(self, company: Company, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        ident = str(body.get("Id") or "")
        if not ident.isdigit():
            raise QboFault(
                400,
                "2020",
                "Required param missing, need to supply the required value for the API",
                "Required parameter Id is missing in the request",
                element="Id",
            )
        obj = company.entities[entity].get(ident)
        if obj is None:
            raise not_found(entity, ident)
        if str(body.get("SyncToken")) != obj["SyncToken"]:
            # The real message (docs/provider-api-facts.md §1.5; code 5010 as reported by integrators).
            raise QboFault(
                400,
                "5010",
                "Stale Object Error",
                f"Stale Object Error : You and {company.name} Admin were working on this at the same time. "
                f"{company.name} Admin finished before you did, so your work was not saved.",
            )
        return obj

    def update(self, realm: str, entity: str, body: dict[str, Any], *, notify: bool = True) -> dict[str, Any]:
        company = self.company(realm)
        with company.lock:
            obj = self._current(company, entity, body)
            if obj.get("_voided"):
                raise QboFault(
                    400,
                    "6000",
                    "A business validation error has occurred while processing your request",
                    "Business Validation Error: You cannot modify a voided transaction.",
                )
            sparse = bool(body.get("sparse"))
            new = copy.deepcopy(obj) if sparse else {k: v for k, v in obj.items() if k in ("Id", "MetaData", "domain")}
            for key, value in body.items():
                if key in ("Id", "SyncToken", "sparse", "MetaData", "domain"):
                    continue
                new[key] = copy.deepcopy(value)
            if not sparse:
                for key in ("_voided",):
                    if key in obj:
                        new[key] = obj[key]
            getattr(self, f"_prepare_{entity.lower()}")(company, new, obj)
            if obj.get("DocNumber") != new.get("DocNumber"):
                company.docs[entity].pop(str(obj.get("DocNumber")), None)
            if new.get("DocNumber"):
                company.docs[entity][str(new["DocNumber"])] = new["Id"]
            new["SyncToken"] = str(int(obj["SyncToken"]) + 1)
            new["sparse"] = False
            new["domain"] = "QBO"
            company.entities[entity][new["Id"]] = new
            when = self._touch(company, entity, new)
            result = copy.deepcopy(new)
        if notify:
            self._notify(realm, entity, result["Id"], "Update", when)
        return result

    def delete(self, realm: str, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        company = self.company(realm)
        with company.lock:
            obj = self._current(company, entity, body)
            ident = obj["Id"]
            if entity in ("Customer", "Item", "Account"):
                # Name-list entities cannot be deleted in QBO; "deleting" makes them inactive.
                return self.update(
                    realm, entity, {"Id": ident, "SyncToken": obj["SyncToken"], "sparse": True, "Active": False}
                )
            if entity == "Payment":
                self._unapply_payment(company, obj)
            if entity == "Invoice" and company.applied.get(ident):
                raise QboFault(
                    400,
                    "6480",
                    "A business validation error has occurred while processing your request",
                    "Business Validation Error: This transaction has payments applied; delete them first.",
                )
            if entity == "Invoice":
                self._customer_balance(company, obj, -_money(obj.get("Balance")))
            del company.entities[entity][ident]
            company.docs[entity].pop(str(obj.get("DocNumber")), None)
            now = self.clock.now()
            company.tombstones[entity][ident] = now
            company.updated.pop((entity, ident), None)
        self._notify(realm, entity, ident, "Delete", now)
        return {"domain": "QBO", "status": "Deleted", "Id": ident}

    def void(self, realm: str, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        company = self.company(realm)
        if entity not in ("Invoice", "Payment", "CreditMemo"):
            raise QboFault(400, "500", "Unsupported Operation", f"Operation void is not supported for {entity}")
        with company.lock:
            obj = self._current(company, entity, body)
            if entity == "Payment":
                self._unapply_payment(company, obj)
                obj["TotalAmt"] = 0.0
                obj["UnappliedAmt"] = 0.0
            if entity == "Invoice":
                if company.applied.get(obj["Id"]):
                    raise QboFault(
                        400,
                        "6000",
                        "A business validation error has occurred while processing your request",
                        "Business Validation Error: Remove the payments of this invoice first.",
                    )
                self._customer_balance(company, obj, -_money(obj.get("Balance")))
            # QBO keeps a voided transaction with zero amounts and "Voided" in its memo [unverified wording].
            for line in obj.get("Line", []):
                line["Amount"] = 0.0
                detail = line.get("SalesItemLineDetail")
                if isinstance(detail, dict) and "UnitPrice" in detail:
                    detail["UnitPrice"] = 0
            obj["TotalAmt"] = 0.0
            obj["Balance"] = 0.0
            if entity == "CreditMemo":
                obj["RemainingCredit"] = 0.0
            if isinstance(obj.get("TxnTaxDetail"), dict):
                obj["TxnTaxDetail"]["TotalTax"] = 0
                obj["TxnTaxDetail"].pop("TaxLine", None)
            note = str(obj.get("PrivateNote") or "")
            obj["PrivateNote"] = "Voided" + (f" - {note}" if note else "")
            obj["_voided"] = True
            obj["SyncToken"] = str(int(obj["SyncToken"]) + 1)
            when = self._touch(company, entity, obj)
            result = copy.deepcopy(obj)
        self._notify(realm, entity, result["Id"], "Void", when)
        return result

    def run_query(self, realm: str, text: str) -> dict[str, Any]:
        """The QueryResponse object for one query (raises QuerySyntaxError)."""
        parsed = qlang.parse(text)
        entity = {n.lower(): n for n in (*ENTITIES, "CompanyInfo")}.get(parsed.entity.lower())
        if entity is None or parsed.entity != entity:  # entity names are case-sensitive (facts §1.3)
            raise qlang.QuerySyntaxError(f"unknown entity {parsed.entity}")
        company = self.company(realm)
        with company.lock:
            objects = [self.company_info(company)] if entity == "CompanyInfo" else company.entities[entity].values()
            total, window = qlang.run(parsed, list(objects))
            if parsed.count:
                return {"totalCount": total}
            if not window:
                return {}
            # Key order as in the real sample: startPosition, totalCount, maxResults, <Entity>.
            return {
                "startPosition": parsed.start,
                "totalCount": total,
                "maxResults": len(window),
                entity: [_public(o) for o in window],
            }

    def cdc(self, realm: str, entities: list[str], since: datetime) -> list[dict[str, Any]]:
        """CDC QueryResponse list: per entity, objects changed at or after `since`, oldest first, ≤ 1000."""
        company = self.company(realm)
        now = self.clock.now()
        if since < now - timedelta(days=CDC_MAX_DAYS):
            raise QboFault(
                400, "4000", "Error processing the request", f"changedSince must be within the last {CDC_MAX_DAYS} days"
            )
        out: list[dict[str, Any]] = []
        with company.lock:
            for entity in entities:
                changed: list[tuple[datetime, dict[str, Any]]] = []
                for ident, obj in company.entities[entity].items():
                    when = company.updated.get((entity, ident))
                    if when is not None and when >= since:
                        changed.append((when, _public(obj)))
                for ident, when in company.tombstones[entity].items():
                    if when >= since:
                        changed.append(
                            (
                                when,
                                {
                                    "domain": "QBO",
                                    "status": "Deleted",
                                    "Id": ident,
                                    "MetaData": {"LastUpdatedTime": self.stamp(company, when)},
                                },
                            )
                        )
                changed.sort(key=lambda pair: pair[0])
                objects = [obj for _, obj in changed[:CDC_MAX_OBJECTS]]
                block: dict[str, Any] = {"startPosition": 1, "maxResults": len(objects)}
                if objects:
                    block[entity] = objects
                out.append(block)
        return out

    def company_info(self, company: Company) -> dict[str, Any]:
        """CompanyInfo as Intuit's sample shows it (docs/provider-api-facts.md §1.10): the company's country and
        its address (CompanyAddr, LegalAddr, CustomerCommunicationAddr) with CountrySubDivisionCode when set."""
        address: dict[str, Any] = {"Id": "1", "Line1": "1 Emulator Way", "City": "Emulated", "Country": company.country}
        if company.subdivision:
            address["CountrySubDivisionCode"] = company.subdivision
        return {
            "CompanyName": company.name,
            "LegalName": company.name,
            "CompanyAddr": dict(address),
            "LegalAddr": dict(address),
            "CustomerCommunicationAddr": dict(address),
            "Country": company.country,
            "CompanyStartDate": "2015-06-05",
            "FiscalYearStartMonth": "January",
            "SupportedLanguages": "en",
            "NameValue": [{"Name": "NeoEnabled", "Value": "true"}],
            "domain": "QBO",
            "sparse": False,
            "Id": "1",
            "SyncToken": "0",
            "MetaData": {"CreateTime": "2015-06-05T13:55:54-07:00", "LastUpdatedTime": "2015-07-06T08:51:50-07:00"},
        }

    # -- entity rules ----------------------------------------------------------------------------
    def _ref(self, company: Company, entity: str, ref: Any, element: str) -> dict[str, Any]:
        ident = str(ref.get("value") if isinstance(ref, dict) else ref or "")
        obj = company.entities[entity].get(ident) if ident.isdigit() else None
        if obj is None:
            raise QboFault(
                400,
                "2500",
                "Invalid Reference Id",
                f"Invalid Reference Id : {entity} assigned to this "
                f"transaction has been deleted or does not exist ({ident!r})",
                element=element,
            )
        return obj

    def _currency_ref(self, company: Company, obj: dict[str, Any]) -> None:
        ref = obj.get("CurrencyRef")
        code = str(ref.get("value") if isinstance(ref, dict) else company.currency).upper()
        if code != company.currency and not company.multicurrency:
            raise QboFault(
                400,
                "6000",
                "A business validation error has occurred while processing your request",
                "Business Validation Error: Multicurrency is not enabled for this company.",
            )
        if company.multicurrency or code != company.currency:
            obj["CurrencyRef"] = {"value": code, "name": CURRENCY_NAMES.get(code, code)}
            obj.setdefault("ExchangeRate", 1)

    def _lines(self, company: Company, obj: dict[str, Any]) -> Decimal:
        lines = [ln for ln in obj.get("Line") or [] if ln.get("DetailType") != "SubTotalLineDetail"]
        if not lines:
            raise QboFault(
                400,
                "2020",
                "Required param missing, need to supply the required value for the API",
                "Required parameter Line is missing in the request",
                element="Line",
            )
        subtotal = Decimal(0)
        discount = Decimal(0)
        for number, line in enumerate(lines, start=1):
            kind = line.get("DetailType")
            if kind == "SalesItemLineDetail":
                detail = line.setdefault("SalesItemLineDetail", {})
                item = detail.get("ItemRef")
                if item is None:
                    detail["ItemRef"] = {"value": "1", "name": "Services"}
                else:
                    found = self._ref(company, "Item", item, "ItemRef")
                    detail["ItemRef"] = {"name": found["Name"], "value": found["Id"]}
                qty = Decimal(str(detail.get("Qty", 1)))
                if "UnitPrice" in detail:
                    price = Decimal(str(detail["UnitPrice"]))
                    detail["UnitPrice"] = int(price) if price == price.to_integral_value() else float(price)
                if "Qty" in detail:
                    detail["Qty"] = int(qty) if qty == qty.to_integral_value() else float(qty)
                if "Amount" not in line:
                    line["Amount"] = _money(qty * _money(detail.get("UnitPrice")))
                detail.setdefault("TaxCodeRef", {"value": "NON"})
                amount = _money(line["Amount"])
                line["Amount"] = _num(amount)
                line.setdefault("LineNum", number)
                line.setdefault("Id", str(number))
                subtotal += amount
            elif kind == "DiscountLineDetail":
                amount = _money(line.get("Amount"))
                line["Amount"] = _num(amount)
                discount += amount
            elif kind == "DescriptionOnly":
                line.setdefault("Amount", 0)
            else:
                raise QboFault(400, "2170", "Invalid Enumeration", f"Invalid DetailType {kind!r}", element="DetailType")
        lines.append({"DetailType": "SubTotalLineDetail", "Amount": _num(subtotal), "SubTotalLineDetail": {}})
        obj["Line"] = lines
        tax_detail = obj.get("TxnTaxDetail") or {"TotalTax": 0}
        obj["TxnTaxDetail"] = tax_detail
        tax = _money(tax_detail.get("TotalTax"))
        return subtotal - discount + tax

    def _txn_common(self, company: Company, obj: dict[str, Any], old: dict[str, Any] | None, kind: str) -> None:
        customer = self._ref(company, "Customer", obj.get("CustomerRef"), "CustomerRef")
        obj["CustomerRef"] = {"name": customer["DisplayName"], "value": customer["Id"]}
        self._currency_ref(company, obj)
        txn_date = str(obj.get("TxnDate") or self.today(company).isoformat())
        try:
            date.fromisoformat(txn_date)
        except ValueError:
            raise QboFault(
                400, "2010", "Request has invalid or unsupported property", "TxnDate is not a date", element="TxnDate"
            ) from None
        obj["TxnDate"] = txn_date
        doc = obj.get("DocNumber")
        if not doc:
            obj["DocNumber"] = str(company.next_doc)
            company.next_doc += 1
        elif len(str(doc)) > 21:
            raise QboFault(
                400,
                "2050",
                "String length is either shorter or longer than supported by specification",
                "DocNumber: max length 21",
                element="DocNumber",
            )
        elif company.docs[kind].get(str(doc), obj["Id"]) != obj["Id"]:
            raise QboFault(
                400,
                "6140",
                "Duplicate Document Number Error",
                f"Duplicate Document Number Error : You must specify a different number. This "
                f"number has already been used. DocNumber={doc}",
            )
        note = obj.get("PrivateNote")
        if note is not None and len(str(note)) > 4000:
            raise QboFault(
                400,
                "2050",
                "String length is either shorter or longer than supported by specification",
                "PrivateNote: max length 4000",
                element="PrivateNote",
            )
        if not obj.get("BillEmail") and customer.get("PrimaryEmailAddr"):
            obj["BillEmail"] = {"Address": customer["PrimaryEmailAddr"]["Address"]}

    def _customer_balance(self, company: Company, invoice: dict[str, Any], delta: Decimal) -> None:
        ref = invoice.get("CustomerRef") or {}
        customer = company.entities["Customer"].get(str(ref.get("value")))
        if customer is not None and delta:
            balance = _money(customer.get("Balance")) + delta
            customer["Balance"] = _num(balance)
            customer["BalanceWithJobs"] = _num(balance)

    def _prepare_invoice(self, company: Company, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        self._txn_common(company, obj, old, "Invoice")
        if old is not None and old.get("_voided"):
            return
        total = self._lines(company, obj) if "Line" in obj or old is None else _money(obj.get("TotalAmt"))
        applied = company.applied.get(obj["Id"], Decimal(0))
        balance = total - applied
        if balance < 0:
            raise QboFault(
                400,
                "6000",
                "A business validation error has occurred while processing your request",
                "Business Validation Error: The invoice total is less than the payments applied to it.",
            )
        obj["TotalAmt"] = _num(total)
        obj["Balance"] = _num(balance)
        obj.setdefault("DueDate", obj["TxnDate"])
        obj.setdefault("Deposit", 0)
        obj.setdefault("ApplyTaxAfterDiscount", False)
        obj.setdefault("PrintStatus", "NeedToPrint")
        obj.setdefault("EmailStatus", "NotSet")
        obj.setdefault("LinkedTxn", [])
        obj.setdefault("CustomField", [])
        self._customer_balance(company, obj, balance - (_money(old.get("Balance")) if old else Decimal(0)))

    def _prepare_creditmemo(self, company: Company, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        self._txn_common(company, obj, old, "CreditMemo")
        if old is not None and old.get("_voided"):
            return
        total = self._lines(company, obj) if ("Line" in obj or old is None) else _money(obj.get("TotalAmt"))
        used = company.applied.get("cm:" + obj["Id"], Decimal(0))
        obj["TotalAmt"] = _num(total)
        obj["RemainingCredit"] = _num(total - used)
        obj["Balance"] = _num(total - used)
        obj.setdefault("PrintStatus", "NeedToPrint")
        obj.setdefault("EmailStatus", "NotSet")
        obj.setdefault("ApplyTaxAfterDiscount", False)
        obj.setdefault("CustomField", [])

    def _prepare_customer(self, company: Company, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        name = str(obj.get("DisplayName") or "").strip()
        if not name:
            given = " ".join(str(obj.get(k, "")) for k in ("GivenName", "FamilyName")).strip()
            name = str(obj.get("CompanyName") or given)
        if not name:
            raise QboFault(
                400,
                "2020",
                "Required param missing, need to supply the required value for the API",
                "Required parameter DisplayName is missing",
                element="DisplayName",
            )
        for other in company.entities["Customer"].values():
            if other["DisplayName"].lower() == name.lower() and other["Id"] != obj["Id"]:
                raise QboFault(
                    400,
                    "6240",
                    "Duplicate Name Exists Error",
                    f"The name supplied already exists. : Another customer is already using this name. "
                    f"Please use a different name. Id={other['Id']}",
                )
        obj["DisplayName"] = name
        obj.setdefault("FullyQualifiedName", name)
        obj.setdefault("PrintOnCheckName", name)
        obj.setdefault("Active", True)
        obj.setdefault("Taxable", False)
        obj.setdefault("Job", False)
        obj.setdefault("BillWithParent", False)
        obj.setdefault("Balance", 0)
        obj.setdefault("BalanceWithJobs", 0)
        obj.setdefault("PreferredDeliveryMethod", "Print")
        obj.setdefault("IsProject", False)
        ref = obj.get("CurrencyRef") or {"value": company.currency}
        code = str(ref.get("value", company.currency)).upper()
        obj["CurrencyRef"] = {"value": code, "name": CURRENCY_NAMES.get(code, code)}

    def _prepare_item(self, company: Company, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        name = str(obj.get("Name") or "").strip()
        if not name:
            raise QboFault(
                400,
                "2020",
                "Required param missing, need to supply the required value for the API",
                "Required parameter Name is missing",
                element="Name",
            )
        for other in company.entities["Item"].values():
            if other["Name"].lower() == name.lower() and other["Id"] != obj["Id"]:
                raise QboFault(
                    400,
                    "6240",
                    "Duplicate Name Exists Error",
                    f"The name supplied already exists. : Another product or service is already using "
                    f"this name. Please use a different name. Id={other['Id']}",
                )
        kind = obj.setdefault("Type", "Service")
        if kind in ("Service", "NonInventory"):
            account = self._ref(company, "Account", obj.get("IncomeAccountRef"), "IncomeAccountRef")
            obj["IncomeAccountRef"] = {"value": account["Id"], "name": account["Name"]}
        obj["Name"] = name
        obj.setdefault("FullyQualifiedName", name)
        obj.setdefault("Active", True)
        obj.setdefault("Taxable", False)
        obj.setdefault("UnitPrice", 0)
        obj.setdefault("PurchaseCost", 0)
        obj.setdefault("TrackQtyOnHand", False)

    def _prepare_account(self, company: Company, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        name = str(obj.get("Name") or "").strip()
        kind = str(obj.get("AccountType") or "")
        if not name or not kind:
            raise QboFault(
                400,
                "2020",
                "Required param missing, need to supply the required value for the API",
                "Required parameters Name and AccountType",
                element="Name",
            )
        for other in company.entities["Account"].values():
            if other["Name"].lower() == name.lower() and other["Id"] != obj["Id"]:
                raise QboFault(
                    400,
                    "6240",
                    "Duplicate Name Exists Error",
                    f"The name supplied already exists. : Another account is already using this name. Id={other['Id']}",
                )
        classes = {
            "Income": "Revenue",
            "Other Income": "Revenue",
            "Expense": "Expense",
            "Bank": "Asset",
            "Accounts Receivable": "Asset",
            "Other Current Asset": "Asset",
            "Equity": "Equity",
        }
        obj["Name"] = name
        obj.setdefault("Classification", classes.get(kind, "Revenue"))
        obj.setdefault("AccountSubType", "OtherMiscellaneousIncome" if kind == "Other Income" else "ServiceFeeIncome")
        obj.setdefault("FullyQualifiedName", name)
        obj.setdefault("SubAccount", False)
        obj.setdefault("Active", True)
        obj.setdefault("CurrentBalance", 0)
        obj.setdefault("CurrentBalanceWithSubAccounts", 0)
        obj.setdefault("CurrencyRef", {"value": company.currency, "name": CURRENCY_NAMES.get(company.currency, "")})

    def _prepare_payment(self, company: Company, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if old is not None:
            raise QboFault(
                400,
                "6000",
                "A business validation error has occurred while processing your request",
                "Business Validation Error: the emulator supports creating and voiding payments only.",
            )
        customer = self._ref(company, "Customer", obj.get("CustomerRef"), "CustomerRef")
        obj["CustomerRef"] = {"name": customer["DisplayName"], "value": customer["Id"]}
        self._currency_ref(company, obj)
        obj["TxnDate"] = str(obj.get("TxnDate") or self.today(company).isoformat())
        total = _money(obj.get("TotalAmt"))
        if total < 0:
            raise QboFault(
                400,
                "6000",
                "A business validation error has occurred while processing your request",
                "Business Validation Error: TotalAmt cannot be negative.",
            )
        to_invoices = Decimal(0)
        from_credits = Decimal(0)
        plan: list[tuple[str, str, Decimal]] = []
        for line in obj.get("Line") or []:
            amount = _money(line.get("Amount"))
            line["Amount"] = _num(amount)
            for link in line.get("LinkedTxn") or []:
                kind, ident = str(link.get("TxnType")), str(link.get("TxnId"))
                if kind == "Invoice":
                    invoice = self._ref(company, "Invoice", ident, "LinkedTxn")
                    if amount > _money(invoice["Balance"]):
                        raise QboFault(
                            400,
                            "6000",
                            "A business validation error has occurred while processing your request",
                            "Business Validation Error: The payment amount exceeds the "
                            f"open balance of invoice {invoice.get('DocNumber')}.",
                        )
                    to_invoices += amount
                elif kind == "CreditMemo":
                    memo = self._ref(company, "CreditMemo", ident, "LinkedTxn")
                    if amount > _money(memo["RemainingCredit"]):
                        raise QboFault(
                            400,
                            "6000",
                            "A business validation error has occurred while processing your request",
                            "Business Validation Error: The credit amount exceeds the remaining credit.",
                        )
                    from_credits += amount
                else:
                    raise QboFault(400, "2170", "Invalid Enumeration", f"TxnType {kind}", element="TxnType")
                plan.append((kind, ident, amount))
        unapplied = total + from_credits - to_invoices
        if unapplied < 0:
            raise QboFault(
                400,
                "6000",
                "A business validation error has occurred while processing your request",
                "Business Validation Error: The amounts applied exceed the payment and credits.",
            )
        obj["TotalAmt"] = _num(total)
        obj["UnappliedAmt"] = _num(unapplied)
        obj.setdefault("ProcessPayment", False)
        obj["_plan"] = plan

    def _after_payment(self, company: Company, obj: dict[str, Any]) -> None:
        for kind, ident, amount in obj.pop("_plan", []):
            if kind == "Invoice":
                self._apply(company, ident, amount, obj["Id"])
            else:
                key = "cm:" + ident
                company.applied[key] = company.applied.get(key, Decimal(0)) + amount
                memo = company.entities["CreditMemo"][ident]
                remaining = _money(memo["RemainingCredit"]) - amount
                memo["RemainingCredit"] = _num(remaining)
                memo["Balance"] = _num(remaining)
                # The memo names the invoices it was used on (mapping.to_payments reads them).
                links = memo.setdefault("LinkedTxn", [])
                for invoice in _invoices_of(obj):
                    if {"TxnId": invoice, "TxnType": "Invoice"} not in links:
                        links.append({"TxnId": invoice, "TxnType": "Invoice"})
                memo["SyncToken"] = str(int(memo["SyncToken"]) + 1)
                self._touch(company, "CreditMemo", memo)

    def _apply(self, company: Company, invoice_id: str, amount: Decimal, payment_id: str) -> None:
        invoice = company.entities["Invoice"][invoice_id]
        company.applied[invoice_id] = company.applied.get(invoice_id, Decimal(0)) + amount
        balance = _money(invoice["Balance"]) - amount
        self._customer_balance(company, invoice, -amount)
        invoice["Balance"] = _num(balance)
        links = invoice.setdefault("LinkedTxn", [])
        if amount > 0:
            links.append({"TxnId": payment_id, "TxnType": "Payment"})
        else:
            invoice["LinkedTxn"] = [ln for ln in links if ln.get("TxnId") != payment_id]
        invoice["SyncToken"] = str(int(invoice["SyncToken"]) + 1)
        when = self._touch(company, "Invoice", invoice)
        # Paying an invoice changes it: QBO notifies an Update of the invoice too (listeners only enqueue).
        self._notify(company.realm, "Invoice", invoice_id, "Update", when)

    def _unapply_payment(self, company: Company, payment: dict[str, Any]) -> None:
        for line in payment.get("Line") or []:
            amount = _money(line.get("Amount"))
            for link in line.get("LinkedTxn") or []:
                ident = str(link.get("TxnId"))
                if link.get("TxnType") == "Invoice" and ident in company.entities["Invoice"]:
                    self._apply(company, ident, -amount, payment["Id"])
                elif link.get("TxnType") == "CreditMemo" and ident in company.entities["CreditMemo"]:
                    key = "cm:" + ident
                    company.applied[key] = company.applied.get(key, Decimal(0)) - amount
                    memo = company.entities["CreditMemo"][ident]
                    memo["RemainingCredit"] = _num(_money(memo["RemainingCredit"]) + amount)
                    memo["Balance"] = memo["RemainingCredit"]
                    still = self._memo_invoices(company, ident, payment["Id"])
                    memo["LinkedTxn"] = [
                        ln
                        for ln in memo.get("LinkedTxn") or []
                        if ln.get("TxnType") != "Invoice" or ln["TxnId"] in still
                    ]
                    memo["SyncToken"] = str(int(memo["SyncToken"]) + 1)
                    self._touch(company, "CreditMemo", memo)

    def _memo_invoices(self, company: Company, memo: str, without: str) -> set[str]:
        """Invoices that payments other than `without` still apply credit memo `memo` to."""
        still: set[str] = set()
        for payment in company.entities["Payment"].values():
            if payment["Id"] == without or payment.get("_voided"):
                continue
            lines = payment.get("Line") or []
            if any(
                link.get("TxnType") == "CreditMemo" and str(link.get("TxnId")) == memo
                for line in lines
                for link in line.get("LinkedTxn") or []
            ):
                still.update(_invoices_of(payment))
        return still

    # -- invoice extras -------------------------------------------------------------------------------
    def send(self, realm: str, ident: str, to: str | None) -> dict[str, Any]:
        company = self.company(realm)
        with company.lock:
            invoice = company.entities["Invoice"].get(ident)
            if invoice is None:
                raise not_found("Invoice", ident)
            if to:
                invoice["BillEmail"] = {"Address": to}
            if not (invoice.get("BillEmail") or {}).get("Address"):
                raise QboFault(
                    400,
                    "6000",
                    "A business validation error has occurred while processing your request",
                    "Business Validation Error: Missing email address.",
                )
            invoice["EmailStatus"] = "EmailSent"
            invoice["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": self.stamp(company)}
            invoice["SyncToken"] = str(int(invoice["SyncToken"]) + 1)
            when = self._touch(company, "Invoice", invoice)
            result = _public(invoice)
        self._notify(realm, "Invoice", ident, "Emailed", when)
        return result

    def invoice_link(self, realm: str, ident: str, base_url: str) -> str:
        return f"{base_url}/app/invoice/pay?realm={realm}&id={ident}"


def _invoices_of(payment: dict[str, Any]) -> list[str]:
    """Invoice ids a Payment's lines link, in order."""
    return [
        str(link.get("TxnId"))
        for line in payment.get("Line") or []
        for link in line.get("LinkedTxn") or []
        if link.get("TxnType") == "Invoice"
    ]


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API shows it (internal `_` keys dropped); shallow copy is enough to serialise."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def parse_changed_since(text: str, company: Company) -> datetime:
    """CDC `changedSince`: ISO 8601; python-quickbooks sends it without offset (company time then)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise QboFault(
            400,
            "4000",
            "Error processing the request",
            f"changedSince is not a date-time: {text!r}",
            element="changedSince",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=company.tz)
    return moment.astimezone(UTC)

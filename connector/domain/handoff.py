"""The hand-off pack's figures: what is owed, the statutory claim, the totals, the agency's rows. Pure.

A pack is made for the invoices an `escalate: handoff` step hands over (see `connector.handoff`). For a UK
client the letter is a letter before claim under the Pre-Action Protocol for Debt Claims and claims what the
Late Payment of Commercial Debts (Interest) Act 1998 allows: simple interest at 8 points over the reference
base rate, accrued daily (actual/365) from the day after the due date to the letter's date on the unpaid sum
(part payments reduce it from their own date), and the fixed compensation per invoice in GBP (£40 below
£1,000, £70 to £9,999.99, £100 from £10,000). What Nudge already charged for an invoice as late fees (not
reversed) is deducted, so nothing is claimed twice. Money is never added across currencies: totals are per
currency.

Everything from the ledger is hostile: `csv_cell` neutralises spreadsheet formulas, `safe_name` makes a file
or ZIP entry name of any text (no path, no traversal, ASCII only).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from connector.domain.fees import FeeRecord, accrued_interest, uk_compensation
from connector.domain.model import Payment
from connector.domain.money import Money

STATUTORY_MARGIN = Decimal(8)  # points over the reference base rate (Late Payment Act 1998, the 2002 order)
REPLY_DAYS = 30  # the Pre-Action Protocol's time for the debtor to reply to a letter before claim
UK_COUNTRY = "GB"
UK_CURRENCY = "GBP"


def is_uk_client(country: str, home_currency: str) -> bool:
    """Whether a client's letters follow the UK Pre-Action Protocol: its ledger's country is GB, or (country
    unknown) its home currency is GBP."""
    code = country.strip().upper()
    if code:
        return code == UK_COUNTRY
    return home_currency.strip().upper() == UK_CURRENCY


@dataclass(frozen=True, slots=True)
class DebtFacts:
    """One invoice handed over, as the ledger and Nudge's history know it (the input of `claim_for`)."""

    external_id: str
    number: str
    issue_date: date | None
    due_date: date | None
    total: Money
    outstanding: Money  # the invoice's balance as last synced
    payments: tuple[Payment, ...] = ()
    fees: tuple[FeeRecord, ...] = ()  # late fees Nudge charged for it
    disputed: bool = False


@dataclass(frozen=True, slots=True)
class Claim:
    """What the pack claims for one invoice: the outstanding sum, plus (UK) statutory interest and compensation.

    `interest_days` counts from `interest_from` to the letter date inclusive; `fees_deducted` is what late fees
    already charged for the invoice took off the statutory sums.
    """

    debt: DebtFacts
    interest: Money
    compensation: Money
    interest_from: date | None = None
    interest_days: int = 0
    annual_rate: Decimal | None = None
    fees_charged: Money | None = None
    fees_deducted: Money | None = None

    @property
    def currency(self) -> str:
        """The invoice's currency (every figure of the claim is in it)."""
        return self.debt.outstanding.currency

    @property
    def total(self) -> Money:
        """Outstanding + interest + compensation."""
        return self.debt.outstanding + self.interest + self.compensation


def claim_for(debt: DebtFacts, as_of: date, *, statutory: bool, base_rate: Decimal | None) -> Claim:
    """The claim of one invoice on local day `as_of` (the letter's date).

    `statutory` (a UK client with a configured `base_rate`): interest at base rate + 8 % a year from the day
    after the due date through `as_of` on the unpaid sum, and the fixed compensation when the invoice is in
    GBP; minus the late fees already charged (compensation first, then interest), never below zero. Otherwise
    only the outstanding sum is claimed.
    """
    zero = Money.zero(debt.outstanding.currency)
    if not statutory or base_rate is None or debt.due_date is None or as_of <= debt.due_date:
        return Claim(debt, zero, zero)
    rate = base_rate + STATUTORY_MARGIN
    start = debt.due_date + timedelta(days=1)
    interest = accrued_interest(debt.outstanding, debt.payments, start, as_of + timedelta(days=1), rate)
    compensation = zero
    if debt.outstanding.currency == UK_CURRENCY and debt.outstanding.is_positive():
        compensation = uk_compensation(debt.outstanding)
    charged = sum(
        (f.amount for f in debt.fees if not f.reversed and not f.superseded and f.amount.currency == zero.currency),
        zero,
    )
    compensation_left = (compensation - charged).max(zero)
    interest_left = (interest - (charged - compensation).max(zero)).max(zero)
    deducted = (compensation - compensation_left) + (interest - interest_left)
    return Claim(
        debt,
        interest_left,
        compensation_left,
        interest_from=start,
        interest_days=(as_of - debt.due_date).days,
        annual_rate=rate,
        fees_charged=charged,
        fees_deducted=deducted,
    )


@dataclass(frozen=True, slots=True)
class CurrencyTotals:
    """The pack's totals in one currency."""

    currency: str
    invoices: int
    original: Money
    outstanding: Money
    interest: Money
    compensation: Money

    @property
    def claimed(self) -> Money:
        """Outstanding + interest + compensation."""
        return self.outstanding + self.interest + self.compensation


def totals(claims: Iterable[Claim]) -> tuple[CurrencyTotals, ...]:
    """The claims' totals per currency, sorted by currency code (amounts of two currencies are never added)."""
    by_currency: dict[str, list[Claim]] = {}
    for claim in claims:
        by_currency.setdefault(claim.currency, []).append(claim)
    out = []
    for currency in sorted(by_currency):
        group = by_currency[currency]
        zero = Money.zero(currency)
        out.append(
            CurrencyTotals(
                currency,
                len(group),
                sum((c.debt.total for c in group), zero),
                sum((c.debt.outstanding for c in group), zero),
                sum((c.interest for c in group), zero),
                sum((c.compensation for c in group), zero),
            )
        )
    return tuple(out)


def reply_by(letter_date: date) -> date:
    """The last day of the debtor's time to reply to a letter before claim (30 days from its date)."""
    return letter_date + timedelta(days=REPLY_DAYS)


# -- hostile text into files ------------------------------------------------------------------------------------
_FORMULA_START = ("=", "+", "-", "@", "\t")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
_NOT_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def csv_cell(value: object) -> str:
    """`value` as a CSV cell that no spreadsheet runs as a formula: text beginning with = + - @ or a tab gets a
    leading apostrophe; line breaks become spaces (one record per line)."""
    text = "" if value is None else str(value)
    text = _LINE_BREAKS.sub(" ", text)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def safe_name(text: str, *, fallback: str = "file", limit: int = 60) -> str:
    """A file or ZIP entry name made of `text`: ASCII letters, digits, dot, dash and underscore only, no leading
    dots (so never `..` or a hidden file), at most `limit` characters; `fallback` when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    name = _NOT_NAME.sub("-", ascii_text).strip("-.")[:limit].strip("-.")
    return name or fallback


def unique_names(names: Sequence[str]) -> tuple[str, ...]:
    """`names` with a counter added before the extension of every repeat (`a.pdf`, `a-2.pdf`), case-insensitively."""
    seen: set[str] = set()
    out = []
    for name in names:
        stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
        candidate, n = name, 1
        while candidate.lower() in seen:
            n += 1
            candidate = f"{stem}-{n}{dot}{ext}"
        seen.add(candidate.lower())
        out.append(candidate)
    return tuple(out)

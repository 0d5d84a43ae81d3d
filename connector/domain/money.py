"""Money: a `Decimal` amount in an ISO 4217 currency, rounded half-up to the currency's minor unit."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# Minor units per ISO 4217 (2024 list). Currencies not listed in the exceptions use 2.
_ZERO_DECIMALS = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "PYG",
        "RWF",
        "UGX",
        "UYI",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
_THREE_DECIMALS = frozenset(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"])
_FOUR_DECIMALS = frozenset(["CLF", "UYW"])
_TWO_DECIMALS = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BMD",
        "BND",
        "BOB",
        "BOV",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHE",
        "CHF",
        "CHW",
        "CNY",
        "COP",
        "COU",
        "CRC",
        "CUC",
        "CUP",
        "CVE",
        "CZK",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HRK",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IRR",
        "JMD",
        "KES",
        "KGS",
        "KHR",
        "KPW",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MXV",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SLL",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "USD",
        "USN",
        "UYU",
        "UZS",
        "VED",
        "VES",
        "WST",
        "XCD",
        "XCG",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
        "ZWL",
    ]
)
KNOWN_CURRENCIES = _ZERO_DECIMALS | _TWO_DECIMALS | _THREE_DECIMALS | _FOUR_DECIMALS


class CurrencyError(ValueError):
    """An unknown currency code, or arithmetic that would mix two currencies."""


def minor_units(currency: str) -> int:
    """Number of decimal places of `currency` (JPY 0, USD 2, BHD 3); raises CurrencyError if unknown."""
    code = normalize_currency(currency)
    if code in _ZERO_DECIMALS:
        return 0
    if code in _THREE_DECIMALS:
        return 3
    if code in _FOUR_DECIMALS:
        return 4
    return 2


def normalize_currency(currency: str) -> str:
    """Upper-case ISO 4217 code; raises CurrencyError for anything that is not a known code."""
    code = currency.strip().upper() if isinstance(currency, str) else ""
    if code not in KNOWN_CURRENCIES:
        raise CurrencyError(f"unknown currency code {currency!r} (expected an ISO 4217 code such as USD)")
    return code


def quantum(currency: str) -> Decimal:
    """The smallest unit of `currency` as a Decimal exponent (Decimal('0.01') for USD)."""
    return Decimal(1).scaleb(-minor_units(currency))


_QUANTA: dict[str, Decimal] = {}  # filled below, once every function it needs exists


def to_decimal(value: Decimal | int | str) -> Decimal:
    """Exact Decimal from a Decimal, int or numeric string; floats are refused (they are not exact)."""
    if isinstance(value, (bool, float)):
        raise TypeError("money amounts must be Decimal, int or str, never float")
    if isinstance(value, Decimal):
        result = value
    else:
        try:
            result = Decimal(value)
        except InvalidOperation as exc:
            raise ValueError(f"not a number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return result


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in one currency, always held rounded half-up to the currency's minor unit."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        # Hot path (the planner builds hundreds of thousands): a known code and a finite Decimal.
        step = _QUANTA.get(self.currency)
        if step is None:
            code = normalize_currency(self.currency)
            step = _QUANTA[code]
            object.__setattr__(self, "currency", code)
        amount = self.amount
        if type(amount) is not Decimal or not amount.is_finite():
            amount = to_decimal(amount)
        object.__setattr__(self, "amount", amount.quantize(step, rounding=ROUND_HALF_UP))

    @classmethod
    def of(cls, amount: Decimal | int | str, currency: str) -> Money:
        """Money from an exact amount, rounded half-up to the currency's minor unit."""
        return cls(to_decimal(amount), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Zero in `currency`."""
        return cls(Decimal(0), currency)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"expected Money, got {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        """Multiply by an exact factor (a rate or a count), rounding the result half-up."""
        return Money(self.amount * to_decimal(factor), self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def is_zero(self) -> bool:
        """True when the amount is exactly zero at the currency's precision."""
        return self.amount == 0

    def is_positive(self) -> bool:
        """True when the amount is above zero."""
        return self.amount > 0

    def min(self, other: Money) -> Money:
        """The smaller of two amounts in the same currency."""
        return self if self <= other else other

    def max(self, other: Money) -> Money:
        """The larger of two amounts in the same currency."""
        return self if self >= other else other

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def total(amounts: list[Money] | tuple[Money, ...], currency: str) -> Money:
    """Sum of `amounts`, all in `currency` (the empty sum is zero)."""
    result = Money.zero(currency)
    for amount in amounts:
        result = result + amount
    return result


_QUANTA.update({code: quantum(code) for code in KNOWN_CURRENCIES})

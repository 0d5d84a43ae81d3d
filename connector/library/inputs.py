"""Checks of what people type into settings and overrides: each returns the value as stored, or raises
`InvalidInput` naming the field (a dotted path) with a sentence saying what is expected.

Everything here treats its input as hostile (API bodies, form fields): wrong types, huge strings, control
characters and unknown codes are refused with a message, never a crash.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import holidays
from babel import Locale, UnknownLocaleError
from sqlalchemy import select

from connector.domain.calendar import is_time_zone
from connector.domain.money import CurrencyError, minor_units, normalize_currency, to_decimal
from connector.errors import HeaderInjection, InvalidInput
from connector.library.resolve import CADENCE
from connector.mail.message import check_header, normalize_address
from connector.storage import UnitOfWork
from connector.storage.tables import LibraryItem

NAME_MAX = 200  # business name, From name (the columns' width)
REASON_MAX = 2000  # a dispute's reason
RECIPIENTS_MAX = 20
AMOUNT_LIMIT = Decimal(10) ** 15  # amounts are stored as NUMERIC(20, 4)
ROW_ID_MAX = 2**31 - 1  # row ids are 32-bit integers; larger numbers name nothing (and SQLite cannot bind > 2**63)
ADDRESS_MAX = 320
_HH_MM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
# Bidirectional overrides and isolates: they make a name read differently from what it is (spoofing).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def text(value: Any, field: str, *, max_length: int = NAME_MAX, single_line: bool = True) -> str:
    """`value` stripped: a str of at most `max_length` characters without control characters (a multi-line
    text may hold line feeds and tabs), line/paragraph separators or bidirectional overrides."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text", field)
    found = value.strip()
    if len(found) > max_length:
        raise InvalidInput(f"{field} is {len(found)} characters long; at most {max_length} are allowed", field)
    allowed = "" if single_line else "\n\t"
    for char in found:
        category = unicodedata.category(char)
        if char in allowed:
            continue
        if category in ("Cc", "Zl", "Zp") or char in _BIDI:
            kind = "a line break" if char in "\r\n\u2028\u2029\x85" else "a control character"
            raise InvalidInput(f"{field} contains {kind} ({char!r}); use plain text", field)
    return found


def flag(value: Any, field: str) -> bool:
    """`value` when it is true or false (not 0/1, not "yes")."""
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be true or false", field)
    return value


def day(value: Any, field: str) -> date:
    """A calendar date from a date or ISO text (YYYY-MM-DD)."""
    if isinstance(value, datetime):
        raise InvalidInput(f"{field} must be a date (YYYY-MM-DD), not an instant", field)
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) <= 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInput(f"{field} must be a date written YYYY-MM-DD", field)


def optional_day(value: Any, field: str) -> date | None:
    """None, or a date (see `day`)."""
    return None if value is None or value == "" else day(value, field)


def whole_number(value: Any, field: str, low: int, high: int) -> int:
    """An int from `low` to `high` (bools and floats refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field} must be a whole number from {low} to {high}", field)
    return value


def time_zone(value: Any, field: str) -> str:
    """ "" (inherit) or an IANA zone name such as Europe/London."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > 64 or not is_time_zone(value.strip()):
        raise InvalidInput(f"{field} must be an IANA time zone such as Europe/London", field)
    return value.strip()


def holiday_calendar(value: Any, field: str) -> str:
    """ "" (inherit), "CC" (a country the `holidays` package knows) or "CC-SUBDIV", spelled as the package does."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > 20:
        raise InvalidInput(f"{field} must be a country code such as GB, or country and region such as US-CA", field)
    country, _, subdiv = value.strip().upper().partition("-")
    supported = holidays.list_supported_countries()
    if country not in supported:
        raise InvalidInput(f"{field}: {country!r} is not a country with a known holiday calendar (e.g. GB, US)", field)
    if not subdiv:
        return country
    known = {str(code).upper(): str(code) for code in supported[country]}
    if subdiv not in known:
        listed = ", ".join(sorted(known.values())[:40]) or "none"
        raise InvalidInput(f"{field}: {country} has no region {subdiv!r} (known: {listed})", field)
    return f"{country}-{known[subdiv]}"


def locale(value: Any, field: str) -> str:
    """ "" (inherit) or a locale Babel knows (en_GB, de-DE...), stored as Babel writes it (en_GB)."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > 20:
        raise InvalidInput(f"{field} must be a locale such as en_GB", field)
    try:
        found = Locale.parse(value.strip().replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        raise InvalidInput(f"{field}: {value!r} is not a known locale (e.g. en_GB, fr_FR)", field) from None
    return str(found)


def address(value: Any, field: str) -> str:
    """One email address (no display name), as the mailer will send it (IDNA domain, lower case)."""
    if not isinstance(value, str) or not value.strip() or len(value) > ADDRESS_MAX:
        raise InvalidInput(f"{field} must be an email address", field)
    try:
        check_header(field, value)
        name, spec = normalize_address(value)
    except HeaderInjection:
        raise InvalidInput(f"{field} contains a line break; give one address", field) from None
    except ValueError as exc:
        raise InvalidInput(f"{field}: {value.strip()!r} is not a deliverable address ({exc})", field) from None
    if name:
        raise InvalidInput(f"{field}: give the address only (e.g. {spec}), without a name", field)
    return spec


def optional_address(value: Any, field: str) -> str:
    """ "" (inherit) or one address (see `address`)."""
    return "" if value is None or value == "" else address(value, field)


def addresses(value: Any, field: str, *, allow_empty: bool = True) -> list[str] | None:
    """None (the ledger's addresses) or a list of at most RECIPIENTS_MAX addresses, de-duplicated in order."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInput(f"{field} must be a list of email addresses", field)
    if len(value) > 4 * RECIPIENTS_MAX:
        raise InvalidInput(f"{field}: at most {RECIPIENTS_MAX} addresses", field)
    found: list[str] = []
    for index, item in enumerate(value):
        spec = address(item, f"{field}[{index}]")
        if spec.lower() not in {known.lower() for known in found}:
            found.append(spec)
    if len(found) > RECIPIENTS_MAX:
        raise InvalidInput(f"{field}: at most {RECIPIENTS_MAX} addresses ({len(found)} given)", field)
    if not found and not allow_empty:
        raise InvalidInput(f"{field} needs at least one address (null uses the ledger's addresses)", field)
    return found


def currency(value: Any, field: str) -> str:
    """An ISO 4217 code, upper case."""
    try:
        return normalize_currency(value)
    except CurrencyError:
        raise InvalidInput(f"{field}: {value!r} is not an ISO 4217 currency code (e.g. USD, EUR)", field) from None


def amount(value: Any, currency_code: str, field: str, *, positive: bool) -> Decimal:
    """An exact amount in `currency_code`, written with at most its minor units; positive or non-negative."""
    if isinstance(value, float):
        raise InvalidInput(f'{field}: give the amount as text (e.g. "12.50"), not a floating-point number', field)
    if isinstance(value, str) and len(value) > 40:
        raise InvalidInput(f"{field} must be an amount such as 12.50", field)
    try:
        found = to_decimal(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be an amount such as 12.50", field) from None
    if positive and found <= 0:
        raise InvalidInput(f"{field} must be more than zero", field)
    if found < 0:
        raise InvalidInput(f"{field} must not be negative", field)
    if abs(found) >= AMOUNT_LIMIT:  # first: quantizing a huge exponent would itself fail
        raise InvalidInput(f"{field}: {value} is too large (at most {AMOUNT_LIMIT - 1})", field)
    places = minor_units(currency_code)
    if found != found.quantize(Decimal(1).scaleb(-places)):
        unit = f"{places} decimal places" if places else "no decimals"
        raise InvalidInput(f"{field}: {currency_code} amounts have {unit} ({value} given)", field)
    return found.quantize(Decimal(1).scaleb(-places))


def minimum_amounts(value: Any, field: str) -> dict[str, str]:
    """{ISO currency: non-negative amount} as stored ({"USD": "25.00"}); None or {} clears."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(f'{field} must map currencies to amounts, e.g. {{"USD": "25.00"}}', field)
    found: dict[str, str] = {}
    for key, raw in value.items():
        where = f"{field}.{str(key)[:20]}"
        code = currency(key, where)
        if code in found:
            raise InvalidInput(f"{field}: {code} is given twice", where)
        found[code] = str(amount(raw, code, where, positive=False))
    return dict(sorted(found.items()))


def send_window(value: Any, field: str) -> dict[str, Any] | None:
    """None (the cadence's) or {"days": [0..6] (Monday 0), "start": "HH:MM", "end": "HH:MM"} with start < end."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInput(f'{field} must be {{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00"}}', field)
    unknown = sorted(str(key) for key in value if key not in ("days", "start", "end"))
    if unknown:
        raise InvalidInput(f"{field}: unknown key {unknown[0]!r} (expected days, start, end)", f"{field}.{unknown[0]}")
    days = value.get("days")
    if (
        isinstance(days, str)
        or not isinstance(days, Sequence)
        or not days
        or len(days) > 7 * 4
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days)
    ):
        message = f"{field}.days must list weekdays from 0 (Monday) to 6 (Sunday), at least one"
        raise InvalidInput(message, f"{field}.days")
    bounds: dict[str, str] = {}
    for key in ("start", "end"):
        raw = value.get(key)
        if not isinstance(raw, str) or not _HH_MM.fullmatch(raw):
            raise InvalidInput(f"{field}.{key} must be a time written HH:MM (00:00 to 23:59)", f"{field}.{key}")
        bounds[key] = raw
    if not bounds["start"] < bounds["end"]:
        raise InvalidInput(
            f"{field}: start {bounds['start']} must be before end {bounds['end']} (same day)", f"{field}.end"
        )
    return {"days": sorted(set(days)), "start": bounds["start"], "end": bounds["end"]}


def is_row_id(value: Any) -> bool:
    """True when `value` is an int that can be a row id (1 .. ROW_ID_MAX; not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= ROW_ID_MAX


def live_cadence(uow: UnitOfWork, organization_id: int, value: Any, field: str) -> LibraryItem | None:
    """None, or the organization's live (not deleted) library cadence with id `value`."""
    if value is None:
        return None
    if not is_row_id(value):
        raise InvalidInput(f"{field} must be the id of a cadence of your library (or null)", field)
    item = uow.session.scalar(
        select(LibraryItem).where(
            LibraryItem.id == value,
            LibraryItem.organization_id == organization_id,
            LibraryItem.kind == CADENCE,
            LibraryItem.deleted_at.is_(None),
        )
    )
    if item is None:
        raise InvalidInput(f"{field}: no cadence {value} in your library (it may have been deleted)", field)
    return item


FAR_AHEAD_YEARS = 10  # the planner adds offsets to these dates: keep them far from date.max


def near_day(value: Any, field: str, today: date) -> date:
    """A date at most FAR_AHEAD_YEARS before or after `today` (the planner adds offsets to it)."""
    found = day(value, field)
    if abs(found.year - today.year) > FAR_AHEAD_YEARS:
        raise InvalidInput(f"{field}: {found.isoformat()} is more than {FAR_AHEAD_YEARS} years from today", field)
    return found


def coming_day(value: Any, field: str, today: date) -> date:
    """A date from `today` (the client's local date) up to FAR_AHEAD_YEARS ahead."""
    found = day(value, field)
    if found < today:
        raise InvalidInput(f"{field}: {found.isoformat()} is in the past (today is {today.isoformat()})", field)
    if found.year > today.year + FAR_AHEAD_YEARS:
        raise InvalidInput(f"{field}: {found.isoformat()} is more than {FAR_AHEAD_YEARS} years ahead", field)
    return found

"""Xero's JSON wire conventions, shared by the emulator's routes (docs/provider-api-facts.md §2.2, §2.5).

Dates travel as `/Date(<ms since epoch>+0000)/` beside an ISO `...String` twin; amounts are JSON
numbers; errors are `ValidationException` bodies with the offending element and its ValidationErrors.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

from flask import Response

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def new_id() -> str:
    """A Xero-style GUID."""
    return str(uuid.uuid4())


def ms_date(moment: date | datetime) -> str:
    """`/Date(1539993600000+0000)/` for a date (midnight UTC) or an instant."""
    instant = moment.astimezone(UTC) if isinstance(moment, datetime) else datetime.combine(moment, time(0), tzinfo=UTC)
    return f"/Date({int(instant.timestamp() * 1000)}+0000)/"


def date_string(day: date) -> str:
    """The `DateString` twin: `2018-10-20T00:00:00`."""
    return f"{day.isoformat()}T00:00:00"


def parse_ms(text: str) -> datetime | None:
    """Aware UTC instant from `/Date(ms[+zzzz])/`, or None when `text` is not in that shape."""
    match = _MS_DATE.match(text.strip())
    if not match:
        return None
    return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)


def parse_date(value: Any) -> date | None:
    """A calendar date from what clients send: `/Date(..)/`, `2024-01-31`, `2024-01-31T00:00:00`."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    instant = parse_ms(text)
    if instant is not None:
        return instant.date()
    try:
        return date.fromisoformat(text[:10])
    except ValueError as exc:
        raise ValueError(f"'{text}' is not a valid date") from exc


def parse_instant(value: str) -> datetime:
    """An aware instant from an `If-Modified-Since` header: ISO 8601 (what xero-python sends) or RFC 1123."""
    text = value.strip()
    instant = parse_ms(text)
    if instant is not None:
        return instant
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = parsedate_to_datetime(text)
    # Xero reads a zone-less timestamp as UTC.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_amount(value: Any, name: str = "amount") -> Decimal:
    """Exact Decimal from a JSON number or string."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number")
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{name} must be a number") from exc
    if not amount.is_finite():
        raise ValueError(f"{name} must be a number")
    return amount


def money(value: Decimal) -> Decimal:
    """Rounded to cents (Xero stores 2 dp on totals)."""
    return value.quantize(Decimal("0.01"))


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return ms_date(value)
    if isinstance(value, date):
        return ms_date(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(body: Any) -> str:
    """JSON text with Decimal as numbers and dates as `/Date(..)/`."""
    return _ENCODER.encode(body)


# json.dumps(body, default=_default, separators=(",", ":")) without the cycle check (answers are trees), made once.
_ENCODER = json.JSONEncoder(default=_default, separators=(",", ":"), check_circular=False)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response in Xero's content type."""
    response = Response(dumps(body), status=status, mimetype="application/json")
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def envelope(now: datetime, **collections: Any) -> dict[str, Any]:
    """The response envelope every Accounting API answer has (payload xero_invoices_get.json)."""
    body: dict[str, Any] = {
        "Id": new_id(),
        "Status": "OK",
        "ProviderName": "Nudge Xero emulator",
        "DateTimeUTC": f"/Date({int(now.timestamp() * 1000)})/",
    }
    body.update(collections)
    return body


def validation_error(elements: list[dict[str, Any]]) -> dict[str, Any]:
    """A 400 body shaped like payloads xero_validation_error*.json (docs/provider-api-facts.md §2.5)."""
    return {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": elements,
    }


def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    """Body of 401/403/404 answers ([unverified] shape: RFC 7807-like, as Xero's identity layer answers)."""
    return {"Type": None, "Title": title, "Status": status, "Detail": detail, "Instance": new_id(), "Extensions": {}}

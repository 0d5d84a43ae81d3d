"""The `where` / `order` / paging subset of Xero's list endpoints (docs/provider-api-facts.md §2.2).

Supported: `Field==value`, `!=`, `<`, `<=`, `>`, `>=`, joined by `AND`/`&&` or `OR`/`||` (AND binds
tighter); values are "strings", numbers, true/false, `guid("...")`, `DateTime(y,m,d)`; fields may be
dotted (`Contact.ContactID`). Anything else is a 400, as an unsupported filter is on Xero.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

_CLAUSE = re.compile(
    r"""^\s*(?P<field>[A-Za-z][A-Za-z0-9_.]*)\s*(?P<op>==|!=|>=|<=|>|<)\s*(?P<value>.+?)\s*$""",
)
_SPLIT_OR = re.compile(r"\s+OR\s+|\s*\|\|\s*", re.IGNORECASE)
_SPLIT_AND = re.compile(r"\s+AND\s+|\s*&&\s*", re.IGNORECASE)
MAX_PAGE_SIZE = 1000  # docs/provider-api-facts.md §2.2 [3p]
DEFAULT_PAGE_SIZE = 100


class QueryError(ValueError):
    """An unsupported or malformed filter."""


def _split_outside_quotes(text: str, pattern: re.Pattern[str]) -> list[str]:
    parts: list[str] = []
    start = 0
    for match in pattern.finditer(text):
        if text[: match.start()].count('"') % 2 == 0:
            parts.append(text[start : match.start()])
            start = match.end()
    parts.append(text[start:])
    return parts


def _value(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    guid = re.fullmatch(r'guid\(\s*"([0-9a-fA-F-]+)"\s*\)', text, re.IGNORECASE)
    if guid:
        return guid.group(1).lower()
    stamp = re.fullmatch(r"DateTime\(\s*(\d{4})\s*,\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)", text, re.IGNORECASE)
    if stamp:
        return date(int(stamp.group(1)), int(stamp.group(2)), int(stamp.group(3)))
    try:
        return Decimal(text)
    except ArithmeticError as exc:
        raise QueryError(f"cannot read value {text!r}") from exc


def _field(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _compare(left: Any, op: str, right: Any) -> bool:
    if isinstance(left, datetime) and isinstance(right, date) and not isinstance(right, datetime):
        left = left.date()
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.lower(), right.lower()
    if isinstance(left, (int, float, Decimal)) and not isinstance(left, bool) and isinstance(right, Decimal):
        left = Decimal(str(left))
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        return bool({"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op])
    except TypeError as exc:
        raise QueryError(f"cannot compare {type(left).__name__} with {type(right).__name__}") from exc


def _unwrap(clause: str) -> str:
    """Drop grouping parentheses around a clause, keeping those of guid(...) / DateTime(...)."""
    text = clause.strip()
    while text.startswith("("):
        text = text[1:].strip()
    while text.endswith(")") and text.count(")") > text.count("("):
        text = text[:-1].strip()
    return text


def where(expression: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate over stored records for a `where` expression."""
    alternatives: list[list[tuple[str, str, Any]]] = []
    for branch in _split_outside_quotes(expression, _SPLIT_OR):
        clauses = []
        for raw in _split_outside_quotes(branch, _SPLIT_AND):
            match = _CLAUSE.match(_unwrap(raw))
            if not match:
                raise QueryError(f"unsupported where clause: {raw.strip()!r}")
            clauses.append((match.group("field"), match.group("op"), _value(match.group("value"))))
        alternatives.append(clauses)

    tests = [[_clause_test(f, op, v) for f, op, v in clauses] for clauses in alternatives]
    if len(tests) == 1 and len(tests[0]) == 1:
        return tests[0][0]  # one clause (`Type=="ACCREC"`): no any/all frame per record

    def predicate(record: dict[str, Any]) -> bool:
        return any(all(test(record) for test in clauses) for clauses in tests)

    return predicate


def _reader(path: str) -> Callable[[dict[str, Any]], Any]:
    """`_field` for one path, decided once per query rather than once per record."""
    if "." in path:
        return lambda record: _field(record, path)
    return lambda record: record.get(path) if isinstance(record, dict) else None


def _clause_test(path: str, op: str, right: Any) -> Callable[[dict[str, Any]], bool]:
    """One clause as a test of a record: exactly `_compare(_field(record, path), op, right)`, with the common
    case (a text field against a "string" with == or !=) answered without the general comparison."""
    read = _reader(path)
    if isinstance(right, str) and op in ("==", "!=") and "." not in path:
        lowered = right.lower()
        equal = op == "=="

        def text_test(record: dict[str, Any]) -> bool:
            left = record.get(path) if isinstance(record, dict) else None  # `read`, inlined
            if isinstance(left, str):
                return (left.lower() == lowered) is equal
            return _compare(left, op, right)

        return text_test
    return lambda record: _compare(read(record), op, right)


def order(records: list[dict[str, Any]], expression: str) -> list[dict[str, Any]]:
    """Sort by `Field [ASC|DESC], ...` (stable)."""
    result = list(records)
    for part in reversed([p.strip() for p in expression.split(",") if p.strip()]):
        bits = part.split()
        field = bits[0]
        descending = len(bits) > 1 and bits[1].upper() == "DESC"

        def key(record: dict[str, Any], field: str = field) -> tuple[int, Any]:
            # `_field`, inlined for a plain name: the key is taken of every record listed.
            value = record.get(field) if "." not in field and isinstance(record, dict) else _field(record, field)
            if isinstance(value, str):
                value = value.lower()
            return (0, "") if value is None else (1, value)

        result.sort(key=key, reverse=descending)
    return result


def paginate(
    records: list[dict[str, Any]], page_arg: str | None, size_arg: str | None
) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    """The requested page and the `pagination` block; no `page` argument: everything, no block."""
    if page_arg is None:
        return records, None
    try:
        page = max(int(page_arg), 1)
        size = int(size_arg) if size_arg else DEFAULT_PAGE_SIZE
    except ValueError as exc:
        raise QueryError("page and pageSize must be integers") from exc
    size = min(max(size, 1), MAX_PAGE_SIZE)  # [unverified] Xero clamps rather than rejects
    start = (page - 1) * size
    chunk = records[start : start + size]
    block = {"page": page, "pageSize": size, "pageCount": math.ceil(len(records) / size), "itemCount": len(records)}
    return chunk, block


def csv_set(value: str | None) -> set[str] | None:
    """`A,B,C` → {"a","b","c"} (lower case), or None when absent."""
    if not value:
        return None
    return {v.strip().lower() for v in value.split(",") if v.strip()}


def select(
    records: Iterable[dict[str, Any]],
    *,
    id_field: str,
    ids: set[str] | None = None,
    statuses: set[str] | None = None,
    contact_ids: set[str] | None = None,
    since: datetime | None = None,
    predicate: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """Records passing every given filter. `since` is inclusive ([unverified]: Xero says "since")."""
    out = []
    for record in records:
        if ids is not None and str(record.get(id_field, "")).lower() not in ids:
            continue
        if statuses is not None and str(record.get("Status", "")).lower() not in statuses:
            continue
        if contact_ids is not None and str(record.get("Contact", {}).get("ContactID", "")).lower() not in contact_ids:
            continue
        if since is not None and record.get("UpdatedDateUTC") is not None and record["UpdatedDateUTC"] < since:
            continue
        if predicate is not None and not predicate(record):
            continue
        out.append(record)
    return out

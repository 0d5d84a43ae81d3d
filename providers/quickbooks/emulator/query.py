"""The subset of the QuickBooks query language the emulator understands (docs/provider-api-facts.md §1.3).

    SELECT * | COUNT(*) | <fields> FROM <Entity>
      [WHERE <cond> [AND <cond>]...]   cond: field (= < > <= >= LIKE) value | field IN (v, ...)
      [ORDERBY | ORDER BY field [ASC|DESC] [, field ...]] [STARTPOSITION n] [MAXRESULTS n]

Values are single-quoted strings (backslash escapes \\' and \\\\), bare numbers or true/false.
No OR, no JOIN, one entity per query; MAXRESULTS defaults to 100 and is capped at 1000.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_RESULTS = 1000
DEFAULT_RESULTS = 100


class QuerySyntaxError(ValueError):
    """The query is outside the supported grammar (QBO answers with a 4000 ValidationFault)."""


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # = < > <= >= LIKE IN
    values: tuple[Any, ...]


@dataclass
class Query:
    entity: str
    count: bool = False
    conditions: list[Condition] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    start: int = 1
    max_results: int = DEFAULT_RESULTS


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^'\\]|\\.)*')
      | (?P<op><=|>=|!=|=|<|>|\(|\)|,|\*)
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<num>-?\d+(?:\.\d+)?)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip().rstrip(";")
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            if text[pos:].strip() == "":
                break
            raise QuerySyntaxError(f"unexpected text at position {pos}: {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise QuerySyntaxError("unexpected end of query")
        self.i += 1
        return tok

    def keyword(self, *words: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].upper() in words:
            self.i += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.keyword(word):
            raise QuerySyntaxError(f"expected {word}")

    def value(self) -> Any:
        kind, text = self.next()
        if kind == "str":
            return _unquote(text)
        if kind == "num":
            return Decimal(text)
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise QuerySyntaxError(f"expected a value, got {text!r}")

    def parse(self) -> Query:
        self.expect("SELECT")
        count = self._select_list()
        self.expect("FROM")
        query = Query(entity=self._entity(), count=count)
        if self.keyword("WHERE"):
            self._where(query)
        if self.keyword("ORDERBY") or (self.keyword("ORDER") and self._by()):
            self._order_by(query)
        self._window(query)
        if self.peek() is not None:
            raise QuerySyntaxError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return query

    def _select_list(self) -> bool:
        """Read what follows SELECT up to FROM; whether it is COUNT(*)."""
        if self.keyword("COUNT"):
            for want in ("(", "*", ")"):
                if self.next()[1] != want:
                    raise QuerySyntaxError("expected COUNT(*)")
            return True
        # `*`, `*, Sku` or a field list: all fields are returned either way
        while True:
            tok = self.next()
            if tok[0] == "word" and tok[1].upper() == "FROM":
                self.i -= 1
                return False

    def _entity(self) -> str:
        """The entity name after FROM."""
        kind, entity = self.next()
        if kind != "word":
            raise QuerySyntaxError("expected an entity name")
        return entity

    def _where(self, query: Query) -> None:
        """The conditions after WHERE, joined by AND."""
        while True:
            query.conditions.append(self.condition())
            if not self.keyword("AND"):
                break

    def _order_by(self, query: Query) -> None:
        """The comma-separated sort fields after ORDERBY / ORDER BY."""
        while True:
            query.order.append(self._sort_field())
            after = self.peek()
            if after and after[1] == ",":
                self.i += 1
                continue
            break

    def _sort_field(self) -> tuple[str, bool]:
        """One sort field with its optional ASC / DESC: (field, descending)."""
        kind, name = self.next()
        if kind != "word":
            raise QuerySyntaxError("expected a field after ORDERBY")
        desc = False
        if self.keyword("DESC"):
            desc = True
        else:
            self.keyword("ASC")
        return name, desc

    def _window(self, query: Query) -> None:
        """STARTPOSITION (at least 1) and MAXRESULTS (capped at MAX_RESULTS), each optional."""
        if self.keyword("STARTPOSITION"):
            query.start = max(1, int(self._int()))
        if self.keyword("MAXRESULTS"):
            query.max_results = max(0, min(MAX_RESULTS, int(self._int())))

    def _by(self) -> bool:
        self.expect("BY")
        return True

    def _int(self) -> int:
        kind, text = self.next()
        if kind != "num" or "." in text:
            raise QuerySyntaxError("expected an integer")
        return int(text)

    def condition(self) -> Condition:
        kind, name = self.next()
        if kind != "word":
            raise QuerySyntaxError(f"expected a field name, got {name!r}")
        if self.keyword("IN"):
            if self.next()[1] != "(":
                raise QuerySyntaxError("expected ( after IN")
            values = [self.value()]
            while (tok := self.next())[1] == ",":
                values.append(self.value())
            if tok[1] != ")":
                raise QuerySyntaxError("expected ) after IN list")
            return Condition(name, "IN", tuple(values))
        if self.keyword("LIKE"):
            return Condition(name, "LIKE", (self.value(),))
        kind, op = self.next()
        if op not in ("=", "<", ">", "<=", ">="):
            raise QuerySyntaxError(f"unsupported operator {op!r}")
        return Condition(name, op, (self.value(),))


def parse(text: str) -> Query:
    """Parse one query; raises QuerySyntaxError outside the supported subset."""
    return _Parser(text).parse()


def _field(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        # QBO field names are case-sensitive in payloads but queries tolerate case (e.g. `Id` / `id`).
        if part in value:
            value = value[part]
        else:
            lowered = {k.lower(): k for k in value}
            key = lowered.get(part.lower())
            value = value[key] if key else None
    if isinstance(value, dict) and "value" in value:  # CustomerRef = '1' compares the ref's value
        value = value["value"]
    return value


def _parse_instant(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment


def _coerce(a: Any, b: Any) -> tuple[Any, Any]:
    """Bring a field value and a literal to comparable types (numbers, instants, dates, text)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return str(a).lower(), str(b).lower()
    if isinstance(a, (int, float, Decimal)) or isinstance(b, (int, float, Decimal)):
        try:
            return Decimal(str(a)), Decimal(str(b))
        except InvalidOperation:
            return str(a), str(b)
    sa, sb = str(a), str(b)
    if "T" in sa and "T" in sb:
        ia, ib = _parse_instant(sa), _parse_instant(sb)
        if ia and ib and ia.tzinfo and ib.tzinfo:
            return ia, ib
    if len(sa) == 10 and len(sb) == 10:
        try:
            return date.fromisoformat(sa), date.fromisoformat(sb)
        except ValueError:
            pass
    if sa.lstrip("-").replace(".", "", 1).isdigit() and sb.lstrip("-").replace(".", "", 1).isdigit():
        return Decimal(sa), Decimal(sb)
    return sa.lower(), sb.lower()


def _like(value: Any, pattern: str) -> bool:
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("%")) + "$"
    return re.match(regex, str(value), re.IGNORECASE | re.DOTALL) is not None


def _as_float(value: Any) -> float | None:
    try:
        return float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


_FAST = {"=": float.__eq__, "<": float.__lt__, ">": float.__gt__, "<=": float.__le__, ">=": float.__ge__}


def _test_value(value: Any, cond: Condition, number: float | None = None) -> bool:
    if value is None:
        return False
    if number is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and cond.op in _FAST:
        return bool(_FAST[cond.op](float(value), number))  # amounts: compare as numbers, fast path
    if cond.op == "LIKE":
        return _like(value, str(cond.values[0]))
    if cond.op == "IN":
        return any(a == b for a, b in (_coerce(value, v) for v in cond.values))
    a, b = _coerce(value, cond.values[0])
    try:
        if cond.op == "=":
            return bool(a == b)
        if cond.op == "<":
            return bool(a < b)
        if cond.op == ">":
            return bool(a > b)
        if cond.op == "<=":
            return bool(a <= b)
        return bool(a >= b)
    except TypeError:
        return False


def _reader(path: str) -> Callable[[dict[str, Any]], Any]:
    """`_field` for one path, decided once per query rather than once per object (a page request tests every
    object of the entity: 10,000 invoices for `Balance > '0'`)."""
    if "." in path:
        return lambda obj: _field(obj, path)
    folded = path.lower()

    def read(obj: dict[str, Any]) -> Any:
        if not isinstance(obj, dict):
            return None
        if path in obj:
            value = obj[path]
        else:
            key = {k.lower(): k for k in obj}.get(folded)
            value = obj[key] if key else None
        if isinstance(value, dict) and "value" in value:
            value = value["value"]
        return value

    return read


def _condition_test(cond: Condition) -> Callable[[dict[str, Any]], bool]:
    """`_test` of one condition with its field reader and number prepared: the same answers, faster."""
    number = _as_float(cond.values[0]) if len(cond.values) == 1 else None
    read = _reader(cond.field)
    fast = _FAST.get(cond.op) if number is not None else None
    if fast is None or number is None:
        return lambda obj: _test_value(read(obj), cond, number)
    threshold = number
    path = cond.field
    plain = "." not in path  # a dotted path is never one key of the object

    def numeric(obj: dict[str, Any]) -> bool:
        if plain and isinstance(obj, dict) and path in obj:  # `read` inlined for the usual case: the field as spelled
            value = obj[path]
            if isinstance(value, dict) and "value" in value:
                value = value["value"]
        else:
            value = read(obj)
        kind = type(value)
        if kind is float or kind is int or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return bool(fast(float(value), threshold))  # amounts: compare as numbers, fast path
        return _test_value(value, cond, threshold)

    return numeric


def predicate(query: Query) -> Callable[[dict[str, Any]], bool]:
    """A function telling whether one object matches every condition of `query`."""
    tests = [_condition_test(c) for c in query.conditions]
    if len(tests) == 1:
        return tests[0]
    return lambda obj: all(test(obj) for test in tests)


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return (1, Decimal(str(value)))
    text = str(value)
    if text.isdigit():
        return (1, Decimal(text))
    return (2, text.lower())


def run(query: Query, objects: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """(total matches, the requested window) of `objects` for `query`; default order is by Id."""
    test = predicate(query)
    matches = [o for o in objects if test(o)] if query.conditions else list(objects)
    # Objects are kept in creation order, which is ascending Id: the default order needs no sort.
    order = [] if not query.order or query.order[0] == ("Id", False) else query.order
    for name, desc in reversed(order):
        read = _reader(name)
        matches.sort(key=lambda o, read=read: _sort_key(read(o)), reverse=desc)  # type: ignore[misc]
    start = query.start - 1
    return len(matches), matches[start : start + query.max_results]

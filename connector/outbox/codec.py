"""Planned actions to and from JSON (the outbox's `payload` column), losslessly.

Money travels as {"amount": "12.50", "currency": "GBP"}, dates and instants as ISO 8601, enums by
value. The payload is what the executor carries out and what history is rebuilt from.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any

from connector.domain.actions import Action
from connector.domain.money import Money


def encode(value: Any) -> Any:
    """A JSON-ready structure for a (nested) dataclass value."""
    if isinstance(value, Money):
        return {"amount": str(value.amount), "currency": value.currency}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list | frozenset | set):
        return [encode(item) for item in value]
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(kind: Any, data: Any) -> Any:
    """Rebuild a value of type `kind` from `encode`'s output."""
    if data is None:
        return None
    origin = typing.get_origin(kind)
    if origin is not None:
        return _decode_generic(origin, kind, data)
    if not isinstance(kind, type):
        return data
    scalar = _SCALAR_DECODERS.get(kind)
    if scalar is not None:
        return scalar(data)
    if issubclass(kind, Enum):
        return kind(data)
    if dataclasses.is_dataclass(kind):
        hints = _hints(kind)
        return kind(**{f.name: decode(hints[f.name], data[f.name]) for f in dataclasses.fields(kind) if f.name in data})
    return data


def _decode_generic(origin: Any, kind: Any, data: Any) -> Any:
    """Decode a parameterized type: an optional value (first non-None option), a tuple or a frozenset."""
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return decode(options[0], data)
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], item) for item in data)
        return tuple(decode(arg, item) for arg, item in zip(args, data, strict=True))
    if origin is frozenset:
        return frozenset(decode(typing.get_args(kind)[0], item) for item in data)
    return data


_SCALAR_DECODERS: dict[type, Callable[[Any], Any]] = {
    Money: lambda data: Money.of(data["amount"], data["currency"]),
    datetime: datetime.fromisoformat,
    date: date.fromisoformat,
    Decimal: Decimal,
}


def action_to_json(action: Action) -> dict[str, Any]:
    """The outbox payload of a planned action."""
    encoded: dict[str, Any] = encode(action)
    return encoded


def action_from_json(data: dict[str, Any]) -> Action:
    """The planned action stored in an outbox payload."""
    action: Action = decode(Action, data)
    return action

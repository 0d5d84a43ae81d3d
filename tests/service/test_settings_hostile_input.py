"""Hostile input never crashes the settings, override and payment-plan services (issue 14): whatever JSON-like
values arrive (wrong types, NUL and other control characters, huge numbers, odd dates, nested junk), each call
either saves or raises `ChangeRefused` with a message, on SQLite and on PostgreSQL (which refuses NUL bytes
in text, so a value that slipped through would fail there)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.errors import ChangeRefused
from connector.library.overrides import (
    CUSTOMER_FIELDS,
    INVOICE_FIELDS,
    update_customer_overrides,
    update_invoice_override,
)
from connector.library.payment_plans import create_plan
from connector.library.settings import FIELDS, update_client_settings
from connector.storage import Store
from tests.support.clients import client, customer, invoice

NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "x@y.example\x00",
        "Europe/London\x00",
        "GB\x00",
        "x\r\nBcc: y@evil.example",
        "=?UTF-8?Q?=0A?=",
        "\u202eevil",
        "9" * 400,
        "1e999999",
        "-0",
        "NaN",
        "Infinity",
        "2026-02-30",
        "0001-01-01",
        "9999-12-31",
        "GB-",
        "-GB",
        "en_US@calendar=buddhist",
        "a@b",
        "a@b.example",
        "A <a@b.example>",
        "Europe/../../etc/passwd",
        "UTC",
        "USD",
        "GB-ENG",
        "en_GB",
        "ledger",
        "2026-12-01",
        "250.00",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | HOSTILE_TEXT
    | st.dates().map(date.isoformat)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | HOSTILE_TEXT, inner, max_size=4),
    max_leaves=8,
)
CHECKS = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _changes(fields: tuple[str, ...]) -> st.SearchStrategy[dict[Any, Any]]:
    """Mostly one field at a time (a value must pass every other check to reach the database), sometimes several."""
    keys = st.sampled_from((*fields, "junk"))
    value = HOSTILE_TEXT | VALUES | st.dates()
    return st.dictionaries(keys, value, min_size=1, max_size=1) | st.dictionaries(keys, value, max_size=4)


@pytest.mark.parametrize("field", [*FIELDS, "junk"])
@CHECKS
@given(value=HOSTILE_TEXT | VALUES | st.dates())
def test_each_client_setting_never_crashes(store: Store, field: str, value: Any) -> None:
    c = _world(store)
    outcome = _attempt(lambda: update_client_settings(store, c["org_id"], c["connection_id"], {field: value}, "x", NOW))
    assert outcome  # "saved", or the refusal's message: never an empty message, never another error


@CHECKS
@given(changes=_changes(FIELDS))
def test_client_settings_never_crash(store: Store, changes: dict[Any, Any]) -> None:
    c = _world(store)
    outcome = _attempt(lambda: update_client_settings(store, c["org_id"], c["connection_id"], changes, "fuzz", NOW))
    assert outcome  # "saved", or the refusal's message: never an empty message, never another error


@pytest.mark.parametrize("field", [*CUSTOMER_FIELDS, "junk"])
@CHECKS
@given(value=HOSTILE_TEXT | VALUES | st.dates())
def test_each_customer_override_never_crashes(store: Store, field: str, value: Any) -> None:
    c = _world(store)
    changes = {field: value, **({"dispute": True} if field == "dispute_reason" else {})}
    if field.startswith("promise_") and field != "promise_to_pay_until":
        changes["promise_to_pay_until"] = "2026-12-01"
    outcome = _attempt(
        lambda: update_customer_overrides(store, c["org_id"], c["connection_id"], c["customer"], changes, "x", NOW)
    )
    assert outcome  # "saved", or the refusal's message: never an empty message, never another error


@CHECKS
@given(changes=_changes(CUSTOMER_FIELDS))
def test_customer_overrides_never_crash(store: Store, changes: dict[Any, Any]) -> None:
    c = _world(store)
    outcome = _attempt(
        lambda: update_customer_overrides(store, c["org_id"], c["connection_id"], c["customer"], changes, "fuzz", NOW)
    )
    assert outcome  # "saved", or the refusal's message: never an empty message, never another error


@CHECKS
@given(changes=_changes(INVOICE_FIELDS), replace=st.booleans())
def test_invoice_overrides_never_crash(store: Store, changes: dict[Any, Any], replace: bool) -> None:
    c = _world(store)
    outcome = _attempt(
        lambda: update_invoice_override(
            store, c["org_id"], c["connection_id"], c["invoice"], changes, "fuzz", NOW, replace=replace
        )
    )
    assert outcome  # "saved", or the refusal's message: never an empty message, never another error


@CHECKS
@given(installments=VALUES | st.lists(st.fixed_dictionaries({"due_date": VALUES, "amount": VALUES}), max_size=3))
def test_payment_plans_never_crash(store: Store, installments: Any) -> None:
    c = _world(store)
    outcome = _attempt(
        lambda: create_plan(
            store,
            c["org_id"],
            c["connection_id"],
            c["invoice"],
            installments=installments,
            policy="monthly",
            actor="fuzz",
            now=NOW,
        )
    )
    assert outcome  # "saved", or the refusal's message: never an empty message, never another error


def _attempt(call: Callable[[], object]) -> str:
    """ "saved" when `call` saved, else the refusal's message (any other exception fails the test)."""
    try:
        call()
    except ChangeRefused as refused:
        return refused.user_message
    return "saved"


_WORLDS: weakref.WeakKeyDictionary[Store, dict[str, int]] = weakref.WeakKeyDictionary()


def _world(store: Store) -> dict[str, int]:
    """One organization, client, customer and invoice per store (hypothesis calls the test many times)."""
    found = _WORLDS.get(store)
    if found is None:
        made = client(store)
        found = {
            "org_id": made.org_id,
            "connection_id": made.connection_id,
            "customer": customer(store, made.connection_id, "c1", "Cust One"),
            "invoice": invoice(store, made.connection_id, "1"),
        }
        _WORLDS[store] = found
    return found

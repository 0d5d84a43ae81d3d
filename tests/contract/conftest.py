"""Contract suite: every registered provider, the real SDK against its emulator on 127.0.0.1.

A provider joins by adding ONE file, `tests/contract/harness_<provider>.py`, defining `HARNESS`, a class
with a no-argument constructor implementing the protocol below. `provider_harness` is parametrized over
every such file (test ids are the provider keys); one harness instance (one emulator) serves a session.

Harness protocol (see harness_quickbooks.py for a complete example):

    key: str                                   provider key; `providers.<key>.PROVIDER` is the spec
    currency: str                              currency of seeded invoices
    start() -> None / stop() -> None           start/stop the emulator (in-process, loopback)
    settings() -> ProviderSettings             settings pointing the provider at the emulator
    new_tenant(name: str) -> str               a fresh, empty company/organisation; returns its tenant id
    seed_invoices(tenant, count) -> list[str]  `count` open invoices (one customer with an email); ids
    authorize(tenant, state, code_challenge) -> dict[str, str]
                                               drive the emulator's consent page (approve, pick `tenant`);
                                               returns the callback's query parameters
    tokens(tenant) -> TokenSet                 connected tokens for `tenant` (consent + code exchange); the
                                               suite wraps them in MemoryTokenSource (refresh via PROVIDER.refresh)
    record_payment(tenant, invoice_id, amount: Decimal | None) -> None
                                               the customer pays (None: the whole balance)
    touch_invoice(tenant, invoice_id) -> None  a user edits the invoice in the ledger (no amount change)
    expire_access_token(tenant) -> None        the emulator makes the current access tokens expired
    data_calls(tenant) -> int                  API data calls the emulator answered for `tenant` so far
    note_count(tenant, invoice_id, text) -> int   how often `text` appears in the invoice's notes
    fee_invoices(tenant) -> int                number of fee invoices Nudge created in the ledger
    credits(tenant) -> int                     number of credit documents (CreditMemo / CreditNote)
    forget_idempotency(tenant) -> None         the provider forgets idempotency keys (crash + retry test)
    webhook_body(tenant, invoice_id) -> bytes  a webhook delivery announcing an update of the invoice
    sign_webhook(body) -> tuple[str, str]      (signature header value, key) as the provider signs it
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.ports import ProviderSpec

HERE = Path(__file__).resolve().parent


def _harness_classes() -> list[tuple[str, Any]]:
    found = []
    for path in sorted(HERE.glob("harness_*.py")):
        spec = importlib.util.spec_from_file_location(f"contract_{path.stem}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found.append((path.stem.removeprefix("harness_"), module.HARNESS))
    return found


HARNESSES = _harness_classes()


@pytest.fixture(scope="session", params=[cls for _, cls in HARNESSES], ids=[key for key, _ in HARNESSES])
def provider_harness(request: pytest.FixtureRequest) -> Iterator[Any]:
    harness = request.param()
    harness.start()
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture()
def provider(provider_harness: Any) -> ProviderSpec:
    spec: ProviderSpec = importlib.import_module(f"providers.{provider_harness.key}").PROVIDER
    assert spec.key == provider_harness.key
    return spec

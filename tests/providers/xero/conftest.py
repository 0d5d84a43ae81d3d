"""Fixtures for the Xero tests: a real emulator on 127.0.0.1, the real SDK, an in-process TokenSource."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.ports import ProviderSettings
from providers.xero.adapter import XeroAdapter
from providers.xero.client import RateLimiter
from providers.xero.emulator import XeroEmulator, start
from tests.support.xero import WEBHOOK_KEY, Connected, connect, emulator_settings, seed_basic


@pytest.fixture
def xero() -> Iterator[XeroEmulator]:
    handle = start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def settings(xero: XeroEmulator) -> ProviderSettings:
    return emulator_settings(
        xero,
        "http://127.0.0.1:9/xero/callback",
        webhook_key=WEBHOOK_KEY,
        late_fee_account_code="260",
        late_fee_tax_type="NONE",
        fee_reference_prefix="Late fee for",
    )


@pytest.fixture
def connected(xero: XeroEmulator, settings: ProviderSettings) -> Connected:
    seeded = seed_basic(xero)
    tenant = seeded["tenantId"]
    tokens, sleeps = connect(xero, settings, tenant)
    adapter = XeroAdapter(tenant, tokens, settings, limiter=RateLimiter(sleep=sleeps.append))
    xero.core.clear_calls()
    return Connected(xero, settings, tenant, tokens, adapter, seeded, sleeps)

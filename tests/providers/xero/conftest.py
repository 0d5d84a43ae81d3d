"""Fixtures for the Xero tests: a real emulator on 127.0.0.1, the real SDK, an in-process TokenSource."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.ports import ProviderSettings
from providers.xero.adapter import XeroAdapter
from providers.xero.client import RateLimiter
from providers.xero.emulator import XeroEmulator, start
from providers.xero.emulator.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from tests.support.xero import WEBHOOK_KEY, Connected, connect, seed_basic


@pytest.fixture
def xero() -> Iterator[XeroEmulator]:
    handle = start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def settings(xero: XeroEmulator) -> ProviderSettings:
    return ProviderSettings(
        key="xero",
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        redirect_uri="http://127.0.0.1:9/xero/callback",
        webhook_key=WEBHOOK_KEY,
        api_base=xero.api_base,
        identity_base=xero.url,
        options={"late_fee_account_code": "260", "late_fee_tax_type": "NONE", "fee_reference_prefix": "Late fee for"},
    )


@pytest.fixture
def connected(xero: XeroEmulator, settings: ProviderSettings) -> Connected:
    seeded = seed_basic(xero)
    tenant = seeded["tenantId"]
    tokens, sleeps = connect(xero, settings, tenant)
    adapter = XeroAdapter(tenant, tokens, settings, limiter=RateLimiter(sleep=sleeps.append))
    xero.core.clear_calls()
    return Connected(xero, settings, tenant, tokens, adapter, seeded, sleeps)

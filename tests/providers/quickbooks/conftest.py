"""Fixtures for the QuickBooks tests: one emulator per module on 127.0.0.1 and a fresh company per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.ports import ProviderSettings
from providers.quickbooks.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorHandle, start
from tests.support.quickbooks import VERIFIER, Company


@pytest.fixture(scope="module")
def qbo() -> Iterator[EmulatorHandle]:
    handle = start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def settings(qbo: EmulatorHandle) -> ProviderSettings:
    return ProviderSettings(
        key="quickbooks",
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        redirect_uri="http://127.0.0.1:5000/oauth/quickbooks/callback",
        webhook_key=VERIFIER,
        environment=qbo.discovery_url,
        api_base=qbo.api_base,
        options={"retry_base_s": 0.01, "max_retry_after_s": 2, "timeout_s": 10},
    )


@pytest.fixture
def company(qbo: EmulatorHandle, settings: ProviderSettings) -> Iterator[Company]:
    qbo.core.clear_faults()
    yield Company(qbo, settings)
    qbo.core.clear_faults()

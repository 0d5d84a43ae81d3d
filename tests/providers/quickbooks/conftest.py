"""Fixtures for the QuickBooks tests: one emulator per module on 127.0.0.1 and a fresh company per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.ports import ProviderSettings
from providers.quickbooks.emulator import EmulatorHandle
from tests.support.quickbooks import VERIFIER, Company, emulator_settings, faults_cleared


@pytest.fixture
def settings(qbo: EmulatorHandle) -> ProviderSettings:
    return emulator_settings(qbo, webhook_key=VERIFIER, retry_base_s=0.01, max_retry_after_s=2, timeout_s=10)


@pytest.fixture
def company(qbo: EmulatorHandle, settings: ProviderSettings) -> Iterator[Company]:
    with faults_cleared(qbo):
        yield Company(qbo, settings)

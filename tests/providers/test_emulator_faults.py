"""The emulators' `delay_after` fault (the write happens, the answer is held back) and status-fault headers."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

import providers.quickbooks.emulator as qbo
import providers.xero.emulator as xero
from providers._emulator import Fault


def test_fault_kinds_and_fields_are_checked() -> None:
    assert Fault.from_dict({"kind": "delay_after", "seconds": 1}).kind == "delay_after"
    assert Fault.from_dict({"kind": "status", "status": 429, "headers": {"Retry-After": "1"}}).headers == {
        "Retry-After": "1"
    }
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault.from_dict({"kind": "explode"})
    with pytest.raises(ValueError, match="headers"):
        Fault.from_dict({"kind": "status", "headers": {"Retry-After": 1}})


def test_quickbooks_delay_after_carries_out_the_write_then_holds_the_answer() -> None:
    with qbo.start() as emulator:
        realm = emulator.store.add_company("Held Co").realm
        token = requests.post(f"{emulator.url}/__admin/companies/{realm}/tokens", json={}, timeout=5).json()
        headers = {"Authorization": f"Bearer {token['access_token']}", "Accept": "application/json"}
        url = f"{emulator.api_base}/company/{realm}/customer"
        body = json.dumps({"DisplayName": "Held Customer"})
        fault = Fault("delay_after", path="/customer", method="POST", seconds=1.5)
        emulator.core.add_fault(fault)
        started = time.monotonic()
        with pytest.raises(requests.Timeout):  # the client gives up before the answer leaves
            requests.post(url, params={"requestid": "held-1"}, data=body, headers=headers, timeout=0.5)
        names = [c["DisplayName"] for c in emulator.store.company(realm).entities["Customer"].values()]
        assert names.count("Held Customer") == 1  # ... yet the write happened
        assert [c.status for c in emulator.core.calls("data") if c.path.endswith("/customer")] == [200]
        time.sleep(max(0.0, 1.6 - (time.monotonic() - started)))
        replay = requests.post(url, params={"requestid": "held-1"}, data=body, headers=headers, timeout=5)
        assert replay.status_code == 200  # the same requestid gets the remembered answer, nothing written again
        names = [c["DisplayName"] for c in emulator.store.company(realm).entities["Customer"].values()]
        assert names.count("Held Customer") == 1
        # Status faults carry extra headers (a 429 with Retry-After).
        emulator.core.add_fault(Fault("status", path="/customer", status=429, headers={"Retry-After": "1"}))
        throttled = requests.get(f"{url}/1", headers=headers, timeout=5)
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "1"


def test_xero_delay_after_carries_out_the_write_then_holds_the_answer() -> None:
    with xero.start() as emulator:
        tenant = emulator.add_tenant("Held Ltd")
        grant: dict[str, Any] = emulator.grant([tenant])
        headers = {
            "Authorization": f"Bearer {grant['access_token']}",
            "xero-tenant-id": tenant,
            "Accept": "application/json",
            "Idempotency-Key": "held-1",
        }
        url = f"{emulator.api_base}/Contacts"
        body = {"Contacts": [{"Name": "Held Customer", "EmailAddress": "held@example.com"}]}
        emulator.core.add_fault(Fault("delay_after", path="/Contacts", method="POST", seconds=1.5))
        started = time.monotonic()
        with pytest.raises(requests.Timeout):
            requests.post(url, json=body, headers=headers, timeout=0.5)
        with emulator.state.lock:
            contacts = list(emulator.state.ledgers[tenant].contacts.values())
        assert [c["Name"] for c in contacts].count("Held Customer") == 1
        time.sleep(max(0.0, 1.6 - (time.monotonic() - started)))
        replay = requests.post(url, json=body, headers=headers, timeout=5)
        assert replay.status_code == 200
        assert replay.headers.get("Idempotency-Replayed") == "true"
        with emulator.state.lock:
            contacts = list(emulator.state.ledgers[tenant].contacts.values())
        assert [c["Name"] for c in contacts].count("Held Customer") == 1

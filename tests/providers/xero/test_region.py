"""The organisation's country, holiday subdivision and zone: read once per organisation at connect."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.ports import ProviderSettings
from providers.xero.adapter import connect, xero_time_zone
from providers.xero.emulator import XeroEmulator
from providers.xero.mapping import organisation_region, zone_name
from providers.xero.oauth import tokens_from_response

# Xero's "Example response for GET Organisation" (docs/provider-api-facts.md §2.8), trimmed.
DEMO_COMPANY_NZ = {
    "Name": "Demo Company (NZ)",
    "CountryCode": "NZ",
    "Timezone": "NEWZEALANDSTANDARDTIME",
    "Addresses": [{"AddressType": "POBOX", "City": "Twizel", "PostalCode": "7901", "Country": "New Zealand"}],
}


def test_xeros_sample_organisation() -> None:
    assert organisation_region(DEMO_COMPANY_NZ) == {
        "country": "NZ",
        "subdivision": "",
        "time_zone": "Pacific/Auckland",
    }


@pytest.mark.parametrize(
    ("timezone", "iana"),
    [
        ("NEWZEALANDSTANDARDTIME", "Pacific/Auckland"),
        ("GMTSTANDARDTIME", "Europe/London"),
        ("AUSEASTERNSTANDARDTIME", "Australia/Sydney"),
        ("Eastern Standard Time", "America/New_York"),
        ("Europe/Paris", "Europe/Paris"),
        ("NOSUCHSTANDARDTIME", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_timezone_names_map_to_iana(timezone: object, iana: str) -> None:
    assert zone_name(timezone) == iana
    assert xero_time_zone(str(timezone or "")).key == (iana or "UTC")


def test_street_region_is_the_subdivision_when_holidays_knows_it() -> None:
    row = {
        "CountryCode": "au",
        "Timezone": "WAUSTRALIASTANDARDTIME",
        "Addresses": [
            {"AddressType": "POBOX", "Region": "NSW"},
            {"AddressType": "STREET", "Region": "Western Australia"},
        ],
    }
    assert organisation_region(row) == {"country": "AU", "subdivision": "WA", "time_zone": "Australia/Perth"}
    unknown = {"CountryCode": "GB", "Timezone": "GMTSTANDARDTIME", "Addresses": [{"Region": "Surrey"}]}
    assert organisation_region(unknown)["subdivision"] == ""


def test_hostile_organisation_rows_yield_empty_values() -> None:
    assert organisation_region({}) == {"country": "", "subdivision": "", "time_zone": ""}
    hostile = {"CountryCode": "NEW ZEALAND", "Timezone": 7, "Addresses": ["x", {"Region": ["NSW"]}]}
    assert organisation_region(hostile) == {"country": "", "subdivision": "", "time_zone": ""}


def test_connect_reads_each_organisation_once_and_no_practice(xero: XeroEmulator, settings: ProviderSettings) -> None:
    sydney = xero.add_tenant("Harbour Joinery", country="AU", region="NSW", time_zone="Australia/Sydney")
    london = xero.add_tenant("Thames Joinery", country="GB", time_zone="Europe/London")
    practice = xero.add_tenant("Practice HQ", tenant_type="PRACTICE")
    tokens = tokens_from_response(xero.grant([sydney, london, practice]), datetime.now(UTC))
    before = len(xero.core.calls("data"))
    infos = {info.tenant_id: info.extra for info in connect(settings, {}, tokens)}
    organisation_calls = [c for c in xero.core.calls("data")[before:] if c.path.endswith("/Organisation")]
    assert sorted(c.tenant for c in organisation_calls) == sorted([sydney, london])
    assert len(xero.core.calls("data")) - before == 2
    region = {tenant: {k: extra[k] for k in ("country", "subdivision", "time_zone")} for tenant, extra in infos.items()}
    assert region == {
        sydney: {"country": "AU", "subdivision": "NSW", "time_zone": "Australia/Sydney"},
        london: {"country": "GB", "subdivision": "", "time_zone": "Europe/London"},
        practice: {"country": "", "subdivision": "", "time_zone": ""},
    }

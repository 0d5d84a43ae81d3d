"""Where a QuickBooks company is: country, holiday subdivision and the IANA zone derived from CompanyInfo."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.domain.calendar import holiday_subdivision
from connector.ports import TokenSet
from providers.quickbooks.adapter import connect
from providers.quickbooks.emulator.kit import QuickBooksKit
from providers.quickbooks.region import company_region, country_code, time_zone

# Intuit's CompanyInfo sample (docs/provider-api-facts.md §1.10), trimmed to what the region is read from.
LARRYS_BAKERY = {
    "CompanyName": "Larry's Bakery",
    "Country": "US",
    "CompanyAddr": {"City": "Mountain View", "Country": "US", "CountrySubDivisionCode": "CA", "Id": "1"},
}
SAMPLE_TIME = "2015-07-10T09:38:58.155-07:00"


def test_intuits_sample_company_is_in_california() -> None:
    assert company_region(LARRYS_BAKERY, SAMPLE_TIME) == {
        "country": "US",
        "subdivision": "CA",
        "time_zone": "America/Los_Angeles",
    }


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("US", "US"),
        ("us", "US"),
        ("USA", "US"),
        ("United States", "US"),
        ("United States of America", "US"),
        ("UK", "GB"),
        ("GBR", "GB"),
        ("United Kingdom", "GB"),
        ("Australia", "AU"),
        (" ca ", "CA"),
        ("", ""),
        (None, ""),
        ("Atlantis", ""),
        ("XX", ""),
        ("U", ""),
        (42, ""),
    ],
)
def test_country_codes_names_and_aliases(value: object, code: str) -> None:
    assert country_code(value) == code


@pytest.mark.parametrize(
    ("country", "value", "code"),
    [
        ("US", "NY", "NY"),
        ("US", "california", "CA"),
        ("AU", "nsw", "NSW"),
        ("CA", "ON", "ON"),
        ("GB", "Surrey", ""),
        ("US", "", ""),
        ("", "CA", ""),
        ("US", "Narnia", ""),
    ],
)
def test_subdivisions_are_those_the_holidays_package_knows(country: str, value: str, code: str) -> None:
    assert holiday_subdivision(country, value) == code


@pytest.mark.parametrize(
    ("country", "subdivision", "answered_at", "zone"),
    [
        ("US", "NY", "", "America/New_York"),  # the subdivision decides, whatever the answer's offset
        ("US", "NY", "2026-11-30T06:00:00-08:00", "America/New_York"),
        ("AU", "WA", "", "Australia/Perth"),
        ("CA", "BC", "", "America/Vancouver"),
        ("GB", "", "", "Europe/London"),  # one zone in the country
        ("US", "", "2026-11-30T09:00:00-05:00", "America/New_York"),  # by offset, most populous first
        ("US", "", "2026-07-01T09:00:00-07:00", "America/Los_Angeles"),  # -07:00 in July is Pacific daylight
        ("US", "", "2026-11-30T09:00:00-07:00", "America/Denver"),  # … and Mountain standard in November
        ("CA", "", "2026-01-10T09:00:00-05:00", "America/Toronto"),
        ("AU", "", "2026-01-10T09:00:00+11:00", "Australia/Sydney"),
        ("NZ", "", "2026-01-10T09:00:00+13:00", "Pacific/Auckland"),
        ("US", "", "", ""),  # several zones and no offset to choose by
        ("US", "", "not a time", ""),
        ("US", "", "2026-11-30T09:00:00", ""),  # no offset
        ("US", "", "2026-11-30T09:00:00+05:30", ""),  # no US zone at that offset
        ("", "", SAMPLE_TIME, ""),
    ],
)
def test_time_zone_by_subdivision_single_zone_or_offset(
    country: str, subdivision: str, answered_at: str, zone: str
) -> None:
    assert time_zone(country, subdivision, answered_at) == zone


def test_a_hostile_company_info_yields_empty_values_not_errors() -> None:
    hostile = {"Country": ["US"], "CompanyAddr": "Main Street", "CountrySubDivisionCode": {"x": 1}}
    assert company_region(hostile, "2026-13-45T99:00:00") == {"country": "", "subdivision": "", "time_zone": ""}
    assert company_region({}, "") == {"country": "", "subdivision": "", "time_zone": ""}


@pytest.mark.parametrize(
    ("now", "zone"),
    [
        (datetime(2026, 7, 1, 16, 0, tzinfo=UTC), "America/Los_Angeles"),
        (datetime(2026, 11, 30, 16, 0, tzinfo=UTC), "America/Denver"),
    ],
)
def test_connect_derives_the_zone_from_the_answers_time(now: datetime, zone: str) -> None:
    """The emulator's default company: US, no state in its address, answering at a fixed UTC-7."""
    with QuickBooksKit() as kit:
        realm = kit.add_company("Offset Co")
        kit.set_now(now)
        settings = kit.settings("http://127.0.0.1:5000/oauth/quickbooks/callback")
        tokens = TokenSet.from_response(kit.grant(realm), now)
        [info] = connect(settings, {"realmId": realm}, tokens)
    assert {k: info.extra[k] for k in ("country", "subdivision", "time_zone", "home_currency")} == {
        "country": "US",
        "subdivision": "",
        "time_zone": zone,
        "home_currency": "USD",
    }

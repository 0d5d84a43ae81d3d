"""Where a QuickBooks company is: country, holiday subdivision, IANA time zone (docs/provider-api-facts.md §1.10).

CompanyInfo gives `Country` and `CompanyAddr.CountrySubDivisionCode`; QuickBooks has no time-zone field, so the
zone is derived: the zone of the subdivision where this module knows it (`SUBDIVISION_ZONES`, the zone most of
the state's or province's people live in), else the country's only zone, else the first of the country's
zones (`PREFERRED_ZONES` first, then CLDR's golden zones, then CLDR's order) whose UTC offset at the `time` of
a QuickBooks answer equals that answer's offset. Every value is "" when it cannot be told; nothing here raises
or does IO.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.core import get_global

from connector.domain.calendar import holiday_subdivision

# The zone of most of each subdivision's population, for the countries QuickBooks Online is sold in that span
# several zones (US states and DC, Canadian provinces and territories, Australian states and territories).
SUBDIVISION_ZONES: dict[str, dict[str, str]] = {
    "US": {
        **dict.fromkeys(
            ("CT", "DE", "DC", "FL", "GA", "KY", "ME", "MD", "MA", "NH", "NJ", "NY", "NC", "OH", "PA", "RI", "SC"),
            "America/New_York",
        ),
        **dict.fromkeys(("VT", "VA", "WV"), "America/New_York"),
        **dict.fromkeys(
            ("AL", "AR", "IL", "IA", "KS", "LA", "MN", "MS", "MO", "NE", "ND", "OK", "SD", "TN", "TX", "WI"),
            "America/Chicago",
        ),
        **dict.fromkeys(("CO", "MT", "NM", "UT", "WY"), "America/Denver"),
        **dict.fromkeys(("CA", "NV", "OR", "WA"), "America/Los_Angeles"),
        "AK": "America/Anchorage",
        "AZ": "America/Phoenix",
        "HI": "Pacific/Honolulu",
        "ID": "America/Boise",
        "IN": "America/Indiana/Indianapolis",
        "MI": "America/Detroit",
    },
    "CA": {
        "AB": "America/Edmonton",
        "BC": "America/Vancouver",
        "MB": "America/Winnipeg",
        "NB": "America/Moncton",
        "NL": "America/St_Johns",
        "NS": "America/Halifax",
        "NT": "America/Edmonton",
        "NU": "America/Iqaluit",
        "ON": "America/Toronto",
        "PE": "America/Halifax",
        "QC": "America/Toronto",
        "SK": "America/Regina",
        "YT": "America/Whitehorse",
    },
    "AU": {
        "ACT": "Australia/Sydney",
        "NSW": "Australia/Sydney",
        "NT": "Australia/Darwin",
        "QLD": "Australia/Brisbane",
        "SA": "Australia/Adelaide",
        "TAS": "Australia/Hobart",
        "VIC": "Australia/Melbourne",
        "WA": "Australia/Perth",
    },
}
# Among zones sharing an offset, the one most of a multi-zone country's people live in comes first.
PREFERRED_ZONES: dict[str, tuple[str, ...]] = {
    "US": (
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Los_Angeles",
        "America/Phoenix",
        "America/Anchorage",
        "Pacific/Honolulu",
    ),
    "CA": (
        "America/Toronto",
        "America/Vancouver",
        "America/Edmonton",
        "America/Winnipeg",
        "America/Halifax",
        "America/Regina",
        "America/St_Johns",
    ),
    "AU": (
        "Australia/Sydney",
        "Australia/Brisbane",
        "Australia/Perth",
        "Australia/Adelaide",
        "Australia/Darwin",
    ),
}
# Spellings of a country CLDR's English names and aliases do not cover.
_COUNTRY_NAMES = {"UNITED STATES OF AMERICA": "US", "GREAT BRITAIN": "GB", "ENGLAND": "GB", "SCOTLAND": "GB"}


@cache
def _territories() -> dict[str, str]:
    """Upper-cased English country name → ISO 3166-1 alpha-2 code (CLDR, via babel)."""
    names = Locale("en").territories
    return {str(name).upper(): code for code, name in names.items() if len(code) == 2 and code.isalpha()}


def country_code(value: Any) -> str:
    """An ISO 3166-1 alpha-2 code (upper case) for `value`: a code, an alpha-3 code or an English name; "" else."""
    text = " ".join(str(value or "").split()).upper()
    if not text:
        return ""
    codes = set(_territories().values())
    if text in codes:
        return text
    aliases = get_global("territory_aliases").get(text)  # USA → US, GBR → GB, UK → GB
    if aliases and aliases[0] in codes:
        return str(aliases[0])
    return _territories().get(text) or _COUNTRY_NAMES.get(text, "")


def _golden_zones() -> set[str]:
    """CLDR's golden zone of each Windows zone (America/New_York for Eastern, …): preferred among equals."""
    return set(get_global("windows_zone_mapping").values())


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def time_zone(country: str, subdivision: str, server_time: str) -> str:
    """The company's IANA zone: by subdivision, the country's only zone, or by the UTC offset of `server_time`
    (a QuickBooks answer's `time`, `2015-07-10T09:38:58.155-07:00`); "" when none can be told."""
    if not country:
        return ""
    by_subdivision = SUBDIVISION_ZONES.get(country, {}).get(subdivision.upper())
    if by_subdivision and _zone(by_subdivision) is not None:
        return by_subdivision
    zones = [name for name in get_global("territory_zones").get(country, ()) if _zone(name) is not None]
    if len(zones) == 1:
        return zones[0]
    try:
        moment = datetime.fromisoformat(server_time.strip().replace("Z", "+00:00"))
    except ValueError:
        return ""
    offset = moment.utcoffset()
    if offset is None:
        return ""
    golden = _golden_zones()
    preferred = PREFERRED_ZONES.get(country, ())

    def rank(zone: str) -> tuple[int, int]:
        return (preferred.index(zone) if zone in preferred else len(preferred), zone not in golden)

    for name in sorted(zones, key=rank):  # a stable sort: CLDR's order among equals
        zone = _zone(name)
        if zone is not None and moment.astimezone(zone).utcoffset() == offset:
            return name
    return ""


def company_region(info: Mapping[str, Any], server_time: str) -> dict[str, str]:
    """{"country", "subdivision", "time_zone"} of a CompanyInfo object read with answer time `server_time`."""
    address = info.get("CompanyAddr")
    address = address if isinstance(address, Mapping) else {}
    country = country_code(info.get("Country")) or country_code(address.get("Country"))
    raw_subdivision = str(address.get("CountrySubDivisionCode") or "")
    subdivision = holiday_subdivision(country, raw_subdivision)
    return {
        "country": country,
        "subdivision": subdivision,
        "time_zone": time_zone(country, subdivision or raw_subdivision, server_time),
    }


__all__ = ["PREFERRED_ZONES", "SUBDIVISION_ZONES", "company_region", "country_code", "time_zone"]

"""`web.customer_link_days` and `web.customer_page_limit`: how long a customer page link works (60 days unless set;
1-365) and how many requests a link or an address may make (rate limits as the sign-in limits are written)."""

from __future__ import annotations

import pytest

from connector.config import parse_settings
from connector.errors import ConfigError


def test_defaults_and_own_values() -> None:
    web = parse_settings("mode: development", environ={}, provider_names=[]).web
    assert (web.customer_link_days, web.customer_page_limit) == (60, "30 per minute; 300 per hour")
    text = "web:\n  customer_link_days: 14\n  customer_page_limit: 5 per minute\n"
    web = parse_settings(text, environ={}, provider_names=[]).web
    assert (web.customer_link_days, web.customer_page_limit) == (14, "5 per minute")


@pytest.mark.parametrize("line", ["customer_link_days: 0", "customer_link_days: 366", "customer_page_limit: lots"])
def test_wrong_values_are_named(line: str) -> None:
    with pytest.raises(ConfigError, match=line.split(":")[0]):
        parse_settings(f"web:\n  {line}\n", environ={}, provider_names=[])

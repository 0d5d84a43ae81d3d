"""Customer page links (issue 17): a token names one customer of one client and its last day; a token changed in
any way, signed with another secret or for another purpose, or of another shape is refused, and an expired one is
told apart (the page says "expired" rather than "does not work")."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from itsdangerous import URLSafeSerializer

from connector.mail.customer_link import SALT, CustomerLinks, LinkRefused

NOW = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
LINKS = CustomerLinks("a session secret for the tests", "https://nudge.example/", 60)


def test_a_link_names_the_customer_and_works_for_its_days() -> None:
    url = LINKS.url(7, 42, NOW)
    assert "/c/eyJ" not in url  # never mistaken for a provider's JWT by a secret scan (RS-18)
    assert url.startswith("https://nudge.example/c/")
    token = url.rsplit("/", 1)[1]
    claim = LINKS.read(token, NOW)
    assert (claim.connection_id, claim.customer_id, claim.valid_until) == (7, 42, date(2027, 1, 29))
    assert LINKS.read(token, NOW + timedelta(days=60)).customer_id == 42  # its last day, still
    with pytest.raises(LinkRefused) as refused:
        LINKS.read(token, NOW + timedelta(days=61))
    assert refused.value.expired is True


def _tampered(token: str) -> list[str]:
    payload, _, signature = token.partition(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    other_customer = (
        base64.urlsafe_b64encode(json.dumps([7, 43, "2027-01-29"], separators=(",", ":")).encode()).decode().rstrip("=")
    )
    return [
        f"{payload}.{flipped}",  # the signature changed
        f"{other_customer}.{signature}",  # another customer's id under this signature
        payload,  # no signature at all
        token + "x",
        token[:-3],
        "",
        "x" * 1000,
        "../../etc/passwd",
    ]


def test_a_changed_token_is_refused_as_not_ours() -> None:
    token = LINKS.token(7, 42, NOW)
    for changed in _tampered(token):
        with pytest.raises(LinkRefused) as refused:
            LINKS.read(changed, NOW)
        assert refused.value.expired is False, changed


def test_another_secret_or_purpose_or_shape_names_nothing() -> None:
    token = LINKS.token(7, 42, NOW)
    with pytest.raises(LinkRefused):
        CustomerLinks("another secret", "https://nudge.example", 60).read(token, NOW)
    same_secret_other_salt = URLSafeSerializer("a session secret for the tests", salt="nudge.api.cursor")
    with pytest.raises(LinkRefused):
        LINKS.read(same_secret_other_salt.dumps([7, 42, "2027-01-29"]), NOW)
    ours = URLSafeSerializer("a session secret for the tests", salt=SALT)
    for payload in (
        [7, 42],  # no last day
        [7, True, "2027-01-29"],
        ["7", 42, "2027-01-29"],
        [7, 0, "2027-01-29"],
        [7, 42, "not a day"],
        [7, 42, "2027-01-29", "admin"],
        {"c": 7, "k": 42, "u": "2027-01-29"},
    ):
        with pytest.raises(LinkRefused) as refused:
            LINKS.read(ours.dumps(payload), NOW)
        assert refused.value.expired is False


def test_links_need_a_secret_and_a_lifetime() -> None:
    with pytest.raises(ValueError, match="secret"):
        CustomerLinks("", "https://nudge.example", 60)
    with pytest.raises(ValueError, match="day"):
        CustomerLinks("s", "https://nudge.example", 0)

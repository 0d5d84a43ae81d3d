"""The settings screens through the Flask test client: the organization's defaults and its clients, a client's
settings saved with a flash saying what changed, every wrong field named in place with what was typed (hostile
input among them), and roles: viewers read, other organizations get 404, client-limited members their clients."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from connector.domain.model import Role
from connector.storage import Store
from connector.storage.tables import AuditEntry, ClientSettings, Membership, MembershipClient, Organization
from tests.support.clients import cadence_body, library_item
from tests.support.statements import counting_statements
from tests.web.conftest import Account, csrf_token

pytestmark = pytest.mark.web

BLANK = {
    "business_name": "",
    "from_name": "",
    "reply_to": "",
    "locale": "",
    "time_zone": "",
    "holiday_calendar": "",
    "window_mode": "inherit",
    "cadence_id": "",
    "approval": "",
}


class Place:
    """An organization with two clients and a cadence, its people, and another organization."""

    def __init__(self, store: Store, make_user: Callable[..., Account]) -> None:
        self.owner = make_user("Acme Practice", Role.OWNER)
        self.viewer = make_user("Acme Practice", Role.VIEWER)
        self.limited = make_user("Acme Practice", Role.ACCOUNTANT)
        self.stranger = make_user("Other Practice", Role.OWNER)
        self.org = self.owner.org_id
        with store.unit_of_work() as uow:
            self.alpha = uow.connections.add(self.org, "fake", "t-a", "Alpha <i>Ltd</i>", time_zone="Europe/London").id
            self.beta = uow.connections.add(self.org, "fake", "t-b", "Beta", time_zone="America/New_York").id
            uow.commit()
        self.standard = library_item(store, self.org, "cadence", "standard", cadence_body())
        self.gentle = library_item(store, self.org, "cadence", "gentle", cadence_body())
        with store.unit_of_work() as uow:
            membership = uow.session.scalars(select(Membership).where(Membership.user_id == self.limited.user_id)).one()
            membership.client_limited = True
            uow.session.add(MembershipClient(membership_id=membership.id, connection_id=self.beta))
            uow.commit()

    def client_url(self, connection_id: int | None = None) -> str:
        return f"/orgs/{self.org}/clients/{connection_id or self.alpha}/settings"


@pytest.fixture
def place(store: Store, make_user: Callable[..., Account]) -> Place:
    return Place(store, make_user)


@pytest.fixture
def as_user(client: FlaskClient, login: Callable[..., TestResponse]) -> Callable[[Account], FlaskClient]:
    def sign_in(account: Account) -> FlaskClient:
        assert login(client, account.email, account.password).status_code == 302
        return client

    return sign_in


def _save(browser: FlaskClient, url: str, /, **fields: Any) -> TestResponse:
    token = csrf_token(browser.get(url).text)
    return browser.post(url, data={"csrf_token": token, **BLANK, **fields})


def _flashes(browser: FlaskClient, url: str) -> list[str]:
    text = browser.get(url).text
    found = re.findall(r'<p class="flash[^"]*"[^>]*>(.*?)</p>', text, re.S)
    return [" ".join(html.unescape(item).split()) for item in found]


def _stored(store: Store, connection_id: int) -> ClientSettings | None:
    with store.unit_of_work() as uow:
        row = uow.session.get(ClientSettings, connection_id)
        if row is not None:
            uow.session.expunge(row)
        return row


def _errors(page: str) -> dict[str, str]:
    """Field id → its error, as the page shows them."""
    return {
        key: " ".join(html.unescape(text).split())
        for key, text in re.findall(r'<p class="field-error" id="([\w-]+)-error" role="alert">(.*?)</p>', page, re.S)
    }


def test_the_organization_page_lists_clients_and_saves_the_default_cadence(
    place: Place, as_user: Callable[[Account], FlaskClient], store: Store
) -> None:
    browser = as_user(place.owner)
    page = browser.get(f"/orgs/{place.org}/settings")
    assert page.status_code == 200
    assert "Alpha &lt;i&gt;Ltd&lt;/i&gt;" in page.text
    assert f'href="/orgs/{place.org}/clients/{place.alpha}/settings"' in page.text
    url = f"/orgs/{place.org}/settings"
    answer = browser.post(url, data={"csrf_token": csrf_token(page.text), "default_cadence_id": str(place.gentle)})
    assert answer.status_code == 303
    assert _flashes(browser, url) == ["Saved: clients without a cadence of their own now follow gentle."]
    with store.unit_of_work() as uow:
        organization = uow.session.get(Organization, place.org)
        assert organization is not None
        assert organization.settings["default_cadence_id"] == place.gentle
    for hostile in ("abc", "-1", "99999999999999999999", "<script>"):
        answer = browser.post(url, data={"csrf_token": csrf_token(page.text), "default_cadence_id": hostile})
        assert answer.status_code == 200, hostile
        assert "must be the id of a cadence" in answer.text
        assert "<script>" not in answer.text


def test_change_a_clients_sender_with_a_flash_saying_what_changed(
    place: Place, as_user: Callable[[Account], FlaskClient], store: Store
) -> None:
    browser = as_user(place.owner)
    url = place.client_url()
    page = browser.get(url)
    assert page.status_code == 200
    assert "Empty: Alpha &lt;i&gt;Ltd&lt;/i&gt; (from the ledger)" in page.text
    answer = _save(browser, url, business_name="Alpha Joinery", from_name="Alpha Accounts", reply_to="AR@Alpha.Example")
    assert answer.status_code == 303
    assert _flashes(browser, url) == ["Saved Alpha <i>Ltd</i>: business name, From name and Reply-To changed."]
    row = _stored(store, place.alpha)
    assert row is not None
    assert (row.business_name, row.from_name, row.reply_to) == ("Alpha Joinery", "Alpha Accounts", "AR@alpha.example")
    _save(browser, url, business_name="Alpha Joinery", from_name="Alpha Accounts", reply_to="AR@alpha.example")
    assert _flashes(browser, url) == ["Nothing changed."]
    with store.unit_of_work() as uow:
        audits = list(uow.session.scalars(select(AuditEntry).where(AuditEntry.entity == "client_settings")))
    assert len(audits) == 1


def test_every_other_setting_is_saved(place: Place, as_user: Callable[[Account], FlaskClient], store: Store) -> None:
    browser = as_user(place.owner)
    url = place.client_url()
    answer = browser.post(
        url,
        data={
            "csrf_token": csrf_token(browser.get(url).text),
            **BLANK,
            "time_zone": "Europe/Paris",
            "holiday_calendar": "gb-sct",
            "window_mode": "own",
            "window_days": ["0", "2", "4"],
            "window_start": "08:30",
            "window_end": "16:00",
            "cadence_id": str(place.gentle),
            "approval": "ledger",
            "locale": "en-GB",
            "min_currency_0": "gbp",
            "min_amount_0": "25",
            "min_currency_1": "USD",
            "min_amount_1": "",
        },
    )
    assert answer.status_code == 303, _errors(answer.text)
    row = _stored(store, place.alpha)
    assert row is not None
    assert row.time_zone == "Europe/Paris"
    assert row.holiday_calendar == "GB-SCT"
    assert row.send_window == {"days": [0, 2, 4], "start": "08:30", "end": "16:00"}
    assert row.cadence_id == place.gentle
    assert row.approval == "ledger"
    assert row.locale == "en_GB"
    assert row.minimum_amounts == {"GBP": "25.00"}
    flash = _flashes(browser, url)[0]
    assert flash.startswith("Saved Alpha <i>Ltd</i>: cadence, time zone, holiday calendar, send window, approval")
    page = browser.get(url).text
    assert "Now: Monday, Wednesday and Friday, 08:30 to 16:00" in page
    # Back to inheriting.
    assert _save(browser, url).status_code == 303
    row = _stored(store, place.alpha)
    assert row is not None
    assert (row.time_zone, row.send_window, row.cadence_id, row.minimum_amounts) == ("", None, None, {})


def test_hostile_input_is_named_in_place_and_nothing_is_saved(
    place: Place, as_user: Callable[[Account], FlaskClient], store: Store
) -> None:
    browser = as_user(place.owner)
    url = place.client_url()
    answer = browser.post(
        url,
        data={
            "csrf_token": csrf_token(browser.get(url).text),
            **BLANK,
            "business_name": "Fine Ltd",
            "from_name": "<script>alert(1)</script>\u202e",
            "reply_to": "a@b.c\r\nBcc: x@evil.example",
            "time_zone": "Mars/Olympus",
            "holiday_calendar": "XX",
            "window_mode": "own",
            "window_days": ["0", "9", "x"],
            "window_start": "25:00",
            "window_end": "26:00",
            "cadence_id": "99999999999999999999",
            "approval": "sometimes",
            "locale": "xx_YY_ZZ",
            "min_currency_0": "ZZZ",
            "min_amount_0": "1e308",
            "min_currency_1": "",
            "min_amount_1": "12",
        },
    )
    assert answer.status_code == 200
    errors = _errors(answer.text)
    assert errors["reply-to"] == "Reply-To contains a line break; give one address."
    assert errors["time-zone"] == "Time zone must be an IANA time zone such as Europe/London."
    assert "holiday-calendar" in errors
    assert errors["window"].startswith("Days must list weekdays from 0 (Monday) to 6 (Sunday)")
    assert "cadence" in errors
    assert "approval" in errors
    assert "locale" in errors
    assert errors["minimums"] == "Say which currency 12 is in (e.g. USD)."
    assert "from-name" in errors
    assert "Nothing was saved: 9 fields need a look" in answer.text
    assert _stored(store, place.alpha) is None  # nothing saved, not even the good business name
    # What was typed stays, escaped.
    assert 'value="Mars/Olympus"' in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
    assert "<script>alert(1)" not in answer.text
    assert 'value="25:00"' in answer.text


@pytest.mark.parametrize(
    ("fields", "field_id", "words"),
    [
        (
            {"window_mode": "own", "window_days": ["0"], "window_start": "25:00", "window_end": "26:00"},
            "window",
            "HH:MM",
        ),
        (
            {"window_mode": "own", "window_days": ["0"], "window_start": "17:00", "window_end": "09:00"},
            "window",
            "before end",
        ),
        ({"window_mode": "own", "window_start": "09:00", "window_end": "17:00"}, "window", "at least one"),
        ({"min_currency_0": "USD", "min_amount_0": "-5"}, "minimums", "must not be negative"),
        ({"min_currency_0": "USD", "min_amount_0": "abc"}, "minimums", "amount such as 12.50"),
        ({"min_currency_0": "JPY", "min_amount_0": "10.5"}, "minimums", "no decimals"),
        (
            {"min_currency_0": "USD", "min_amount_0": "1", "min_currency_1": "usd", "min_amount_1": "2"},
            "minimums",
            "twice",
        ),
        ({"business_name": "x" * 201}, "business-name", "at most 200"),
        ({"reply_to": "Alpha <ar@alpha.example>"}, "reply-to", "without a name"),
    ],
)
def test_each_wrong_value_is_named(
    place: Place,
    as_user: Callable[[Account], FlaskClient],
    store: Store,
    fields: dict[str, Any],
    field_id: str,
    words: str,
) -> None:
    browser = as_user(place.owner)
    answer = _save(browser, place.client_url(), **fields)
    assert answer.status_code == 200
    assert words in _errors(answer.text)[field_id]
    assert _stored(store, place.alpha) is None


def test_a_viewer_reads_but_cannot_change(place: Place, as_user: Callable[[Account], FlaskClient]) -> None:
    browser = as_user(place.viewer)
    page = browser.get(place.client_url())
    assert page.status_code == 200
    assert '<fieldset class="card" disabled>' in page.text
    assert "Save settings" not in page.text
    token = csrf_token(page.text)
    assert browser.post(place.client_url(), data={"csrf_token": token, **BLANK}).status_code == 403
    index = browser.get(f"/orgs/{place.org}/settings")
    assert "Save defaults" not in index.text
    answer = browser.post(f"/orgs/{place.org}/settings", data={"csrf_token": token, "default_cadence_id": ""})
    assert answer.status_code == 403


def test_another_organization_gets_404(place: Place, as_user: Callable[[Account], FlaskClient]) -> None:
    browser = as_user(place.stranger)
    token = csrf_token(browser.get(f"/orgs/{place.stranger.org_id}/settings").text)
    assert browser.get(place.client_url()).status_code == 404
    assert browser.get(f"/orgs/{place.org}/settings").status_code == 404
    assert browser.post(place.client_url(), data={"csrf_token": token, **BLANK}).status_code == 404
    # Our client under their organization's URL is 404 too.
    assert browser.get(f"/orgs/{place.stranger.org_id}/clients/{place.alpha}/settings").status_code == 404


def test_a_client_limited_member_sees_only_their_clients(
    place: Place, as_user: Callable[[Account], FlaskClient]
) -> None:
    browser = as_user(place.limited)
    index = browser.get(f"/orgs/{place.org}/settings")
    assert "Beta" in index.text
    assert "Alpha" not in index.text
    assert "Only members who see every client change the organization's defaults." in index.text
    token = csrf_token(index.text)
    answer = browser.post(f"/orgs/{place.org}/settings", data={"csrf_token": token, "default_cadence_id": ""})
    assert answer.status_code == 403
    assert browser.get(place.client_url(place.alpha)).status_code == 404
    assert _save(browser, place.client_url(place.beta), from_name="Beta AR").status_code == 303


def test_the_organization_page_reads_in_a_fixed_number_of_statements(
    place: Place, as_user: Callable[[Account], FlaskClient], store: Store
) -> None:
    browser = as_user(place.owner)
    url = f"/orgs/{place.org}/settings"
    browser.get(url)
    with counting_statements(store.engine) as few:
        browser.get(url)
    with store.unit_of_work() as uow:
        for index in range(15):
            uow.connections.add(place.org, "fake", f"t-more-{index}", f"Client {index}")
        uow.commit()
    with counting_statements(store.engine) as many:
        page = browser.get(url)
    assert "Client 14" in page.text
    assert many.count == few.count, many.report()

"""Client settings and organization defaults (issue 14): every field checked with the field named, stored
normalized, effective values with where they come from, and every change audited (before/after) with an
activity, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from connector.errors import InvalidInput, UnknownRecord
from connector.library.audit import entries
from connector.library.settings import (
    CADENCE_SOURCE,
    CLIENT,
    INSTALL,
    LEDGER,
    LEGACY,
    ORGANIZATION,
    InstallDefaults,
    client_settings,
    organization_settings,
    update_client_settings,
    update_organization_settings,
)
from connector.storage import Store
from connector.storage.tables import Activity, ClientSettings, Connection, LibraryItem
from tests.support.clients import cadence_body, client, library_item

NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
ACTOR = "ann@practice.example"
DEFAULTS = InstallDefaults(from_name="Accounts receivable", reply_to="ar@install.example", locale="en_US")


def _view(store: Store, org_id: int, cid: int) -> Any:
    with store.unit_of_work() as uow:
        return client_settings(uow, org_id, cid, DEFAULTS)


def test_a_new_client_inherits_everything_and_says_from_where(store: Store) -> None:
    c = client(store)
    view = _view(store, c.org_id, c.connection_id)
    assert view.inherited() == tuple(view.effective)
    eff = {name: (found.value, found.source) for name, found in view.effective.items()}
    assert eff["time_zone"] == ("Europe/London", LEDGER)
    assert eff["holiday_calendar"] == ("GB", LEDGER)
    assert eff["business_name"] == ("Books Ltd", LEDGER)
    assert eff["from_name"] == ("Books Ltd", LEDGER)
    assert eff["reply_to"] == ("ar@install.example", INSTALL)
    assert eff["locale"] == ("en_US", INSTALL)
    assert eff["cadence_id"][1] == INSTALL
    name = eff["cadence_id"][0]["name"]
    approval = "ledger" if name == "gentle" else "none"
    assert eff["approval"] == (approval, CADENCE_SOURCE)
    assert eff["send_window"] == ({"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00"}, CADENCE_SOURCE)
    assert eff["minimum_amounts"] == ({"GBP": "5", "USD": "10"}, CADENCE_SOURCE)
    assert view.stored["cadence_id"] is None
    assert view.updated_at is None


def test_every_field_is_saved_normalized_audited_and_in_the_timeline(store: Store) -> None:
    c = client(store)
    changes = {
        "cadence_id": c.gentle,
        "time_zone": "America/New_York",
        "holiday_calendar": "us-ca",
        "send_window": {"days": [4, 0, 2, 0], "start": "07:30", "end": "19:00"},
        "approval": "all",
        "minimum_amounts": {"usd": "25", "JPY": 1000},
        "locale": "en-gb",
        "business_name": "  Books Ltd trading as Bookish ",
        "from_name": "Bookish accounts",
        "reply_to": "Accounts@Bookish.EXAMPLE",
        "customer_page_ledger_notes": True,
    }
    view = update_client_settings(store, c.org_id, c.connection_id, changes, ACTOR, NOW, DEFAULTS)
    assert view.stored == {
        "cadence_id": c.gentle,
        "time_zone": "America/New_York",
        "holiday_calendar": "US-CA",
        "send_window": {"days": [0, 2, 4], "start": "07:30", "end": "19:00"},
        "approval": "all",
        "minimum_amounts": {"JPY": "1000", "USD": "25.00"},
        "locale": "en_GB",
        "business_name": "Books Ltd trading as Bookish",
        "from_name": "Bookish accounts",
        "reply_to": "Accounts@bookish.example",
        "customer_page_ledger_notes": True,
    }
    assert view.inherited() == ()
    assert view.effective["cadence_id"].value == {"id": c.gentle, "name": "gentle"}
    # The client's minimum for a currency wins; the cadence's other currencies stay.
    assert view.effective["minimum_amounts"].value == {"GBP": "5", "JPY": "1000", "USD": "25.00"}
    again = _view(store, c.org_id, c.connection_id)
    assert again.stored == view.stored
    assert again.updated_at == NOW
    with store.unit_of_work() as uow:
        (entry,) = entries(uow, c.org_id, connection_id=c.connection_id, entity="client_settings")
        activity = uow.session.scalars(select(Activity).where(Activity.kind == "client_settings.updated")).one()
    assert (entry.actor, entry.at, entry.change, entry.entity_id) == (ACTOR, NOW, "create", str(c.connection_id))
    assert entry.before is None
    assert entry.after is not None
    assert entry.after["send_window"] == view.stored["send_window"]
    assert entry.after["minimum_amounts"] == {"JPY": "1000", "USD": "25.00"}
    assert activity.connection_id == c.connection_id
    assert activity.actor == ACTOR
    assert activity.detail["changed"] == sorted(changes)


def test_a_second_change_records_before_and_after_and_clearing_inherits_again(store: Store) -> None:
    c = client(store)
    update_client_settings(store, c.org_id, c.connection_id, {"locale": "fr_FR", "approval": "ledger"}, ACTOR, NOW)
    later = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)
    view = update_client_settings(store, c.org_id, c.connection_id, {"locale": None, "approval": ""}, "bob", later)
    assert view.effective["locale"].source == INSTALL
    assert view.effective["approval"].source == CADENCE_SOURCE
    with store.unit_of_work() as uow:
        newest = entries(uow, c.org_id, entity="client_settings")[0]
    assert newest.change == "update"
    assert newest.actor == "bob"
    assert newest.at == later
    assert newest.before is not None
    assert newest.after is not None
    assert (newest.before["locale"], newest.before["approval"]) == ("fr_FR", "ledger")
    assert (newest.after["locale"], newest.after["approval"]) == ("", "")


def test_saving_the_same_values_again_records_nothing(store: Store) -> None:
    c = client(store)
    update_client_settings(store, c.org_id, c.connection_id, {"time_zone": "Europe/Paris"}, ACTOR, NOW)
    update_client_settings(store, c.org_id, c.connection_id, {"time_zone": "Europe/Paris"}, ACTOR, NOW)
    with store.unit_of_work() as uow:
        assert len(entries(uow, c.org_id, entity="client_settings")) == 1
        assert len(list(uow.session.scalars(select(Activity).where(Activity.kind == "client_settings.updated")))) == 1


REFUSALS: list[tuple[str, Any, str]] = [
    ("cadence_id", 999_999, "cadence_id"),
    ("cadence_id", "1", "cadence_id"),
    ("cadence_id", True, "cadence_id"),
    ("cadence_id", 2**70, "cadence_id"),
    ("time_zone", "Mars/Olympus", "time_zone"),
    ("time_zone", 5, "time_zone"),
    ("holiday_calendar", "XX", "holiday_calendar"),
    ("holiday_calendar", "GB-NOWHERE", "holiday_calendar"),
    ("holiday_calendar", ["GB"], "holiday_calendar"),
    ("send_window", {"days": [], "start": "08:00", "end": "18:00"}, "send_window.days"),
    ("send_window", {"days": [7], "start": "08:00", "end": "18:00"}, "send_window.days"),
    ("send_window", {"days": [True], "start": "08:00", "end": "18:00"}, "send_window.days"),
    ("send_window", {"days": [1], "start": "18:00", "end": "08:00"}, "send_window.end"),
    ("send_window", {"days": [1], "start": "08:00", "end": "08:00"}, "send_window.end"),
    ("send_window", {"days": [1], "start": "8:00", "end": "18:00"}, "send_window.start"),
    ("send_window", {"days": [1], "start": "08:00", "end": "24:00"}, "send_window.end"),
    ("send_window", {"days": [1], "start": "08:00", "end": "18:00", "tz": "x"}, "send_window.tz"),
    ("send_window", "weekdays", "send_window"),
    ("approval", "sometimes", "approval"),
    ("minimum_amounts", {"ZZZ": "5"}, "minimum_amounts.ZZZ"),
    ("minimum_amounts", {"USD": "-1"}, "minimum_amounts.USD"),
    ("minimum_amounts", {"USD": "1.001"}, "minimum_amounts.USD"),
    ("minimum_amounts", {"JPY": "1.5"}, "minimum_amounts.JPY"),
    ("minimum_amounts", {"USD": 2.5}, "minimum_amounts.USD"),
    ("minimum_amounts", {"USD": "NaN"}, "minimum_amounts.USD"),
    ("minimum_amounts", {"USD": "five"}, "minimum_amounts.USD"),
    ("minimum_amounts", {"USD": "1e999999"}, "minimum_amounts.USD"),
    ("minimum_amounts", {"USD": "1000000000000000"}, "minimum_amounts.USD"),
    ("minimum_amounts", {"usd": "1", "USD": "2"}, "minimum_amounts.USD"),
    ("minimum_amounts", ["USD", "5"], "minimum_amounts"),
    ("locale", "xx_YY_ZZ", "locale"),
    ("locale", "klingon", "locale"),
    ("business_name", "Books\r\nBcc: victim@example.com", "business_name"),
    ("business_name", "x" * 201, "business_name"),
    ("from_name", "Accounts\u2028Team", "from_name"),
    ("from_name", "Accounts\x00", "from_name"),
    ("from_name", "Accounts\u202eevil", "from_name"),
    ("from_name", 42, "from_name"),
    ("reply_to", "not an address", "reply_to"),
    ("reply_to", "a@b.example\r\nBcc: c@d.example", "reply_to"),
    ("reply_to", "Billing <billing@books.example>", "reply_to"),
    ("reply_to", "a@localhost", "reply_to"),
    ("colour", "blue", "colour"),
]


@pytest.mark.parametrize(("name", "value", "field"), REFUSALS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(REFUSALS)])
def test_every_wrong_value_is_refused_naming_its_field_and_nothing_is_saved(
    store: Store, name: str, value: Any, field: str
) -> None:
    c = client(store)
    with pytest.raises(InvalidInput) as refused:
        update_client_settings(store, c.org_id, c.connection_id, {"locale": "de_DE", name: value}, ACTOR, NOW)
    assert refused.value.field == field
    assert refused.value.user_message
    with store.unit_of_work() as uow:
        assert uow.session.get(ClientSettings, c.connection_id) is None
        assert entries(uow, c.org_id) == []


def test_a_cadence_of_another_organization_or_a_deleted_one_is_refused(store: Store) -> None:
    c = client(store)
    other = client(store, organization="Other practice")
    with pytest.raises(InvalidInput) as refused:
        update_client_settings(store, c.org_id, c.connection_id, {"cadence_id": other.standard}, ACTOR, NOW)
    assert refused.value.field == "cadence_id"
    with store.unit_of_work() as uow:
        item = uow.session.get(LibraryItem, c.gentle)
        assert item is not None
        item.deleted_at = NOW
        uow.commit()
    with pytest.raises(InvalidInput, match="no cadence"):
        update_client_settings(store, c.org_id, c.connection_id, {"cadence_id": c.gentle}, ACTOR, NOW)


def test_a_client_of_another_organization_is_unknown(store: Store) -> None:
    c = client(store)
    other = client(store, organization="Other practice")
    for cid in (other.connection_id, 2**70, -1):
        with pytest.raises(UnknownRecord):
            update_client_settings(store, c.org_id, cid, {"locale": "fr_FR"}, ACTOR, NOW)
    with store.unit_of_work() as uow, pytest.raises(UnknownRecord):
        client_settings(uow, c.org_id, other.connection_id)
    with store.unit_of_work() as uow:
        assert uow.session.get(ClientSettings, other.connection_id) is None


def test_setting_the_cadence_retires_the_legacy_name_and_a_deleted_one_falls_back_visibly(store: Store) -> None:
    c = client(store, cadence="gentle")
    assert _view(store, c.org_id, c.connection_id).effective["cadence_id"].source == LEGACY
    view = update_client_settings(store, c.org_id, c.connection_id, {"cadence_id": c.standard}, ACTOR, NOW)
    assert view.effective["cadence_id"].value == {"id": c.standard, "name": "standard"}
    with store.unit_of_work() as uow:
        connection = uow.session.get(Connection, c.connection_id)
        assert connection is not None
        assert connection.cadence == ""
        (entry,) = entries(uow, c.org_id, entity="client_settings")
        assert entry.before is not None
        assert entry.before["legacy_cadence"] == "gentle"
        item = uow.session.get(LibraryItem, c.standard)
        assert item is not None
        item.deleted_at = NOW
        uow.commit()
    update_organization_settings(store, c.org_id, {"default_cadence_id": c.gentle}, ACTOR, NOW)
    view = _view(store, c.org_id, c.connection_id)
    assert view.effective["cadence_id"].value == {"id": c.gentle, "name": "gentle"}
    assert view.effective["cadence_id"].source == ORGANIZATION
    assert view.problems
    assert "no longer exists" in view.problems[0]


def test_the_from_name_falls_back_to_the_business_name(store: Store) -> None:
    c = client(store)
    view = update_client_settings(store, c.org_id, c.connection_id, {"business_name": "Bookish"}, ACTOR, NOW)
    assert (view.effective["from_name"].value, view.effective["from_name"].source) == ("Bookish", "business_name")
    assert view.effective["business_name"].source == CLIENT


def test_the_organization_default_cadence_is_checked_audited_and_cleared(store: Store) -> None:
    c = client(store)
    other = client(store, organization="Other practice")
    view = update_organization_settings(store, c.org_id, {"default_cadence_id": c.gentle}, ACTOR, NOW)
    assert (view.default_cadence_id, view.default_cadence_name) == (c.gentle, "gentle")
    assert _view(store, c.org_id, c.connection_id).effective["cadence_id"].source == ORGANIZATION
    for wrong, field in ((other.gentle, "default_cadence_id"), ("2", "default_cadence_id"), (1, "colour")):
        key = "colour" if field == "colour" else "default_cadence_id"
        with pytest.raises(InvalidInput) as refused:
            update_organization_settings(store, c.org_id, {key: wrong}, ACTOR, NOW)
        assert refused.value.field == field
    cleared = update_organization_settings(store, c.org_id, {"default_cadence_id": None}, ACTOR, NOW)
    assert cleared.default_cadence_id is None
    assert cleared.effective_cadence_name in ("gentle", "standard")
    with store.unit_of_work() as uow:
        audit = entries(uow, c.org_id, entity="organization_settings")
        assert [(e.before, e.after) for e in audit] == [
            ({"default_cadence_id": c.gentle}, {"default_cadence_id": None}),
            ({"default_cadence_id": None}, {"default_cadence_id": c.gentle}),
        ]
        assert organization_settings(uow, c.org_id).default_cadence_id is None
        kinds = list(uow.session.scalars(select(Activity.kind).where(Activity.organization_id == c.org_id)))
        assert kinds.count("organization_settings.updated") == 2
    with pytest.raises(UnknownRecord):
        update_organization_settings(store, 999_999, {"default_cadence_id": None}, ACTOR, NOW)


def test_the_install_defaults_come_from_the_configuration(store: Store) -> None:
    c = client(store)
    library_item(store, c.org_id, "cadence", "zz-last", cadence_body())
    with store.unit_of_work() as uow:
        view = client_settings(uow, c.org_id, c.connection_id)
    assert view.effective["reply_to"].value == ""
    assert view.effective["locale"].value == "en_US"


def test_a_cadence_naming_its_zone_and_holidays_is_where_they_come_from(store: Store) -> None:
    c = client(store)
    own = library_item(
        store, c.org_id, "cadence", "paris", cadence_body(time_zone="Europe/Paris", holidays={"country": "FR"})
    )
    view = update_client_settings(store, c.org_id, c.connection_id, {"cadence_id": own}, ACTOR, NOW, DEFAULTS)
    assert (view.effective["time_zone"].value, view.effective["time_zone"].source) == ("Europe/Paris", CADENCE_SOURCE)
    assert (view.effective["holiday_calendar"].value, view.effective["holiday_calendar"].source) == (
        "FR",
        CADENCE_SOURCE,
    )
    view = update_client_settings(store, c.org_id, c.connection_id, {"time_zone": "Asia/Tokyo"}, ACTOR, NOW)
    assert (view.effective["time_zone"].value, view.effective["time_zone"].source) == ("Asia/Tokyo", CLIENT)

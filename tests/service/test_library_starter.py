"""Seeding an organization's library from the install's starter library: once, with the default cadence and
the legacy cadence names turned into ids; on PostgreSQL, two threads seeding one organization at once, and two
editors saving the same version of an item at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from connector.errors import InUse
from connector.library import items
from connector.library.resolve import CADENCE, DISCOUNT, TEMPLATE
from connector.library.starter import ensure_library
from connector.mail.rendering import TEMPLATE_NAMES
from connector.storage import Store
from connector.storage.tables import ClientSettings, Customer, LibraryItem, Organization
from tests.support.databases import Database
from tests.support.library import NOW, add_client, add_customer, starter_settings


def test_an_organization_is_seeded_once_with_templates_policies_and_cadences(store: Store) -> None:
    settings = starter_settings()
    with store.unit_of_work() as uow:
        org_id = uow.organizations.add("Practice").id
        assert ensure_library(uow, org_id, settings, NOW) is True
        assert ensure_library(uow, org_id, settings, NOW) is False
        uow.commit()
    with store.unit_of_work() as uow:
        listed = items.list_items(uow, org_id)
        assert sorted(i.name for i in listed if i.kind == TEMPLATE) == sorted(TEMPLATE_NAMES)
        assert len(listed) == len(TEMPLATE_NAMES) + 5
        standard = next(i for i in listed if i.kind == CADENCE)
        organization = uow.session.get(Organization, org_id)
        assert organization is not None
        assert organization.settings["default_cadence_id"] == standard.id
        assert dict(standard.body) == dict(settings.cadences["standard"])


def test_legacy_cadence_names_become_ids_for_clients_and_customers(store: Store) -> None:
    with store.unit_of_work() as uow:
        org_id = uow.organizations.add("Practice").id
        named = add_client(uow, org_id, "Acme Ltd", cadence="standard")
        unnamed = add_client(uow, org_id, "Bolt Inc")
        stale = add_client(uow, org_id, "Gone Co", cadence="retired")
        customer = add_customer(uow, unnamed, "Blue Harbor Cafe", cadence="standard")
        ensure_library(uow, org_id, starter_settings(), NOW)
        uow.commit()
    with store.unit_of_work() as uow:
        standard = items.list_items(uow, org_id, CADENCE)[0].id
        row = uow.session.get(ClientSettings, named)
        assert row is not None
        assert row.cadence_id == standard
        assert uow.session.get(ClientSettings, unnamed) is None  # follows the organization's default
        assert uow.session.get(ClientSettings, stale) is None  # names no starter cadence: left to the default
        found = uow.session.get(Customer, customer)
        assert found is not None
        assert found.cadence_id == standard


def test_an_existing_default_name_picks_the_default_cadence(store: Store) -> None:
    settings = starter_settings()
    cadences = {"gentle": dict(settings.cadences["standard"]), **settings.cadences}
    settings = replace(settings, cadences=cadences)
    with store.unit_of_work() as uow:
        organization = uow.organizations.add("Practice")
        organization.settings = {"default_cadence": "standard"}
        ensure_library(uow, organization.id, settings, NOW)
        uow.commit()
        by_name = {i.name: i.id for i in items.list_items(uow, organization.id, CADENCE)}
        assert organization.settings["default_cadence_id"] == by_name["standard"]


@pytest.fixture
def pg_store(postgres_database: Database) -> Iterator[Store]:
    result = postgres_database.store(pool_size=4)
    result.upgrade()
    try:
        yield result
    finally:
        result.dispose()


def test_two_processes_seeding_one_organization_at_once_seed_it_once(pg_store: Store) -> None:
    """Each thread holds its own transaction; the organization row lock makes the second wait, re-check, and
    write nothing. A barrier lines both up at the (unlocked) first check."""
    with pg_store.unit_of_work() as uow:
        org_id = uow.organizations.add("Practice").id
        uow.commit()
    settings = starter_settings()
    barrier = threading.Barrier(2)
    results: list[bool] = []
    errors: list[BaseException] = []

    def seed() -> None:
        try:
            with pg_store.unit_of_work() as uow:
                barrier.wait()
                results.append(ensure_library(uow, org_id, settings, NOW))
                uow.commit()
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=seed) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [False, True]
    with pg_store.unit_of_work() as uow:
        count = uow.session.scalar(
            select(func.count()).select_from(LibraryItem).where(LibraryItem.organization_id == org_id)
        )
    assert count == len(TEMPLATE_NAMES) + 5


def test_two_editors_saving_the_same_version_at_once_one_is_refused(pg_store: Store) -> None:
    """Both edit version 1; the item row lock serializes them and the second sees version 2: InUse."""
    with pg_store.unit_of_work() as uow:
        org_id = uow.organizations.add("Practice").id
        ensure_library(uow, org_id, starter_settings(), NOW)
        uow.commit()
        discount = items.list_items(uow, org_id, DISCOUNT)[0]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def edit(percent: int) -> None:
        try:
            with pg_store.unit_of_work() as uow:
                barrier.wait()
                body = {**discount.body, "percent": percent}
                items.update_item(uow, org_id, discount.id, body, base_version=1, actor=f"u{percent}", now=NOW)
                uow.commit()
                outcomes.append("saved")
        except InUse:
            outcomes.append("refused")

    threads = [threading.Thread(target=edit, args=(percent,)) for percent in (3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "saved"]
    with pg_store.unit_of_work() as uow:
        assert [v.number for v in items.versions(uow, org_id, discount.id)] == [2, 1]

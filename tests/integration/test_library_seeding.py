"""Every organization gets its own library without a GET ever writing one: at creation, on `nudge db upgrade` for
organizations older than libraries, and on a worker's first turn; the actions it plans then name their version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connector.library.starter import seed_organizations
from connector.storage.tables import Action, LibraryItem, LibraryVersion
from tests.support.pipeline import pipeline, rules
from tests.support.workers import customer_email

RULES = rules([{"id": "late", "offset": 3, "remind": "firm"}])


def _items(world: object, org_id: int) -> int:
    with world.services.store.unit_of_work() as uow:  # type: ignore[attr-defined]
        return uow.session.scalar(
            select(func.count()).select_from(LibraryItem).where(LibraryItem.organization_id == org_id)
        )


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_worker_turn_seeds_the_library_and_actions_name_the_cadence_version(tmp_path: Path, database: str) -> None:
    now = datetime.now(UTC)
    with pipeline("quickbooks", tmp_path, RULES, start=now, database=database) as world:
        kit = world.kit
        tenant = kit.add_company("Seeded Co")
        customer = kit.add_customer(tenant, "Late Payer", customer_email("Late Payer"))
        today = now.date()
        kit.add_invoice(
            tenant, customer, "S-1", Decimal("200.00"), "", today - timedelta(days=30), today - timedelta(days=5)
        )
        connection = world.connect(tenant)
        with world.services.store.unit_of_work() as uow:
            row = uow.connections.by_id(connection)
            assert row is not None
            org_id = row.organization_id
        assert _items(world, org_id) == 0  # made by a direct insert, as organizations from before libraries were

        world.turn(connection)

        assert _items(world, org_id) > 0
        [remind] = [a for a in world.actions(connection) if a.kind == "remind"]
        with world.services.store.unit_of_work() as uow:
            version = uow.session.get(LibraryVersion, remind.library_version_id)
            assert version is not None
            item = uow.session.get(LibraryItem, version.item_id)
            assert item is not None
            assert (item.kind, item.name, item.organization_id) == ("cadence", "rs", org_id)
            assert item.current_version_id == version.id
        assert remind.state == "done"
        assert len(world.sink.received) == 1

        world.turn(connection)  # seeding happens once
        with world.services.store.unit_of_work() as uow:
            cadences = uow.session.scalar(
                select(func.count())
                .select_from(LibraryItem)
                .where(LibraryItem.organization_id == org_id, LibraryItem.kind == "cadence")
            )
            assert cadences == 1
            assert (
                uow.session.scalar(select(func.count()).select_from(Action).where(Action.library_version_id.is_(None)))
                == 0
            )


def test_db_upgrade_seeds_organizations_that_have_no_library(tmp_path: Path) -> None:
    with pipeline("quickbooks", tmp_path, RULES) as world:
        services = world.services
        with services.store.unit_of_work() as uow:
            older = uow.organizations.add("Older Practice").id
            uow.commit()
        assert seed_organizations(services.store, services.settings, services.clock.now()) >= 1
        assert _items(world, older) > 0
        assert seed_organizations(services.store, services.settings, services.clock.now()) == 0

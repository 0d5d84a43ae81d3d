"""Helpers for library tests: the install's starter library (config.example.yaml's cadences and policies),
an organization seeded with it, clients and customers that use its cadences."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from connector.config import Settings, settings_for_tests
from connector.library.starter import ensure_library
from connector.storage import Store, UnitOfWork
from connector.storage.tables import ClientSettings, Connection, Customer

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)


def starter_settings(url: str = "sqlite://") -> Settings:
    """Test settings whose starter library is config.example.yaml's `cadences:` and `policies:`."""
    document: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return replace(settings_for_tests(url), cadences=document["cadences"], policies=document["policies"])


def seeded_org(store: Store, name: str = "Practice", settings: Settings | None = None) -> int:
    """A new organization with the starter library; its id."""
    with store.unit_of_work() as uow:
        org_id = uow.organizations.add(name).id
        ensure_library(uow, org_id, settings or starter_settings(), NOW)
        uow.commit()
    return org_id


def add_client(uow: UnitOfWork, org_id: int, name: str, cadence_id: int | None = None, cadence: str = "") -> int:
    """A connection (client) of `org_id`, following `cadence_id` when given; its id."""
    connection = Connection(organization_id=org_id, provider="quickbooks", tenant_id=name, name=name, cadence=cadence)
    uow.session.add(connection)
    uow.session.flush()
    if cadence_id is not None:
        uow.session.add(ClientSettings(connection_id=connection.id, cadence_id=cadence_id))
        uow.session.flush()
    return connection.id


def add_customer(
    uow: UnitOfWork, connection_id: int, name: str, cadence_id: int | None = None, cadence: str = ""
) -> int:
    """A customer of a client, with a cadence override when given; its id."""
    customer = Customer(
        connection_id=connection_id, external_id=name, name=name, cadence=cadence, cadence_id=cadence_id
    )
    uow.session.add(customer)
    uow.session.flush()
    return customer.id

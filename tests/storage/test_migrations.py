"""Alembic migrations build exactly the schema the tables describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from connector.storage.tables import Base
from tests.support.databases import Database


def test_upgrade_creates_the_schema_the_models_describe(database: Database) -> None:
    store = database.store()
    try:
        store.upgrade()
        store.upgrade()  # idempotent: a second upgrade finds nothing to do
        with store.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
            tables = set(inspect(connection).get_table_names())
        assert differences == []
        assert set(Base.metadata.tables) <= tables
        assert "alembic_version" in tables
    finally:
        store.dispose()

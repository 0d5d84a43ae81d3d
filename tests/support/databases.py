"""Throw-away databases for tests: SQLite files and fresh PostgreSQL schemas.

PostgreSQL tests use the server named by NUDGE_TEST_POSTGRES_URL (`.ci/run` sets it), each test in a
fresh schema. Without that variable they are skipped with a visible reason, unless
NUDGE_REQUIRE_POSTGRES=1, in which case a missing server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from connector.storage import Store

POSTGRES_URL = os.environ.get("NUDGE_TEST_POSTGRES_URL", "")
REQUIRE_POSTGRES = os.environ.get("NUDGE_REQUIRE_POSTGRES") == "1"


def postgres_url_or_skip() -> str:
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("NUDGE_REQUIRE_POSTGRES=1 but NUDGE_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL not configured: set NUDGE_TEST_POSTGRES_URL (.ci/run does) to run these on PostgreSQL")
    return POSTGRES_URL


class Database:
    """A throw-away database: `url` plus `schema` (PostgreSQL) to build stores on."""

    def __init__(self, kind: str, url: str, schema: str = "") -> None:
        self.kind = kind
        self.url = url
        self.schema = schema

    def store(self, **kwargs: object) -> Store:
        return Store.from_url(self.url, schema=self.schema, **kwargs)  # type: ignore[arg-type]


def fresh_postgres_schema() -> Iterator[Database]:
    url = postgres_url_or_skip()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1) if "+" not in url else url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # the server is configured but not answering
        admin.dispose()
        pytest.fail(f"PostgreSQL at NUDGE_TEST_POSTGRES_URL is not usable: {exc}")
    try:
        yield Database("postgresql", url, schema)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

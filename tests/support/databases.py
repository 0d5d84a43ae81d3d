"""Throw-away databases for tests: SQLite files and fresh PostgreSQL schemas.

PostgreSQL tests use the server named by NUDGE_TEST_POSTGRES_URL (`.ci/run` sets it), each test in a
fresh schema. Without that variable they are skipped with a visible reason, unless
NUDGE_REQUIRE_POSTGRES=1, in which case a missing server is a failure.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

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


_migrated: list[Path] = []  # this process's SQLite file with every migration run (made on first use)


def _migrated_sqlite() -> Path:
    if not _migrated:
        folder = tempfile.mkdtemp(prefix="nudge-migrated-")
        atexit.register(shutil.rmtree, folder, True)
        path = Path(folder) / "nudge.sqlite3"
        template = Store.from_url(f"sqlite:///{path}")
        try:
            template.upgrade()
        finally:
            template.dispose()
        _migrated.append(path)
    return _migrated[0]


def _has_tables(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return False
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return bool(connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])


def migrate(store: Store) -> None:
    """Run the migrations on `store`. A new (empty) SQLite file becomes a copy of one this process migrated once
    instead: running the migrations takes about a second, copying the file a millisecond."""
    url = store.engine.url
    path = Path(url.database) if store.dialect == "sqlite" and url.database not in (None, "", ":memory:") else None
    if path is None or _has_tables(path):
        store.upgrade()
        return
    store.dispose()  # no connection may hold the file while it is replaced
    for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(_migrated_sqlite(), path)

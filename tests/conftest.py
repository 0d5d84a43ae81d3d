"""Shared fixtures (every storage test runs on SQLite and on PostgreSQL) and the layer markers.

Each test is marked with its layer, the first folder under tests/ (unit, service, storage, providers,
contract, web, integration, reliability), so `pytest -m unit` or `make test-unit` picks a layer. Databases are
built by tests/support/databases.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from argon2 import PasswordHasher

from connector.accounts import passwords
from connector.storage import Store
from tests.support import pages_demo
from tests.support.catalogue import write_table
from tests.support.databases import Database, fresh_postgres_schema, migrate
from tests.support.routes import share_builders

if TYPE_CHECKING:
    from providers.quickbooks.emulator import EmulatorHandle

# Argon2id at argon2-cffi's recommended cost (64 MiB, 3 passes) takes a few tenths of a second a hash on two busy
# cores, and hundreds of tests make a user and sign in. The tests hash with the same algorithm at its smallest cost
# (a stored hash carries its parameters, so verifying is unchanged); tests/unit/test_password_cost.py keeps the
# production cost pinned.
passwords._HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
passwords._DUMMY_HASH = passwords._HASHER.hash("nudge-dummy-password")

# Every web test makes its own app; werkzeug would compile the same URL builders for each (tests/support/routes.py).
share_builders()

_DEMO_PROCESS = pytest.StashKey["subprocess.Popen[bytes]"]()

LAYERS = ("unit", "service", "storage", "providers", "contract", "web", "integration", "reliability")
TESTS = Path(__file__).resolve().parent


# Modules whose single tests run for minutes (real processes, SIGKILL, the whole demo). They go first, so that
# xdist's worksteal can share everything else around them instead of one of them ending the run on one core.
LONG_SINGLE_TESTS = (
    "integration/test_demo.py",
    "web/test_api_schemathesis.py",
    "reliability/test_rs01_kill_after_quickbooks_fee_post.py",
    "integration/test_many_workers.py",
    "reliability/test_rs12_kill_after_token_answer.py",
    "reliability/test_rs39_sigterm_during_batch.py",
    "reliability/test_rs17_key_rotation_and_missing_key.py",
    "reliability/test_rs06_rerun_same_day.py",
    "reliability/test_rs18_secret_scan.py",
    "integration/test_readme_running_it.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its layer (its first folder under tests/); the longest single tests first."""
    for item in items:
        layer = Path(item.fspath).resolve().relative_to(TESTS).parts[0]
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, layer))
    rank = {name: position for position, name in enumerate(LONG_SINGLE_TESTS)}
    last = len(LONG_SINGLE_TESTS)
    items.sort(key=lambda item: rank.get(Path(item.fspath).resolve().relative_to(TESTS).as_posix(), last))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database on each backend."""
    if request.param == "sqlite":
        yield Database("sqlite", f"sqlite:///{tmp_path / 'nudge.sqlite3'}")
        return
    yield from fresh_postgres_schema()


@pytest.fixture
def postgres_database() -> Iterator[Database]:
    """An empty PostgreSQL schema, for properties only PostgreSQL has (row locks, SKIP LOCKED)."""
    yield from fresh_postgres_schema()


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    """A migrated store on each backend (on SQLite, a copy of a file migrated once: tests/support/databases.py)."""
    result = database.store()
    migrate(result)
    try:
        yield result
    finally:
        result.dispose()


@pytest.fixture(scope="module")
def qbo() -> Iterator[EmulatorHandle]:
    """One QuickBooks emulator in this process for a test module (QuickBooks' own rate limits on)."""
    from providers.quickbooks.emulator import start

    with start() as handle:
        yield handle


def pytest_sessionstart(session: pytest.Session) -> None:
    """The controller starts the page tests' demo world in the background when the session runs them (the workers
    would otherwise wait on one of them running it)."""
    config = session.config
    if hasattr(config, "workerinput") or not pages_demo.wanted(
        list(config.args), config.rootpath, config.option.markexpr or "", config.option.keyword or ""
    ):
        return
    shared = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]  # the workers' common root
    config.stash[_DEMO_PROCESS] = pages_demo.start_in_background(shared)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the background demo if the session ends first (interrupted, or the page tests deselected)."""
    process = session.config.stash.get(_DEMO_PROCESS, None)
    if process is not None and process.poll() is None:
        process.terminate()
        process.wait(timeout=30)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Close the output with the reliability catalogue's table when its tests ran."""
    write_table(terminalreporter)

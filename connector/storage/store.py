"""The Store: an engine plus units of work (a session that rolls back unless committed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from connector.errors import StorageError
from connector.storage.engine import make_engine
from connector.storage.repositories import Activities, Connections, Memberships, Organizations, Payments, Users
from connector.storage.tables import Base

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class UnitOfWork:
    """One transaction: repositories over one session; nothing is kept unless `commit()` is called."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.users = Users(session)
        self.organizations = Organizations(session)
        self.memberships = Memberships(session)
        self.connections = Connections(session)
        self.activities = Activities(session)
        self.payments = Payments(session)

    def commit(self) -> None:
        """Commit the unit of work; StorageError when the database refuses it (after a rollback)."""
        try:
            self.session.commit()
        except OperationalError as exc:
            self.session.rollback()
            raise StorageError(f"the database refused the commit: {exc.orig}") from exc

    def rollback(self) -> None:
        """Undo everything since the last commit."""
        self.session.rollback()

    def flush(self) -> None:
        """Send pending changes to the database without committing (to get generated ids)."""
        self.session.flush()


class Store:
    """Database access for every service; one per process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False, autoflush=True)

    @classmethod
    def from_url(
        cls, url: str, *, echo: bool = False, pool_size: int = 5, schema: str = "", application_name: str = "nudge"
    ) -> Store:
        """A store on `url` (PostgreSQL sessions show `application_name` in pg_stat_activity)."""
        return cls(make_engine(url, echo=echo, pool_size=pool_size, schema=schema, application_name=application_name))

    @property
    def dialect(self) -> str:
        """The SQLAlchemy dialect name: sqlite or postgresql."""
        return self.engine.dialect.name

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """A transaction scope; rolled back on exit unless committed, and always closed."""
        session = self._sessions()
        try:
            yield UnitOfWork(session)
        except OperationalError as exc:
            session.rollback()
            raise StorageError(f"database unavailable: {exc.orig}") from exc
        finally:
            # close() rolls back whatever was not committed; unlike rollback() it leaves loaded rows
            # readable after the block (detached, not expired).
            session.close()

    def ping(self) -> None:
        """Raises StorageError unless the database answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise StorageError(
                f"database unreachable ({self.engine.url.render_as_string(hide_password=True)})"
            ) from exc

    def create_all(self) -> None:
        """Create every table directly (tests); production uses `upgrade()`."""
        Base.metadata.create_all(self.engine)

    def alembic_config(self) -> AlembicConfig:
        """An Alembic configuration over this store's engine and the shipped migrations."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["engine"] = self.engine
        return config

    def upgrade(self, revision: str = "head") -> None:
        """Apply the Alembic migrations up to `revision`."""
        command.upgrade(self.alembic_config(), revision)

    def dispose(self) -> None:
        """Close every pooled database connection."""
        self.engine.dispose()

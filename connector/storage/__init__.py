"""Persistence: SQLAlchemy 2 tables, repositories, the unit of work and Alembic migrations."""

from connector.storage.store import Store, UnitOfWork

__all__ = ["Store", "UnitOfWork"]

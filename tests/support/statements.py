"""Count the SQL statements a piece of code sends (the no-N+1 tests of the pages assert a ceiling per page)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


@dataclass
class StatementLog:
    """The statements sent while counting, in order (SQL text only; parameters are not kept)."""

    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many statements were sent."""
        return len(self.statements)

    def report(self) -> str:
        """Every statement, one per line, shortened: what a failing assertion shows."""
        return "\n".join(f"{n:3}: {' '.join(s.split())[:160]}" for n, s in enumerate(self.statements, 1))


@contextmanager
def counting_statements(engine: Engine) -> Iterator[StatementLog]:
    """Log every statement `engine` executes inside the block (all threads: a live server counts too)."""
    log = StatementLog()

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        log.statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", before)

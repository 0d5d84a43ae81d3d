"""Fetch a listing's pages on a few threads, yet hand them over one by one in their own order.

A full sync knows how many pages it will read once the first answer is in; the rest need not wait for each
other. `ReadAhead` runs one task per page on at most `width` threads (a provider's concurrent-call limit:
every call still goes through the tenant's shared limiter, which also keeps the per-minute window) and
yields the results in the tasks' order, so the consumer stores page after page exactly as it would from a
sequential loop. Read-ahead is bounded: a task is started only when the consumer has taken a result, so at
most `width` pages are fetched or held ahead of it. A failed task raises its own exception at its turn,
after every earlier result; closing the ReadAhead (the consumer stopped, or a task failed) cancels the
tasks not started and waits for the running ones, so no thread outlives it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, Self, TypeVar

from connector.errors import ConfigError

ResultT = TypeVar("ResultT")


class ReadAhead(Generic[ResultT]):
    """The results of `tasks`, in order, computed on up to `width` threads (`width` 1: one after another,
    on the consumer's own thread). Use it as a context manager, or call `close()`."""

    def __init__(self, tasks: Iterable[Callable[[], ResultT]], *, width: int, name: str = "read-ahead") -> None:
        self.width = max(1, width)
        self._tasks = iter(tasks)
        self._pending: deque[Future[ResultT]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        if self.width > 1:
            self._pool = ThreadPoolExecutor(max_workers=self.width, thread_name_prefix=name)
            for _ in range(self.width):
                if not self._submit_next():
                    break

    def _submit_next(self) -> bool:
        """Start the next task, if there is one; False when none is left."""
        task = next(self._tasks, None)
        if task is None:
            return False
        assert self._pool is not None
        self._pending.append(self._pool.submit(task))
        return True

    def __iter__(self) -> Iterator[ResultT]:
        return self

    def __next__(self) -> ResultT:
        if self._pool is None:
            task = next(self._tasks, None)
            if task is None:
                raise StopIteration
            return task()
        if not self._pending:
            raise StopIteration
        result = self._pending.popleft().result()  # a task's own exception, raised at its turn
        self._submit_next()  # one taken, one more started: the read-ahead stays `width` deep
        return result

    def close(self) -> list[ResultT]:
        """Stop: cancel the tasks not started, wait for the running ones; the results fetched but never
        taken (a failed task's result is left out). Closing twice is harmless."""
        leftovers: list[ResultT] = []
        if self._pool is not None:
            self._tasks = iter(())
            for future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=True, cancel_futures=True)
            leftovers = [f.result() for f in self._pending if not f.cancelled() and f.exception() is None]
            self._pending.clear()
            self._pool = None
        self._tasks = iter(())
        return leftovers

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_ahead_width(option: object, limit: int, *, provider: str) -> int:
    """How many pages a full sync fetches at once: the `page_concurrency` option (1: one after another), never
    more than the tenant's concurrent-call `limit`; the limit itself when the option is absent."""
    if option is None or option == "":
        return max(1, limit)
    try:
        width = int(str(option))
    except ValueError:
        width = 0
    if width < 1:
        raise ConfigError(f"providers.{provider}.options.page_concurrency: expected a whole number ≥ 1, got {option!r}")
    return min(width, max(1, limit))

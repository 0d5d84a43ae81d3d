"""ReadAhead: a full sync's pages fetched on a few threads, handed over one by one in their own order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from connector.errors import ConfigError, Transient
from connector.ratelimit.readahead import ReadAhead, read_ahead_width


class Recorder:
    """Tasks that remember when they started and how many ran at once."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()

    def task(self, number: int, seconds: float = 0.0, error: Exception | None = None) -> Callable[[], int]:
        def run() -> int:
            with self._lock:
                self.started.append(number)
                self.running += 1
                self.peak = max(self.peak, self.running)
            try:
                time.sleep(seconds)
                if error is not None:
                    raise error
                return number
            finally:
                with self._lock:
                    self.running -= 1

        return run


def _threads(prefix: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


def test_results_come_in_task_order_whatever_order_they_finish_in() -> None:
    recorder = Recorder()
    # Earlier tasks take longer: they finish last, yet come first.
    tasks = [recorder.task(number, seconds=0.05 - number * 0.01) for number in range(5)]
    with ReadAhead(tasks, width=5, name="order-test") as ahead:
        assert list(ahead) == [0, 1, 2, 3, 4]
    assert recorder.peak > 1  # they did run at once


def test_no_more_than_width_tasks_run_or_wait_ahead_of_the_consumer() -> None:
    recorder = Recorder()
    tasks = (recorder.task(number, seconds=0.01) for number in range(20))
    with ReadAhead(tasks, width=3, name="bound-test") as ahead:
        first = next(ahead)
        time.sleep(0.1)  # the consumer dawdles: the read-ahead must not run on past its width
        assert first == 0
        assert len(recorder.started) == 4  # the first three, and one more once the first was taken
        rest = list(ahead)
    assert rest == list(range(1, 20))
    assert recorder.peak <= 3


def test_width_one_runs_each_task_only_when_its_result_is_asked_for_on_the_callers_thread() -> None:
    names: list[str] = []

    def task(number: int) -> Callable[[], int]:
        def run() -> int:
            names.append(threading.current_thread().name)
            return number

        return run

    ahead = ReadAhead((task(number) for number in range(3)), width=1)
    assert names == []
    assert next(ahead) == 0
    assert names == [threading.current_thread().name]
    assert ahead.close() == []
    assert list(ahead) == []  # closed: the tasks not run never will be


def test_a_failed_task_raises_its_own_error_after_every_earlier_result_and_no_thread_stays() -> None:
    recorder = Recorder()
    refused = Transient("page 3 failed", provider="test")
    tasks = [recorder.task(n, seconds=0.02, error=refused if n == 3 else None) for n in range(8)]
    taken: list[int] = []
    with pytest.raises(Transient) as caught, ReadAhead(tasks, width=4, name="fail-test") as ahead:
        taken.extend(ahead)
    assert caught.value is refused
    assert taken == [0, 1, 2]
    assert _threads("fail-test") == []
    assert len(recorder.started) < 8  # the tasks not started when it failed never ran


def test_close_waits_for_running_tasks_and_hands_back_the_results_never_taken() -> None:
    recorder = Recorder()
    ahead = ReadAhead([recorder.task(n, seconds=0.05) for n in range(6)], width=3, name="close-test")
    assert next(ahead) == 0
    leftovers = ahead.close()
    started = sorted(recorder.started)
    assert started[:3] == [0, 1, 2]
    assert len(started) <= 4  # at most one more was started once the first was taken
    assert sorted(leftovers) == started[1:]  # started before the close: finished, handed back, never taken
    assert _threads("close-test") == []
    time.sleep(0.06)
    assert sorted(recorder.started) == started  # nothing ran after the close
    assert ahead.close() == []  # a second close is harmless


def test_read_ahead_width_is_the_limit_unless_the_option_asks_for_fewer() -> None:
    assert read_ahead_width(None, 10, provider="quickbooks") == 10
    assert read_ahead_width("", 5, provider="xero") == 5
    assert read_ahead_width(1, 10, provider="quickbooks") == 1
    assert read_ahead_width("3", 5, provider="xero") == 3
    assert read_ahead_width(50, 5, provider="xero") == 5  # never past the provider's concurrent-call limit
    for bad in (0, -2, "many", 2.5):
        with pytest.raises(ConfigError, match="page_concurrency"):
            read_ahead_width(bad, 10, provider="quickbooks")

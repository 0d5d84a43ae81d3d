"""What the full-sync scenarios share: timing one sync against an emulator's call log, client-side peak memory,
and the concurrent-against-sequential metrics and targets of issue 13."""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Callable

from bench.targets import Target, at_most
from providers._emulator.kit import EmulatorKit

Timing = tuple[float, int, int]  # (wall seconds, data calls, 429 answers) of one sync


def timed_sync(sync: Callable[[], int], kit: EmulatorKit, tenant: str, expected: int) -> Timing:
    """Time one sync, which must bring `expected` invoices, and read its calls from the emulator's log."""
    kit.clear_calls()
    started = time.perf_counter()
    count = sync()
    wall = time.perf_counter() - started
    if count != expected:
        raise RuntimeError(f"synced {count} invoices, expected {expected}")
    calls = kit.calls("data", tenant)
    return wall, len(calls), sum(1 for call in calls if call["status"] == 429)


def peak_mb(work: Callable[[], int]) -> float:
    """The client side's peak traced memory while `work` runs, in MB (the emulator runs in another process)."""
    tracemalloc.start()
    work()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1_000_000


def race_metrics(
    concurrent: list[Timing],
    sequential: list[Timing],
    *,
    peak_concurrent: int,
    ours_peak_mb: float,
    baseline: Timing,
    baseline_peak_mb: float,
) -> dict[str, float]:
    """The best wall time of each way (noise only adds time), their calls, every 429, and the baseline's figures."""
    base_wall, base_calls, _ = baseline
    return {
        "calls": float(concurrent[0][1]),
        "wall_s": round(min(wall for wall, _, _ in concurrent), 3),
        "sequential_calls": float(sequential[0][1]),
        "sequential_wall_s": round(min(wall for wall, _, _ in sequential), 3),
        "rate_limited_calls": float(sum(limited for _, _, limited in concurrent + sequential)),
        "peak_concurrent_calls": float(peak_concurrent),
        "peak_mb": round(ours_peak_mb, 2),
        # Pages overlap only where the machine has a core to spare: a loaded machine narrows the gap to sequential.
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "baseline_calls": float(base_calls),
        "baseline_wall_s": round(base_wall, 3),
        "baseline_peak_mb": round(baseline_peak_mb, 2),
    }


def race_targets(metrics: dict[str, float], page_limit: int) -> list[Target]:
    """Issue 13: pages concurrently, at most 0.6 x the one-at-a-time wall time, same calls (≤ 11), no 429."""
    ratio = metrics["wall_s"] / metrics["sequential_wall_s"]
    return [
        Target(
            f"wall_s <= 0.6 x sequential_wall_s (is {metrics['wall_s']:g} = {ratio:.2f} x "
            f"{metrics['sequential_wall_s']:g})",
            metrics["wall_s"] <= 0.6 * metrics["sequential_wall_s"],
        ),
        at_most(metrics, "calls", 11),
        Target(
            f"calls == sequential_calls (is {metrics['calls']:g} and {metrics['sequential_calls']:g})",
            metrics["calls"] == metrics["sequential_calls"],
        ),
        at_most(metrics, "rate_limited_calls", 0),
        at_most(metrics, "peak_concurrent_calls", page_limit),
    ]

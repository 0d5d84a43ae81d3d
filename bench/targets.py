"""Acceptance targets of the benchmark scenarios: each scenario's targets(metrics) returns these."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One acceptance figure of a scenario: `what` in words (e.g. "wall_s <= 0.6 x sequential_wall_s")."""

    what: str
    met: bool


def at_most(metrics: dict[str, float], metric: str, limit: float) -> Target:
    """`metric` must not exceed `limit`."""
    return Target(f"{metric} <= {limit:g} (is {metrics[metric]:g})", metrics[metric] <= limit)


def at_least(metrics: dict[str, float], metric: str, floor: float) -> Target:
    """`metric` must reach `floor`."""
    return Target(f"{metric} >= {floor:g} (is {metrics[metric]:g})", metrics[metric] >= floor)

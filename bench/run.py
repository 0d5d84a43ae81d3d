"""Run the benchmark scenarios, print a table and write bench/results/latest.json.

Usage: python -m bench.run [SCENARIO ...]   (no names: every module in bench/scenarios)
A scenario module defines NAME and run() -> dict[str, float]; baseline figures measured in the
same run are returned beside ours with the prefix "baseline_". A scenario with targets also defines
targets(metrics) -> list[bench.targets.Target]: each is printed as met or MISSED, and `make bench` exits 1 when one
is missed (a target is the issue's acceptance figure, never a timing assertion in a test).
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path
from typing import Any

import bench.scenarios

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def discover() -> dict[str, Any]:
    """Scenario modules by their NAME."""
    found: dict[str, Any] = {}
    for info in pkgutil.iter_modules(bench.scenarios.__path__):
        module = importlib.import_module(f"bench.scenarios.{info.name}")
        found[getattr(module, "NAME", info.name)] = module
    return found


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str]) -> int:
    scenarios = discover()
    wanted = [name for arg in argv for name in arg.split(",") if name] or sorted(scenarios)
    unknown = [name for name in wanted if name not in scenarios]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(sorted(scenarios))}")
        return 2
    results = []
    for name in wanted:
        print(f"running {name} ...", flush=True)
        metrics = scenarios[name].run()
        judged = getattr(scenarios[name], "targets", lambda _: [])(metrics)
        results.append({"name": name, "metrics": metrics, "targets": [{"what": t.what, "met": t.met} for t in judged]})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": machine(), "scenarios": results}, indent=2) + "\n")
    print()
    print(f"{'scenario':<32} {'metric':<32} {'value':>14}")
    for result in results:
        for metric, value in result["metrics"].items():
            shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}"
            print(f"{result['name']:<32} {metric:<32} {shown:>14}")
    missed = 0
    if any(result["targets"] for result in results):
        print(f"\n{'scenario':<32} target")
        for result in results:
            for target in result["targets"]:
                missed += not target["met"]
                print(f"{result['name']:<32} {'met   ' if target['met'] else 'MISSED'} {target['what']}")
    print(f"\nwritten to {RESULTS}")
    if missed:
        print(f"{missed} target(s) missed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

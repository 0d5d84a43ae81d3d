"""Singer taps as the peers of the `*_vs_tap` benchmarks: each in its own virtual environment, run as a process.

The taps pin versions that conflict with Nudge's (tap-quickbooks 2.5.0: singer-python 6.1.1, requests-oauthlib
2.0.0; tap-xero 2.6.0: singer-python 5.18.0, backoff 1.10), so the bench makes one venv per tap under the
git-ignored `bench/.taps/<tap>/` with `python -m venv` and pip, and reuses it while every pinned distribution is
installed at its pinned version. Each tap runs through a wrapper of this folder (`run_tap_<name>.py`), executed by
the tap venv's python, which points the tap's module-level base-URL globals at the emulator and calls the tap's
own main; the bench counts the RECORD messages the tap writes to stdout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench.targets import Target, at_most
from providers._emulator.kit import EmulatorKit

HERE = Path(__file__).resolve().parent
TAPS_HOME = HERE.parent / ".taps"  # bench/.taps, git-ignored, removed by `make clean`
LOG_TAIL = 2000  # characters of a failed tap's log shown in the error


@dataclass(frozen=True)
class TapSpec:
    """One tap: its distribution pinned, the extra pins it needs beside it, and the wrapper that runs it."""

    name: str  # the distribution, e.g. "tap-quickbooks"
    version: str
    extra_pins: tuple[tuple[str, str], ...] = ()  # (distribution, version) the tap needs but does not declare
    wrapper: str = ""  # file name in bench/taps

    @property
    def home(self) -> Path:
        return TAPS_HOME / self.name

    @property
    def python(self) -> Path:
        return self.home / "bin" / "python"

    @property
    def pins(self) -> tuple[tuple[str, str], ...]:
        return ((self.name, self.version), *self.extra_pins)


def _installed_as_pinned(spec: TapSpec) -> bool:
    """True when the venv exists and holds every pinned distribution at its version."""
    if not spec.python.exists():
        return False
    probe = (
        "import importlib.metadata as m, json, sys\n"
        "pins = json.loads(sys.argv[1])\n"
        "def version(name):\n"
        "    try:\n"
        "        return m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        return ''\n"
        "sys.exit(0 if all(version(name) == wanted for name, wanted in pins) else 1)\n"
    )
    answer = subprocess.run([str(spec.python), "-c", probe, json.dumps(spec.pins)], capture_output=True, check=False)
    return answer.returncode == 0


def ensure_venv(spec: TapSpec) -> Path:
    """The python of `spec`'s venv, created (or re-created when a pin differs) with `python -m venv` and pip."""
    if _installed_as_pinned(spec):
        return spec.python
    print(f"  creating {spec.home} with {spec.name}=={spec.version} (pip, from PyPI) ...", flush=True)
    shutil.rmtree(spec.home, ignore_errors=True)
    spec.home.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(spec.home)], check=True)
    requirements = [f"{name}=={version}" for name, version in spec.pins]
    installed = subprocess.run(
        [str(spec.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
        capture_output=True,
        text=True,
        check=False,
    )
    if installed.returncode != 0 or not _installed_as_pinned(spec):
        shutil.rmtree(spec.home, ignore_errors=True)  # a half-made venv would be reused next time
        raise RuntimeError(
            f"could not install {' '.join(requirements)} into {spec.home} (this scenario needs PyPI the first time; "
            f"later runs reuse the venv): {installed.stderr[-LOG_TAIL:]}"
        )
    return spec.python


def record_prefix(stream: str) -> bytes:
    """How singer-python starts the line of a RECORD message of `stream` (`json.dumps` of a dict, 'type' first)."""
    return json.dumps({"type": "RECORD", "stream": stream})[:-1].encode()


def count_records(lines: Iterable[bytes], stream: str) -> int:
    """RECORD messages of `stream` among the tap's stdout lines (a prefix test: the bench must not slow the tap)."""
    prefix = record_prefix(stream)
    return sum(1 for line in lines if line.startswith(prefix))


@dataclass(frozen=True)
class TapRun:
    """One tap process: how many records of the stream it wrote and its wall time from spawn to exit."""

    records: int
    wall_s: float


def _failed(spec: TapSpec, code: int, log: Path) -> RuntimeError:
    return RuntimeError(f"{spec.name} exited {code}; the end of its log ({log}):\n{log.read_text()[-LOG_TAIL:]}")


def run_tap(spec: TapSpec, emulator_url: str, arguments: list[str], *, stream: str, workdir: Path) -> TapRun:
    """Run the tap's wrapper against `emulator_url` with the tap's `arguments`, counting `stream`'s records.

    Wall time runs from spawning the process to its exit (interpreter start and imports included, as a data
    engineer running the tap waits for them too); the tap's log (stderr) goes to `workdir/<tap>.log`.
    """
    log = workdir / f"{spec.name}.log"
    command = [str(spec.python), str(HERE / spec.wrapper), emulator_url, *arguments]
    started = time.perf_counter()
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log_file, cwd=workdir)
        stdout: IO[bytes] = process.stdout  # type: ignore[assignment]  # set by stdout=PIPE
        records = count_records(stdout, stream)
        code = process.wait()
    wall = time.perf_counter() - started
    if code != 0:
        raise _failed(spec, code, log)
    return TapRun(records, wall)


def discover(spec: TapSpec, emulator_url: str, config: Path, workdir: Path) -> dict[str, Any]:
    """The tap's own catalog (`--discover`), as a data engineer makes it once before syncing."""
    log = workdir / f"{spec.name}-discover.log"
    command = [str(spec.python), str(HERE / spec.wrapper), emulator_url, "--config", str(config), "--discover"]
    with log.open("wb") as log_file:
        answer = subprocess.run(command, stdout=subprocess.PIPE, stderr=log_file, cwd=workdir, check=False)
    if answer.returncode != 0:
        raise _failed(spec, answer.returncode, log)
    catalog: dict[str, Any] = json.loads(answer.stdout)
    return catalog


def select_only(catalog: dict[str, Any], stream: str) -> dict[str, Any]:
    """`catalog` with `stream` alone, selected (Singer: `selected` in the stream's top-level metadata)."""
    chosen = [entry for entry in catalog["streams"] if entry["tap_stream_id"] == stream]
    if not chosen:
        raise RuntimeError(f"the tap's catalog has no stream {stream!r}")
    for entry in chosen:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = True
    return {"streams": chosen}


def best(runs: list[float]) -> float:
    """The fastest of interleaved runs: noise from the shared machine only ever adds time."""
    return min(runs)


def peer_targets(metrics: dict[str, float], *, speedup: float = 5.0) -> list[Target]:
    """Issue 13's figures against a tap: no more data calls than the tap, and `speedup` times faster."""
    ratio = metrics["tap_wall_s"] / metrics["wall_s"]
    return [
        at_most(metrics, "calls", metrics["tap_calls"]),
        Target(
            f"tap_wall_s >= {speedup:g} x wall_s (is {ratio:.1f} x)",
            metrics["tap_wall_s"] >= speedup * metrics["wall_s"],
        ),
    ]


Side = tuple[int, float, int, int]  # one run of one side: (invoices, wall seconds, data calls, money objects)


def race(
    spec: TapSpec,
    kit: EmulatorKit,
    tenant: str,
    ours: Callable[[], tuple[int, int]],
    write_config: Callable[[Path], Path],
    *,
    stream: str,
    rounds: int,
    latency_s: float,
) -> tuple[list[Side], list[Side]]:
    """Interleaved runs (ours, tap, ours, tap...) against one emulator: `ours` returns (invoices, money objects);
    the tap syncs `stream` alone with the config `write_config` wrote into a temporary folder."""

    def timed_ours() -> Side:
        kit.clear_calls()
        started = time.perf_counter()
        invoices, money = ours()
        return invoices, time.perf_counter() - started, kit.data_calls(tenant), money

    with tempfile.TemporaryDirectory(prefix="nudge-bench-tap-") as folder:
        workdir = Path(folder)
        config = write_config(workdir)
        catalog = workdir / "catalog.json"
        catalog.write_text(json.dumps(select_only(discover(spec, kit.url, config, workdir), stream)))
        kit.set_latency(latency_s)

        def tap() -> Side:
            kit.clear_calls()
            arguments = ["--config", str(config), "--catalog", str(catalog)]
            done = run_tap(spec, kit.url, arguments, stream=stream, workdir=workdir)
            return done.records, done.wall_s, kit.data_calls(tenant), 0

        mine: list[Side] = []
        theirs: list[Side] = []
        for _ in range(rounds):
            mine.append(timed_ours())
            theirs.append(tap())
    return mine, theirs


def peer_metrics(mine: list[Side], theirs: list[Side], *, invoices: int, money: int) -> dict[str, float]:
    """Each side's best wall time and most calls; every run must have brought every invoice (and ours the money)."""
    if any(count != invoices for count, _, _, _ in mine + theirs):
        raise RuntimeError(f"invoices synced (ours, tap): {[m[0] for m in mine]}, {[t[0] for t in theirs]}")
    if any(read != money for _, _, _, read in mine):
        raise RuntimeError(f"money objects read by ours: {[m[3] for m in mine]}, expected {money}")
    return {
        "calls": float(max(calls for _, _, calls, _ in mine)),
        "wall_s": round(best([wall for _, wall, _, _ in mine]), 3),
        "tap_calls": float(max(calls for _, _, calls, _ in theirs)),
        "tap_wall_s": round(best([wall for _, wall, _, _ in theirs]), 3),
        "payments": float(min(read for _, _, _, read in mine)),
    }


def write_tap_config(folder: Path, tenant_field: str, tenant: str, client: tuple[str, str], refresh_token: str) -> Path:
    """The tap's config.json: the tenant under the tap's own key (`realm_id`, `tenant_id`), the app's client id and
    secret, a refresh token the tap exchanges at start."""
    config = folder / "config.json"
    client_id, client_secret = client
    config.write_text(
        json.dumps(
            {
                "start_date": "2000-01-01T00:00:00Z",
                "user_agent": "nudge-bench",
                tenant_field: tenant,
                "client_id": client_id,
                "client_secret": client_secret,
                "refresh_token": refresh_token,
            }
        )
    )
    return config

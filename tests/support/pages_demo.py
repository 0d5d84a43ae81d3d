"""The demo world the page tests browse (tests/web/pages/conftest.py): `nudge demo` over three weeks, run once per test
session into the session's temporary root and shared by the xdist workers.

The first worker to need it would run it while the other waits on the lock, so the controller starts it in a process
of its own when the session begins (tests/conftest.py, `start_in_background`): by the time the page tests run it is
done, or nearly. Whoever takes the lock first runs it; the others find it done.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

DEMO_START = datetime(2026, 11, 9, tzinfo=UTC)  # a Monday; three weeks end on Monday 30 November
DEMO_DAYS = 21
PAGES = Path(__file__).resolve().parents[1] / "web" / "pages"


def demo_folder(shared: Path) -> Path:
    """The demo's folder under the session's temporary root `shared`, run first if no one has yet."""
    out = shared / "pages-demo" / "demo-out"
    done = shared / "pages-demo" / "done"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(shared / "pages-demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                from providers._emulator.demo import run_demo

                if out.exists():  # a run that failed half-way (its log is beside it)
                    import shutil

                    shutil.rmtree(out)
                lines: list[str] = []
                run_demo(days=DEMO_DAYS, start=DEMO_START, out=out, echo=lines.append)
                printed_lines(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
                done.write_text("ok\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return out


def printed_lines(out: Path) -> Path:
    """Where the demo's printed lines are kept, beside its folder `out` (the world's tests read them)."""
    return out.parent / "demo-printed.txt"


def wanted(args: list[str], rootdir: Path, markexpr: str, keyword: str) -> bool:
    """Whether a session over these paths may run the page tests: not with a `-k`, nor with a `-m` that names
    neither web nor browser (a wasted demo costs a background process; a missing one, a wait)."""
    if keyword or (markexpr and "web" not in markexpr and "browser" not in markexpr):
        return False
    for arg in args or ["tests"]:
        path = (rootdir / arg.split("::")[0]).resolve()
        if path == PAGES or PAGES.is_relative_to(path) or path.is_relative_to(PAGES):
            return True
    return False


def start_in_background(shared: Path) -> subprocess.Popen[bytes]:
    """Run `demo_folder(shared)` in a process of its own (output in pages-demo.log beside it)."""
    shared.mkdir(parents=True, exist_ok=True)
    script = f"import pathlib, tests.support.pages_demo as demo\ndemo.demo_folder(pathlib.Path({str(shared)!r}))"
    with open(shared / "pages-demo.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-c", script], stdout=log, stderr=subprocess.STDOUT, cwd=PAGES.parents[2]
        )

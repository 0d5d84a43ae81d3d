"""`nudge dev`'s process handling on stand-in children: prefixed lines, everything stopped on SIGINT/SIGTERM or
when one child exits, SIGKILL for a child that ignores SIGTERM, and nothing left running."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from connector.config import COOKIE_SECURE_VARIABLE, load_settings
from providers._emulator.demo import PROFILES, seed_demo_company
from providers._emulator.dev import INSECURE_COOKIES, NUDGE_MAIN, WEBHOOK_KEY_VARIABLE, Child, DevRun, plan
from providers._emulator.kit import emulator_kit

PY = sys.executable


def _child(name: str, code: str) -> Child:
    return Child(name, [PY, "-c", code])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def _run_until(run: DevRun, out: io.StringIO, marker: str, then: signal.Signals | None) -> int:
    """Run `run`; once `marker` was printed, send `then` (Ctrl-C, a kill) to this process, which `run` handles."""
    # Signal handlers are installed from the main thread only: `run` runs here, the signal comes from a thread.
    if then is None:
        return run.run()

    def later() -> None:
        deadline = time.monotonic() + 30
        while marker not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), then)

    thread = threading.Thread(target=later, daemon=True)
    thread.start()
    code = run.run()
    thread.join(timeout=5)
    return code


LOOP = "import time\nprint('ready', flush=True)\nwhile True: time.sleep(0.1)"
STUBBORN = (
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\n"
    "while True: time.sleep(0.1)"
)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_every_child_and_their_lines_are_prefixed(stop: signal.Signals) -> None:
    out = io.StringIO()
    run = DevRun([_child("web", LOOP), _child("worker", LOOP)], stop_timeout=5, out=out)
    pids: list[int] = []
    original = run._start

    def remember(child: Child) -> None:
        original(child)
        pids.append(run.processes[child.name].pid)

    run._start = remember  # type: ignore[method-assign]
    code = _run_until(run, out, "[worker] ready", stop)
    assert code == 0
    text = out.getvalue()
    assert f"[dev]    {INSECURE_COOKIES}" in text
    assert "[web]    ready" in text
    assert "[worker] ready" in text
    assert text.rstrip().endswith("[dev]    stopped")
    assert len(pids) == 2
    assert not any(_alive(pid) for pid in pids)


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    out = io.StringIO()
    run = DevRun([_child("web", STUBBORN), _child("worker", LOOP)], stop_timeout=1, out=out)
    code = _run_until(run, out, "[web]    ready", signal.SIGINT)
    assert code == 0
    assert "web did not stop within 1 s: killing it" in out.getvalue()
    assert run.processes == {}


def test_one_child_exiting_stops_the_others_with_status_1() -> None:
    out = io.StringIO()
    run = DevRun([_child("web", "print('bye')\nraise SystemExit(3)"), _child("worker", LOOP)], stop_timeout=5, out=out)
    assert _run_until(run, out, "", None) == 1
    assert "[dev]    web exited with status 3: stopping the others" in out.getvalue()


def test_plan_starts_the_configured_emulators_the_web_app_and_a_worker(tmp_path: Path) -> None:
    config = tmp_path / "nudge.yaml"
    config.write_text(
        "mode: development\nweb:\n  base_url: http://127.0.0.1:5001\nproviders:\n"
        "  quickbooks:\n    client_id: a\n    client_secret: b\n    webhook_key: verifier\n"
        "    environment: http://127.0.0.1:8766/.well-known/openid_configuration\n    api_base: http://127.0.0.1:8766/v3\n"
        "  xero:\n    client_id: a\n    client_secret: b\n    api_base: https://api.xero.com/api.xro/2.0\n",
        encoding="utf-8",
    )
    children = plan(load_settings(str(config), environ={}), str(config))
    assert [child.name for child in children] == ["quickbooks", "web", "worker"]  # Xero is the real one here
    quickbooks, web, _ = children
    assert quickbooks.argv[:3] == [sys.executable, "-c", NUDGE_MAIN]
    assert quickbooks.argv[3:] == [
        "emulator",
        "quickbooks",
        "--port",
        "8766",
        "--seed",
        "demo",
        "--webhook-url",
        "http://127.0.0.1:5001/webhooks/quickbooks",
    ]
    assert quickbooks.env[WEBHOOK_KEY_VARIABLE] == "verifier"  # not on the command line
    assert web.env[COOKIE_SECURE_VARIABLE] == "false"
    assert all(child.env["NUDGE_CONFIG"] == str(config) for child in children)


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_the_demo_seed_gives_each_emulator_its_company_with_invoices_around_today(provider: str) -> None:
    kit = emulator_kit(provider)
    with kit:
        tenant, customers, invoices = seed_demo_company(kit)
        assert tenant
        assert customers == PROFILES[provider].customers
        assert invoices == PROFILES[provider].invoices
        assert kit.data_calls() == 0  # seeded in the emulator's store, not through its API


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_children_do_not_outlive_a_killed_nudge_dev() -> None:
    script = (
        "import sys\nfrom providers._emulator.dev import Child, DevRun\n"
        f"loop = {LOOP!r}\n"
        "sys.exit(DevRun([Child('web', [sys.executable, '-c', loop]), Child('worker', [sys.executable, '-c', loop])]"
        ").run())\n"
    )
    parent = subprocess.Popen(
        [PY, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2]
    )
    assert parent.stdout is not None
    pids: list[int] = []
    for line in parent.stdout:
        pids += [int(pid) for pid in re.findall(r"\(pid (\d+)\)", line)]
        if "all started" in line:
            break
    assert len(pids) == 2
    parent.kill()  # SIGKILL: no chance to stop its children itself
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)

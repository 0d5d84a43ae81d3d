"""`nudge dev`: the bundled emulators, the web app and a worker as child processes of one terminal.

Why here and not in connector: the command starts the emulators, which a production install does not have, and
connector may not import providers or web. So it plugs into `nudge` like `demo` and `emulator` do (the
`nudge.commands` entry point) and is absent from the production wheel with the rest of providers/_emulator.

Each child is `nudge <command>` run by this interpreter (`sys.executable -c`), in its own process group;
its output (stdout and stderr) comes back line by line with its name in front (`[quickbooks]`, `[xero]`,
`[web]`, `[worker]`). SIGINT (Ctrl-C) or SIGTERM stops them all: SIGTERM to each group, a wait, then SIGKILL
for any still running. On Linux each child also gets SIGTERM should `nudge dev` itself be killed outright, so
no child outlives it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO
from urllib.parse import urlsplit

from connector.config import COOKIE_SECURE_VARIABLE, Settings
from providers._emulator.kit import emulator_names

WEBHOOK_KEY_VARIABLE = "NUDGE_EMULATOR_WEBHOOK_KEY"  # the key travels in the environment, not on a command line
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
INSECURE_COOKIES = "cookies are not marked Secure: local plain-http development only"
_PR_SET_PDEATHSIG = 1
# `nudge` in this interpreter (what the console script does), without relying on the script being on PATH.
NUDGE_MAIN = "import sys; from connector.cli import entry; sys.argv[0] = 'nudge'; entry()"


@dataclass(frozen=True)
class Child:
    """One process `nudge dev` runs: its log prefix, command line and the environment it adds."""

    name: str
    argv: list[str]
    env: Mapping[str, str] = field(default_factory=dict)


def plan(settings: Settings, config: str | None) -> list[Child]:
    """The emulators the config points at (enabled providers on a loopback URL), then the web app and a worker."""
    nudge = [sys.executable, "-c", NUDGE_MAIN]
    common = {"NUDGE_CONFIG": os.path.abspath(config)} if config else {}
    children: list[Child] = []
    installed = emulator_names()
    for key, provider in settings.providers.items():
        port = _local_port(provider.api_base or provider.environment or provider.identity_base)
        if key not in installed or port is None:
            continue
        webhook = {WEBHOOK_KEY_VARIABLE: provider.webhook_key} if provider.webhook_key else {}
        argv = [*nudge, "emulator", key, "--port", str(port), "--seed", "demo"]
        if provider.webhook_key:
            argv += ["--webhook-url", f"{settings.web.base_url}/webhooks/{key}"]
        children.append(Child(key, argv, {**common, **webhook}))
    children.append(Child("web", [*nudge, "serve"], {**common, COOKIE_SECURE_VARIABLE: "false"}))
    children.append(Child("worker", [*nudge, "worker"], common))
    return children


def _local_port(url: str) -> int | None:
    """The port of a loopback http URL (an emulator's), else None (a real provider's host)."""
    if not url.startswith("http://"):
        return None
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK:
        return None
    return parts.port or 80


def _parent_death_signal() -> Callable[[], None] | None:
    """Linux: a function for the child, between fork and exec, that makes it get SIGTERM when `nudge dev` dies,
    even by SIGKILL (prctl PR_SET_PDEATHSIG). Looked up here, in the parent: the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def die_with_parent() -> None:  # pragma: no cover - runs in the child
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return die_with_parent


class DevRun:
    """Starts the children, relays their output with prefixes and stops them all on a signal or a child's exit."""

    def __init__(self, children: list[Child], *, stop_timeout: float = 10, out: IO[str] | None = None) -> None:
        self.children = children
        self.stop_timeout = stop_timeout
        self.out = out or sys.stdout
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self._print_lock = threading.Lock()
        self._readers: list[threading.Thread] = []
        self._die_with_parent = _parent_death_signal()

    def say(self, name: str, line: str) -> None:
        width = max(len(child.name) for child in self.children) + 2
        with self._print_lock:
            self.out.write(f"{f'[{name}]':<{width}} {line}\n")
            self.out.flush()

    def run(self) -> int:
        """Until SIGINT/SIGTERM (exit 0) or until a child exits on its own (exit 1): then stop every child."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.say("dev", INSECURE_COOKIES)
            for child in self.children:
                self._start(child)
            self.say("dev", "all started; Ctrl-C stops them all")
            failed = self._watch()
        finally:
            self.stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if failed else 0

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stop.set()

    def _start(self, child: Child) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **child.env}
        # Our own interpreter running our own `nudge` commands: no untrusted input reaches the command line.
        process = subprocess.Popen(  # noqa: S603
            child.argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches `nudge dev` alone; it stops the children in order
            preexec_fn=self._die_with_parent,  # sets the parent-death signal only
        )
        self.processes[child.name] = process
        shown = ["nudge", *child.argv[3:]] if child.argv[1:3] == ["-c", NUDGE_MAIN] else child.argv
        self.say("dev", f"started {child.name} (pid {process.pid}): {' '.join(shown)}")
        reader = threading.Thread(target=self._relay, args=(child.name, process), name=f"dev-{child.name}", daemon=True)
        reader.start()
        self._readers.append(reader)

    def _relay(self, name: str, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            self.say(name, raw.decode(errors="replace").rstrip())

    def _watch(self) -> bool:
        """Wait for a stop signal; True when a child exited on its own first."""
        while not self._stop.wait(0.2):
            for name, process in self.processes.items():
                code = process.poll()
                if code is not None:
                    self.say("dev", f"{name} exited with status {code}: stopping the others")
                    return True
        self.say("dev", "stopping")
        return False

    def stop_all(self) -> None:
        """SIGTERM to every child's process group, wait up to stop_timeout, then SIGKILL what is left."""
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for name, process in self.processes.items():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say("dev", f"{name} did not stop within {self.stop_timeout:g} s: killing it")
        self._signal_all(signal.SIGKILL)
        for process in self.processes.values():
            process.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        for process in self.processes.values():
            if process.stdout is not None:
                process.stdout.close()
        if self.processes:
            self.say("dev", "stopped")
        self.processes = {}

    def _signal_all(self, sig: signal.Signals) -> None:
        for process in self.processes.values():
            _signal_group(process, sig)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """`sig` to the child's process group (itself and anything it started), unless it is gone already."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)

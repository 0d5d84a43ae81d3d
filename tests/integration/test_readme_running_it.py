"""The README's "Running it", line by line, as a newcomer runs it: a fresh HOME, real processes, no hand edits.

The section's first shell block runs in one bash session started in the checkout (`make venv` is a no-op in the
test's own environment); its `nudge dev` line, which runs until Ctrl-C, is started in the background. The
browser steps the prose describes (the login page's "Sign up with Intuit", its button, the QuickBooks emulator's
consent page with Olivia Owner as the Intuit user and Hudson Valley Design Co. as the company, Connect) are done
with `requests`, exactly the links a browser follows and the forms it posts. The second block runs in a second
shell with the virtual environment activated, as the prose says. At the end `nudge dev` gets SIGINT (Ctrl-C) and
every process it started must be gone.

The only thing set from outside is `NUDGE_PORT_OFFSET`, which the README documents, so the test can run next to
anything already listening on 5000, 8765 or 8402.
"""

from __future__ import annotations

import html
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
INTUIT_USER = "Olivia Owner &lt;owner@intuit-demo.example&gt;"  # the consent page's first Intuit user, as it shows
COMPANY = "Hudson Valley Design Co."
PORTS = (5000, 8765, 8402)
_TOKEN = re.compile(r'name="csrf_token"[^>]*\bvalue="([^"]+)"')
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')

pytestmark = pytest.mark.skipif(not (VENV_BIN / "nudge").exists(), reason="needs the installed `nudge` command")


def running_it_blocks(text: str) -> list[list[str]]:
    """The ```sh blocks of the "## Running it" section: their command lines (comments and blank lines dropped)."""
    section = text.split("\n## Running it\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return [
        [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")] for block in blocks
    ]


def _offset() -> int:
    """An offset at which the three documented ports are all free."""
    for offset in range(20000, 40000, 97):
        if all(_free(port + offset) for port in PORTS):
            return offset
    pytest.skip("no free set of ports")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        status = Path(f"/proc/{pid}/stat")
        if status.exists() and status.read_text().split(") ", 1)[1].startswith("Z"):
            continue  # a zombie already exited (not our child to reap)
        alive.append(pid)
    return alive


class Newcomer:
    """The shell side: a HOME of its own, the README's lines, the output of `nudge dev`."""

    def __init__(self, home: Path, offset: int) -> None:
        self.home = home
        self.offset = offset
        self.dev_log = home / "nudge-dev.log"
        self.dev_pid = 0
        base = {k: v for k, v in os.environ.items() if not k.startswith(("NUDGE_", "VIRTUAL_ENV", "QBO_", "XERO_"))}
        self.env = {**base, "HOME": str(home), "NUDGE_PORT_OFFSET": str(offset)}

    def run_first_block(self, lines: list[str]) -> subprocess.CompletedProcess[str]:
        script = ["set -euo pipefail", f"cd {ROOT}"]
        for line in lines:
            if re.match(r"^nudge dev\b", line):  # runs until Ctrl-C: in the background, its pid kept
                command = line.split("#", 1)[0].strip()
                script.append(f"{command} > {self.dev_log} 2>&1 &")
                script.append(f"echo $! > {self.home / 'nudge-dev.pid'}")
            else:
                script.append(line)
        answer = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=300,
        )
        pid_file = self.home / "nudge-dev.pid"
        if pid_file.exists():
            self.dev_pid = int(pid_file.read_text())
        return answer

    def run_second_block(self, lines: list[str]) -> subprocess.CompletedProcess[str]:
        activated = {**self.env, "VIRTUAL_ENV": str(VENV_BIN.parent), "PATH": f"{VENV_BIN}:{self.env['PATH']}"}
        return subprocess.run(
            ["bash", "-c", "\n".join(["set -euo pipefail", *lines])],
            env=activated,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def dev_output(self) -> str:
        return self.dev_log.read_text(errors="replace") if self.dev_log.exists() else ""

    def started_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"started \w+ \(pid (\d+)\)", self.dev_output())]

    def stop(self) -> int | None:
        """Ctrl-C: SIGINT to `nudge dev`, then its exit (None if it did not exit within 30 s)."""
        if not self.dev_pid:
            return None
        os.kill(self.dev_pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not _pids_alive([self.dev_pid]):
                return 0
            time.sleep(0.2)
        return None


@pytest.fixture
def newcomer(tmp_path: Path) -> Iterator[Newcomer]:
    home = tmp_path / "home"
    home.mkdir()
    person = Newcomer(home, _offset())
    yield person
    if person.dev_pid and _pids_alive([person.dev_pid]):
        os.kill(person.dev_pid, signal.SIGKILL)  # a failed test: leave nothing behind
    for pid in _pids_alive(person.started_pids()):
        os.kill(pid, signal.SIGKILL)


def _wait_for(url: str, seconds: float, log: Newcomer) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} never answered; nudge dev said:\n{log.dev_output()}")


def _token(page: str) -> str:
    match = _TOKEN.search(page)
    assert match, page[:2000]
    return match.group(1)


def _follow(browser: requests.Session, page: requests.Response, text: str) -> requests.Response:
    """Click the link whose text is `text` on `page`."""
    link = re.search(rf'<a href="([^"]+)">{re.escape(text)}</a>', page.text)
    assert link, page.text[:3000]
    return browser.get(urljoin(page.url, html.unescape(link.group(1))), timeout=10)


def _sign_up_with_intuit(browser: requests.Session, web: str) -> requests.Response:
    """The login page's "Sign up with Intuit", its button, the emulator's consent page (the Intuit user left as it
    is, the company picked), Connect: the page Nudge lands on."""
    signup = _follow(browser, browser.get(f"{web}/", timeout=10), "Sign up with Intuit")
    form = re.search(r'<form method="post" action="([^"]*/signup/quickbooks)"', signup.text)
    assert form, signup.text[:3000]
    assert "Sign up with Intuit</button>" in signup.text, signup.text[:3000]
    answer = browser.post(urljoin(signup.url, form.group(1)), data={"csrf_token": _token(signup.text)}, timeout=10)
    refresh = re.search(r'http-equiv="refresh" content="0; url=([^"]+)"', answer.text)
    assert refresh, answer.text[:2000]
    consent = browser.get(html.unescape(refresh.group(1)), timeout=10)
    user = re.search(rf'<option value="([^"]+)" selected>{re.escape(INTUIT_USER)}</option>', consent.text)
    assert user, consent.text[:3000]
    realm = re.search(rf'name="realm" value="(\d+)"[^>]*> {re.escape(COMPANY)}', consent.text)
    assert realm, consent.text[:3000]
    fields = {name: html.unescape(value) for name, value in _HIDDEN.findall(consent.text)}
    decided = browser.post(
        urljoin(consent.url, "/connect/oauth2/decide"),
        data={**fields, "user": user.group(1), "realm": realm.group(1), "decision": "approve"},
        timeout=10,
    )
    assert decided.status_code == 200, decided.text[:2000]
    return decided


def _synced_invoices(browser: requests.Session, web: str, org_url: str, log: Newcomer) -> str:
    """The client's invoice list once the worker has synced it."""
    deadline = time.monotonic() + 40
    page = ""
    while time.monotonic() < deadline:
        client = re.search(r'href="(/orgs/\d+/clients/\d+)/?[^"]*"', browser.get(org_url, timeout=10).text)
        if client:
            page = browser.get(f"{web}{client.group(1)}/invoices", timeout=10).text
            if re.search(r"HV-1\d{3}", page):
                return page
        time.sleep(1)
    pytest.fail(f"no synced invoice in the list:\n{page[:3000]}\nnudge dev said:\n{log.dev_output()[-5000:]}")


@pytest.mark.timeout(240)
def test_running_it_works_exactly_as_written(newcomer: Newcomer) -> None:
    blocks = running_it_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) == 2, blocks
    first, second = blocks
    assert any(line.startswith("nudge init --emulators") for line in first)
    assert any(line.startswith("nudge dev") for line in first)

    shell = newcomer.run_first_block(first)
    assert shell.returncode == 0, shell.stdout + shell.stderr
    assert "wrote" in shell.stdout
    folder = newcomer.home / "nudge-local"
    assert (folder / ".env").stat().st_mode & 0o777 == 0o600

    web = f"http://127.0.0.1:{5000 + newcomer.offset}"
    # What a person sees before opening the browser: all four started (the web app may answer before the emulators).
    _wait_for(f"{web}/login", 60, newcomer)
    _wait_for(f"http://127.0.0.1:{8765 + newcomer.offset}/.well-known/openid_configuration", 60, newcomer)
    _wait_for(f"http://127.0.0.1:{8402 + newcomer.offset}/.well-known/openid-configuration", 60, newcomer)
    output = newcomer.dev_output()
    assert "cookies are not marked Secure: local plain-http development only" in output
    for name in ("[quickbooks]", "[xero]", "[web]", "[worker]"):
        assert name in output, output

    browser = requests.Session()
    landed = _sign_up_with_intuit(browser, web)
    assert re.search(r"/orgs/\d+/$", landed.url), landed.url  # signed in, on the new organization
    assert f"Welcome to Nudge. Created {COMPANY}. Connected {COMPANY}" in html.unescape(landed.text)
    assert 'Signed in as Olivia Owner · role: <span class="role">owner</span>' in html.unescape(landed.text)
    invoices = _synced_invoices(browser, web, landed.url, newcomer)
    assert len(set(re.findall(r"HV-1\d{3}", invoices))) >= 10

    terminal = newcomer.run_second_block(second)
    assert terminal.returncode == 0, terminal.stdout + terminal.stderr
    assert "Hudson Valley Design Co." in terminal.stdout
    assert re.search(r"HV-1\d{3}", terminal.stdout), terminal.stdout  # the preview names the invoices it would chase

    children = newcomer.started_pids()
    assert len(children) == 4, newcomer.dev_output()
    assert newcomer.stop() == 0, newcomer.dev_output()
    assert _pids_alive(children) == [], "nudge dev left a child running"
    assert "[dev]" in newcomer.dev_output().rsplit("stopping", 1)[-1]

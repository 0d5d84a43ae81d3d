"""A real IMAP server on loopback for the reply tests: Debian's dovecot-imapd with its own temporary config.

`dovecot_server()` starts `dovecot -F` listening on 127.0.0.1 on a free port, one passwd-file user, maildir
under `tmp`, no TLS, plaintext login allowed, run/state directories under `tmp`; it yields the port, user and
password and stops the server after. When dovecot is missing the tests are skipped with the reason, unless
NUDGE_REQUIRE_IMAP=1 (set by .ci/run), which fails them instead (`make imap` installs it as root).
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


@dataclass(frozen=True)
class ImapAccount:
    host: str
    port: int
    username: str
    password: str


def require_dovecot() -> None:
    """Skip (or fail under NUDGE_REQUIRE_IMAP=1) when dovecot is not installed."""
    if os.path.exists(DOVECOT):
        return
    reason = "dovecot is not installed (make imap installs dovecot-imapd as root): the IMAP tests are skipped"
    if os.environ.get("NUDGE_REQUIRE_IMAP") == "1":
        pytest.fail(reason.replace("are skipped", "are required (NUDGE_REQUIRE_IMAP=1)"))
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _mail_user() -> tuple[int, int, str, str]:
    """The uid/gid mail is stored as, and dovecot's internal and login users (root may not own mail)."""
    if os.getuid() != 0:
        me = pwd.getpwuid(os.getuid())
        return me.pw_uid, me.pw_gid, me.pw_name, me.pw_name
    for internal, login in (("dovecot", "dovenull"), ("nobody", "nobody")):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(internal), pwd.getpwnam(login)
            nobody = pwd.getpwnam("nobody")
            return nobody.pw_uid, nobody.pw_gid, internal, login
    raise RuntimeError("no unprivileged user to run dovecot's processes")


@contextlib.contextmanager
def dovecot_server(username: str = "replies", password: str = "imap-test-secret") -> Iterator[ImapAccount]:
    require_dovecot()
    # Its own directory directly under /tmp: dovecot's unprivileged processes must traverse every parent
    # (pytest's tmp_path is under a 0700 directory).
    tmp = Path(tempfile.mkdtemp(prefix="nudge-dovecot-"))
    tmp.chmod(0o755)
    uid, gid, internal, login = _mail_user()
    port = _free_port()
    mail = tmp / "mail"
    (tmp / "run").mkdir()
    (tmp / "state").mkdir()
    mail.mkdir()
    os.chown(mail, uid, gid)
    (tmp / "passwd").write_text(f"{username}:{{PLAIN}}{password}:{uid}:{gid}::{mail}/{username}\n")
    config = tmp / "dovecot.conf"
    config.write_text(
        f"""
protocols = imap
listen = 127.0.0.1
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
mail_location = maildir:{mail}/%u
passdb {{
  driver = passwd-file
  args = {tmp}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
    )
    output = (tmp / "dovecot.out").open("wb")
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(config)], stdout=output, stderr=subprocess.STDOUT)
    try:
        account = ImapAccount("127.0.0.1", port, username, password)
        _wait_ready(account, process, tmp)
        yield account
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_ready(account: ImapAccount, process: subprocess.Popen[bytes], tmp: Path) -> None:
    for _ in range(200):
        if process.poll() is not None:
            output = (tmp / "dovecot.out").read_text(errors="replace")
            log = (tmp / "dovecot.log").read_text() if (tmp / "dovecot.log").exists() else ""
            raise RuntimeError(f"dovecot exited: {output}\n{log}")
        with contextlib.suppress(OSError), socket.create_connection((account.host, account.port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError("dovecot did not start listening")


def append(account: ImapAccount, raw: bytes, folder: str = "INBOX") -> None:
    """Deliver `raw` into the mailbox as an unseen message (IMAP APPEND)."""
    client = imaplib.IMAP4(account.host, account.port, timeout=10)
    try:
        client.login(account.username, account.password)
        status, detail = client.append(folder, "", None, raw)
        assert status == "OK", detail
    finally:
        client.logout()


def unseen(account: ImapAccount, folder: str = "INBOX") -> int:
    """How many messages of the folder are not marked \\Seen."""
    client = imaplib.IMAP4(account.host, account.port, timeout=10)
    try:
        client.login(account.username, account.password)
        client.select(folder)
        status, found = client.search(None, "UNSEEN")
        return len(found[0].split()) if status == "OK" and found and found[0] else 0
    finally:
        client.logout()

"""The CLI end to end, as a user runs it: init, users create, serve → a login page."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from connector.vault.keyring import generate_key
from tests.support.net import free_port

NUDGE = str(Path(sys.executable).parent / "nudge")


def _env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "nudge.yaml"
    config.write_text("instance_path: inst\nweb:\n  session_cookie_secure: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    env.update(NUDGE_CONFIG=str(config), NUDGE_VAULT_KEY=generate_key(), NUDGE_SECRET_KEY="s" * 40)
    return env


def _run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([NUDGE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)


def test_init_users_create_serve_gives_a_login_page(tmp_path: Path) -> None:
    env = _env(tmp_path)
    result = _run(["init"], env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "inst" / "nudge.sqlite3").exists()
    result = _run(
        ["users", "create", "--email", "owner@example.com", "--organization", "Acme Books"],
        env,
        stdin="a long enough password\na long enough password\n",
    )
    assert result.returncode == 0, result.stderr
    assert "created owner@example.com (owner of Acme Books" in result.stdout
    duplicate = _run(
        [
            "users",
            "create",
            "--email",
            "OWNER@example.com",
            "--organization",
            "Acme Books",
            "--password",
            "another long password",
        ],
        env,
    )
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr

    port = free_port()
    server = subprocess.Popen(
        [NUDGE, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = requests.get(f"http://127.0.0.1:{port}/login", timeout=5)
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "nudge serve did not start within 60 s"
                time.sleep(0.3)
        assert page.status_code == 200
        assert 'type="password"' in page.text
        assert "csrf_token" in page.text
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["database"] == "ok"
    finally:
        server.terminate()
        server.communicate(timeout=10)  # reaps it and closes its output pipe


def test_serve_fails_closed_without_a_vault_key(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env.pop("NUDGE_VAULT_KEY")
    result = _run(["serve", "--port", str(free_port())], env)
    assert result.returncode == 1
    assert "NUDGE_VAULT_KEY" in result.stderr


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["init", "--help"],
        ["users", "create", "--help"],
        ["keys", "rotate", "--help"],
        ["db", "upgrade", "--help"],
        ["check-config", "--help"],
        ["serve", "--help"],
    ):
        result = subprocess.run([NUDGE, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage:" in result.stdout


def test_keys_generate_and_rotate(tmp_path: Path) -> None:
    env = _env(tmp_path)
    key = _run(["keys", "generate"], env).stdout.strip()
    assert len(key) == 43
    assert _run(["init"], env).returncode == 0
    result = _run(["keys", "rotate"], env)
    assert result.returncode == 0, result.stderr
    assert "re-sealed 0 secret(s)" in result.stdout

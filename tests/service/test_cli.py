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


def test_actions_lists_the_outbox_filtered_by_state_and_connection(tmp_path: Path) -> None:
    """Issue 10 item 13 (RS-04): `nudge actions --state uncertain` lists the emails whose delivery is unknown."""
    from datetime import UTC, datetime

    from click.testing import CliRunner

    from connector.cli import main
    from connector.config import load_settings
    from connector.storage import Store
    from connector.storage.tables import Action

    config = tmp_path / "nudge.yaml"
    config.write_text(f"mode: development\ndatabase:\n  url: sqlite:///{tmp_path / 'n.sqlite3'}\n")
    store = Store.from_url(load_settings(str(config), environ={}).database.url)
    try:
        store.upgrade()
        at = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
        with store.unit_of_work() as uow:
            org = uow.organizations.add("A")
            first = uow.connections.add(org.id, "xero", "t1", "Books One")
            second = uow.connections.add(org.id, "xero", "t2", "Books Two")
            rows = [
                (first.id, "remind", "uncertain", "INV-1", "c1", "the connection broke after the message was sent"),
                (first.id, "note", "planned", "INV-2", "c2", ""),
                (second.id, "remind", "uncertain", "INV-3", "c3", "timeout after DATA"),
            ]
            for n, (cid, kind, state, invoice, customer, error) in enumerate(rows):
                uow.session.add(
                    Action(
                        key=f"k{n}",
                        connection_id=cid,
                        kind=kind,
                        state=state,
                        invoice_external_id=invoice,
                        customer_external_id=customer,
                        scheduled_at=at,
                        attempts=1,
                        error=error,
                        updated_at=at,
                    )
                )
            uow.commit()
            first_id, second_id = first.id, second.id
    finally:
        store.dispose()
    runner = CliRunner()
    uncertain = runner.invoke(main, ["--config", str(config), "actions", "--state", "uncertain"])
    assert uncertain.exit_code == 0, uncertain.output
    assert "INV-1" in uncertain.output
    assert "INV-3" in uncertain.output
    assert "INV-2" not in uncertain.output
    assert "the connection broke after the message was sent" in uncertain.output
    assert "2026-11-20 09:30" in uncertain.output
    one = runner.invoke(main, ["--config", str(config), "actions", "--connection", str(second_id)])
    assert "INV-3" in one.output
    assert "INV-1" not in one.output
    every = runner.invoke(main, ["--config", str(config), "actions", "--connection", str(first_id)])
    assert "INV-2" in every.output
    bad = runner.invoke(main, ["--config", str(config), "actions", "--state", "lost"])
    assert bad.exit_code != 0

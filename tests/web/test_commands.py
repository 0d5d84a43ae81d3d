"""`nudge serve` (web.commands.serve under the `nudge` group) and `python -m web`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from connector.cli import main
from connector.vault.keyring import generate_key
from web.commands import serve


@pytest.fixture
def nudge() -> Iterator[Any]:
    """The `nudge` group with `serve` plugged in, as the nudge.commands entry point does."""
    main.add_command(serve, "serve")
    try:
        yield main
    finally:
        main.commands.pop("serve", None)


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NUDGE_VAULT_KEY", generate_key())
    monkeypatch.setenv("NUDGE_SECRET_KEY", "a-long-random-session-secret-for-tests")
    path = tmp_path / "nudge.yaml"
    path.write_text(
        f"database:\n  url: sqlite:///{tmp_path / 'nudge.sqlite3'}\n"
        "web:\n  secret_key: ${NUDGE_SECRET_KEY:-}\n  host: 127.0.0.1\n  port: 5099\n  session_cookie_secure: false\n",
        encoding="utf-8",
    )
    return path


def test_serve_runs_the_app_from_the_config(
    nudge: Any,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_run(app: Flask, **options: Any) -> None:
        calls.append(
            {"secret": app.config["SECRET_KEY"], "cookie_secure": app.config["SESSION_COOKIE_SECURE"], **options}
        )

    monkeypatch.setattr(Flask, "run", fake_run)
    result = CliRunner().invoke(nudge, ["--config", str(config_file), "serve"])
    assert result.exit_code == 0, result.output
    assert calls == [
        {
            "secret": "a-long-random-session-secret-for-tests",
            "cookie_secure": False,
            "host": "127.0.0.1",
            "port": 5099,
            "debug": False,
            "use_reloader": False,
        }
    ]

    result = CliRunner().invoke(nudge, ["--config", str(config_file), "serve", "--host", "0.0.0.0", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert (calls[-1]["host"], calls[-1]["port"]) == ("0.0.0.0", 8123)


def test_serve_refuses_to_start_without_a_secret_key(
    nudge: Any,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NUDGE_SECRET_KEY")
    monkeypatch.setattr(Flask, "run", lambda *_a, **_k: pytest.fail("the server must not start"))
    result = CliRunner().invoke(nudge, ["--config", str(config_file), "serve"])
    assert result.exit_code == 1
    assert "web.secret_key is empty: set NUDGE_SECRET_KEY" in result.output


def test_python_dash_m_web_fails_closed_with_a_clear_message(config_file: Path) -> None:
    env = {**os.environ, "NUDGE_CONFIG": str(config_file), "NUDGE_SECRET_KEY": ""}
    done = subprocess.run(
        [sys.executable, "-m", "web"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "web.secret_key is empty: set NUDGE_SECRET_KEY" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_names_the_missing_vault_key(nudge: Any, config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUDGE_VAULT_KEY")
    monkeypatch.setattr(Flask, "run", lambda *_a, **_k: pytest.fail("the server must not start"))
    result = CliRunner().invoke(nudge, ["--config", str(config_file), "serve"])
    assert result.exit_code == 1
    assert "NUDGE_VAULT_KEY" in result.output

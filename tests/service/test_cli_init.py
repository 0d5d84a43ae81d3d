"""`nudge init`: a ready nudge.yaml and a private .env, never overwritten by accident; every process reads .env
(the real environment wins); a missing or foreign .env is named when the vault key does not open the database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from connector.cli import main
from connector.config import COOKIE_SECURE_VARIABLE, load_env_files, load_settings, parse_settings
from connector.errors import ConfigError
from connector.vault.keyring import generate_key

ROOT = Path(__file__).resolve().parents[2]
NUDGE = str(Path(sys.executable).parent / "nudge")
VARIABLES = ("NUDGE_CONFIG", "NUDGE_VAULT_KEY", "NUDGE_SECRET_KEY", "NUDGE_DATABASE_URL", "NUDGE_PORT_OFFSET")
EMULATOR_VARIABLES = (
    "QBO_CLIENT_ID",
    "QBO_CLIENT_SECRET",
    "QBO_WEBHOOK_VERIFIER",
    "XERO_CLIENT_ID",
    "XERO_CLIENT_SECRET",
    "XERO_WEBHOOK_KEY",
)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working directory; whatever a .env puts into os.environ is taken out again afterwards."""
    saved = dict(os.environ)
    for name in (*VARIABLES, *EMULATOR_VARIABLES, "NUDGE_SESSION_COOKIE_SECURE"):
        os.environ.pop(name, None)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    os.environ.clear()
    os.environ.update(saved)


def _nudge(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_init_writes_a_commented_config_and_a_private_env_then_migrates(folder: Path) -> None:
    result = _nudge("init")
    assert result.exit_code == 0, result.output
    env = _env_file(folder / ".env")
    assert (folder / ".env").stat().st_mode & 0o777 == 0o600
    assert set(env) == {"NUDGE_CONFIG", "NUDGE_VAULT_KEY", "NUDGE_SECRET_KEY"}
    assert env["NUDGE_CONFIG"] == str(folder / "nudge.yaml")
    assert env["NUDGE_VAULT_KEY"] != env["NUDGE_SECRET_KEY"]
    text = (folder / "nudge.yaml").read_text()
    assert "# Written by `nudge init`" in text
    assert env["NUDGE_VAULT_KEY"] not in text  # secrets stay out of the config file
    assert "mode: production" in text
    assert f"wrote {folder / '.env'} (mode 0600)" in result.output
    assert "database ready: sqlite:///" in result.output
    assert (folder / "instance" / "nudge.sqlite3").exists()
    settings = load_settings(str(folder / "nudge.yaml"), environ=env)
    assert settings.vault.keys == {"k1": env["NUDGE_VAULT_KEY"]}
    assert settings.providers == {}
    assert settings.mail.outbox_path == str(folder / "instance" / "outbox")
    assert list(settings.cadences) == ["standard"]  # the starter library, as config.example.yaml has it


def test_the_starter_library_is_the_one_config_example_documents() -> None:
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    starter = yaml.safe_load((ROOT / "connector" / "library" / "starter_library.yaml").read_text())
    assert starter == {"cadences": example["cadences"], "policies": example["policies"]}


def test_init_with_the_emulators_enables_both_on_fixed_local_ports(folder: Path) -> None:
    result = _nudge("init", "--emulators", "--port-offset", "7")
    assert result.exit_code == 0, result.output
    env = _env_file(folder / ".env")
    assert set(EMULATOR_VARIABLES) <= set(env)
    assert all(env[name] for name in EMULATOR_VARIABLES)
    settings = load_settings(str(folder / "nudge.yaml"), environ=env)
    assert settings.mode == "development"
    assert settings.web.base_url == "http://127.0.0.1:5007"
    assert settings.scheduler.tick_seconds == 5
    quickbooks, xero = settings.providers["quickbooks"], settings.providers["xero"]
    assert quickbooks.api_base == "http://127.0.0.1:8772/v3"
    assert quickbooks.environment == "http://127.0.0.1:8772/.well-known/openid_configuration"
    assert quickbooks.redirect_uri == "http://127.0.0.1:5007/oauth/quickbooks/callback"
    assert quickbooks.webhook_key == env["QBO_WEBHOOK_VERIFIER"]
    assert xero.identity_base == "http://127.0.0.1:8409"
    assert xero.client_id == env["XERO_CLIENT_ID"]
    assert xero.webhook_key == env["XERO_WEBHOOK_KEY"]
    assert "next: `nudge dev`" in result.output


def test_init_never_overwrites_without_force(folder: Path) -> None:
    assert _nudge("init").exit_code == 0
    first = _env_file(folder / ".env")
    again = _nudge("init", "--emulators")
    assert again.exit_code == 1
    assert "nudge.yaml exists: leaving it alone (use --force" in again.output
    assert _env_file(folder / ".env") == first
    plain = _nudge("init")  # the old behaviour: an existing config is used, the database migrated
    assert plain.exit_code == 0, plain.output
    assert "using the existing" in plain.output
    assert _env_file(folder / ".env") == first
    (folder / "nudge.yaml").unlink()
    refused = _nudge("init")  # a .env alone is not replaced either
    assert refused.exit_code == 1
    assert ".env exists: leaving it alone" in refused.output
    forced = _nudge("init", "--force", "--database-url", f"sqlite:///{folder / 'other.sqlite3'}")
    assert forced.exit_code == 0, forced.output
    env = _env_file(folder / ".env")
    assert env["NUDGE_VAULT_KEY"] != first["NUDGE_VAULT_KEY"]
    assert env["NUDGE_DATABASE_URL"] == f"sqlite:///{folder / 'other.sqlite3'}"
    assert (folder / "other.sqlite3").exists()


def test_env_files_fill_in_and_the_real_environment_wins(folder: Path) -> None:
    config_dir = folder / "etc"
    config_dir.mkdir()
    (folder / ".env").write_text("NUDGE_SECRET_KEY=from-cwd\nNUDGE_VAULT_KEY=from-cwd\n")
    (config_dir / ".env").write_text("NUDGE_SECRET_KEY=beside-config\nNUDGE_DATABASE_URL=sqlite:///x\n")
    os.environ["NUDGE_VAULT_KEY"] = "from-the-shell"
    loaded = load_env_files(str(config_dir / "nudge.yaml"))
    assert loaded == [(folder / ".env").resolve(), (config_dir / ".env").resolve()]
    assert os.environ["NUDGE_VAULT_KEY"] == "from-the-shell"
    assert os.environ["NUDGE_SECRET_KEY"] == "from-cwd"
    assert os.environ["NUDGE_DATABASE_URL"] == "sqlite:///x"


def test_a_new_shell_in_the_folder_finds_config_and_keys(folder: Path) -> None:
    assert _nudge("init", "--emulators").exit_code == 0
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NUDGE_", "QBO_", "XERO_"))}
    answer = subprocess.run(
        [NUDGE, "check-config"], cwd=folder, env=clean, capture_output=True, text=True, timeout=120, check=False
    )
    assert answer.returncode == 0, answer.stderr
    assert f"ok: {folder / 'nudge.yaml'}" in answer.stdout
    assert "providers: quickbooks, xero" in answer.stdout
    assert "no encryption key" not in answer.stdout


def test_a_missing_or_foreign_env_is_named_not_called_tampering(folder: Path) -> None:
    assert _nudge("init").exit_code == 0
    assert _nudge("run").exit_code == 0  # seals the vault canary with the key in .env
    os.environ.pop("NUDGE_VAULT_KEY", None)
    env = _env_file(folder / ".env")
    env["NUDGE_VAULT_KEY"] = generate_key()  # another install's .env
    (folder / ".env").write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    result = _nudge("run")
    assert result.exit_code == 1
    assert "NUDGE_VAULT_KEY" in result.output
    assert "`.env`" in result.output
    assert "another install" in result.output
    assert "tampered" not in result.output
    os.environ.pop("NUDGE_VAULT_KEY", None)
    (folder / ".env").unlink()  # no .env at all
    os.environ["NUDGE_CONFIG"] = str(folder / "nudge.yaml")
    missing = _nudge("run")
    assert missing.exit_code == 1
    assert "NUDGE_VAULT_KEY" in missing.output
    assert "`.env`" in missing.output


def test_the_cookie_override_wins_over_the_file(folder: Path) -> None:
    text = "web:\n  session_cookie_secure: true\n"
    assert parse_settings(text, environ={}, provider_names=[]).web.session_cookie_secure is True
    relaxed = parse_settings(text, environ={COOKIE_SECURE_VARIABLE: "false"}, provider_names=[])
    assert relaxed.web.session_cookie_secure is False
    with pytest.raises(ConfigError, match=COOKIE_SECURE_VARIABLE):
        parse_settings(text, environ={COOKIE_SECURE_VARIABLE: "maybe"}, provider_names=[])


def test_init_warns_when_the_shell_already_sets_a_key(folder: Path) -> None:
    os.environ["NUDGE_VAULT_KEY"] = generate_key()  # exported by hand in this shell, the old way
    result = _nudge("init")
    assert result.exit_code == 0, result.output
    assert "warning: NUDGE_VAULT_KEY already set in this shell win over the new .env" in result.output


@pytest.mark.parametrize("url", ["mysql://db/nudge", "sqlite:///x\nNUDGE_VAULT_KEY=injected"])
def test_a_bad_database_url_is_refused_before_anything_is_written(folder: Path, url: str) -> None:
    result = _nudge("init", "--database-url", url)
    assert result.exit_code == 2
    assert "--database-url" in result.output
    assert not (folder / ".env").exists()
    assert not (folder / "nudge.yaml").exists()

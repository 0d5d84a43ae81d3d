"""Config loading: the example validates, and bad files name every problem with its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import load_settings, parse_settings
from connector.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.yaml"
CLEAN_ENV = {"PATH": "/usr/bin"}


def test_example_config_is_valid_and_checks_ok() -> None:
    settings = load_settings(str(EXAMPLE), environ=CLEAN_ENV)
    assert settings.database.url.startswith("sqlite:///")
    assert settings.providers == {}  # both disabled in the example
    result = CliRunner().invoke(main, ["check-config", str(EXAMPLE)], env={"NUDGE_VAULT_KEY": "", "QBO_CLIENT_ID": ""})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")
    assert "no encryption key" in result.output  # said as a warning, not hidden


BAD = """\
database:
  url: sqlite:///x.db
web:
  prot: 8080
scheduler:
  tick_seconds: often
providers:
  quickbooks:
    enabled: true
    client_id: abc
    client_secret: ${QBO_SECRET_FOR_TEST}
"""


def test_bad_config_names_all_three_problems_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = CliRunner().invoke(main, ["check-config", str(path)], env={"QBO_SECRET_FOR_TEST": None})
    assert result.exit_code == 1
    lines = result.output
    assert f"{path}:4: web.prot: unknown key 'prot'; did you mean 'port'?" in lines
    assert f"{path}:6: scheduler.tick_seconds: expected a whole number, got text 'often'" in lines
    assert (
        f"{path}:11: providers.quickbooks.client_secret: environment variable QBO_SECRET_FOR_TEST is not set" in lines
    )


def test_environment_references_and_defaults() -> None:
    text = "database:\n  url: ${DB_URL:-sqlite:///fallback.db}\nweb:\n  secret_key: ${SK}\n"
    settings = parse_settings(text, environ={"SK": "abc"}, provider_names=[])
    assert settings.database.url == "sqlite:///fallback.db"
    assert settings.web.secret_key == "abc"
    assert "abc" not in repr(settings.web)
    settings = parse_settings(text, environ={"SK": "x", "DB_URL": "postgresql://u@h/db"}, provider_names=[])
    assert settings.database.url == "postgresql://u@h/db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "<config>:1: (top level): expected a mapping"),
        ("database: [1]\n", "database: expected a mapping"),
        ("web:\n  port: 70000\n", "<config>:2: web.port: expected a port number 1-65535"),
        ("default_time_zone: Mars/Olympus\n", "unknown time zone 'Mars/Olympus'"),
        ("mail:\n  backend: pigeon\n", "mail.backend: expected one of maildir, smtp, got 'pigeon'"),
        ("database:\n  url: mysql://x\n", "expected a sqlite:/// or postgresql:// URL"),
        ("providers:\n  quickbok: {}\n", "unknown key 'quickbok'; did you mean 'quickbooks'?"),
        ("web: {port: 1\n", "<config>:2: (top level): not valid YAML"),
        ("vault:\n  active_key: k2\n  keys:\n    k1: abc\n", "vault.active_key: expected one of the key ids"),
    ],
)
def test_each_mistake_is_explained(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_settings(text, environ={}, provider_names=["quickbooks", "xero"])
    assert expected in str(error.value)


def test_config_file_chosen_by_environment_variable(tmp_path: Path) -> None:
    path = tmp_path / "n.yaml"
    path.write_text("instance_path: state\nlog_level: DEBUG\n")
    settings = load_settings(environ={"NUDGE_CONFIG": str(path)})
    assert settings.log_level == "DEBUG"
    assert settings.instance_path == str(tmp_path / "state")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(str(tmp_path / "missing.yaml"), environ={})


def test_example_cadences_parse_into_the_domain_rules() -> None:
    settings = load_settings(str(EXAMPLE), environ=CLEAN_ENV)
    assert list(settings.rules.cadences) == ["standard"]
    standard = settings.rules.cadences["standard"]
    assert [step.id for step in standard.steps] == ["courtesy", "due", "late-3bd", "late-14", "call", "final"]
    assert set(settings.rules.late_fees) == {"monthly_interest", "uk_statutory"}


def test_a_bad_cadence_is_reported_at_its_line_naming_step_and_field() -> None:
    text = """\
policies:
  late_fees:
    flat: {kind: flat, amount: 25}
cadences:
  ok:
    steps: [{id: a, offset: 3, late_fee: flat}]
  broken:
    steps:
      - {id: early-fee, offset: -2, late_fee: flat}
"""
    with pytest.raises(ConfigError) as error:
        parse_settings(text, environ={}, provider_names=[])
    message = str(error.value)
    assert message.startswith("<config>:7: cadences.broken: ")
    assert "early-fee" in message
    assert "late_fee" in message

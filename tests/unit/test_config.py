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
    assert f"{path}:4:3: web.prot: unknown key 'prot'; did you mean 'port'?" in lines
    assert f"{path}:6:3: scheduler.tick_seconds: expected a whole number, got text 'often'" in lines
    assert (
        f"{path}:11:5: providers.quickbooks.client_secret: environment variable QBO_SECRET_FOR_TEST is not set" in lines
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
        ("- a\n- b\n", "<config>:1:1: (top level): expected a mapping"),
        ("database: [1]\n", "database: expected a mapping"),
        ("web:\n  port: 70000\n", "<config>:2:3: web.port: expected a port number 1-65535"),
        ("mode: staging\n", "<config>:1:1: mode: expected one of production, development, got 'staging'"),
        ("mail:\n  backend: pigeon\n", "mail.backend: expected one of maildir, smtp, got 'pigeon'"),
        ("database:\n  url: mysql://x\n", "expected a sqlite:/// or postgresql:// URL"),
        ("providers:\n  quickbok: {}\n", "unknown key 'quickbok'; did you mean 'quickbooks'?"),
        ("web: {port: 1\n", "<config>:2:1: (top level): not valid YAML"),
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
    assert message.startswith("<config>:7:3: cadences.broken: ")
    assert "early-fee" in message
    assert "late_fee" in message


def _problems(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as error:
        parse_settings(text, environ=environ or {}, provider_names=["quickbooks", "xero"])
    return str(error.value)


def test_a_duplicate_top_level_key_is_an_error_naming_both_lines() -> None:
    """Issue 10 item 15 (RS-37): YAML keeps the last of two equal keys silently; Nudge refuses it."""
    message = _problems("log_level: INFO\nweb:\n  port: 5000\nlog_level: DEBUG\n")
    assert "<config>:4:1: log_level: duplicate key 'log_level' (first defined at line 1)" in message


def test_a_duplicate_cadence_name_is_an_error_naming_both_lines() -> None:
    """Issue 10 item 15 (RS-37): a second cadence of the same name no longer replaces the first."""
    text = (
        "cadences:\n"
        "  standard:\n"
        "    steps: [{id: a, offset: 3, remind: firm}]\n"
        "  standard:\n"
        "    steps: [{id: b, offset: 5, remind: firm}]\n"
        "policies:\n"
        "  templates: [firm]\n"
    )
    message = _problems(text)
    assert "<config>:4:3: cadences.standard: duplicate key 'standard' (first defined at line 2)" in message


def test_issues_name_line_and_column() -> None:
    """RS-37: the message names file, line, column and key path."""
    assert "<config>:3:3: web.prot: unknown key 'prot'" in _problems("log_level: INFO\nweb:\n  prot: 8080\n")
    assert "<config>:2:1: (top level): not valid YAML" in _problems("web: {port: 1\n")


def test_default_time_zone_was_never_used_and_is_refused_with_the_reason() -> None:
    """Issue 10 item 15: every parsed key is used or removed; default_time_zone is removed."""
    message = _problems("default_time_zone: UTC\n")
    assert "<config>:1:1: default_time_zone: no longer a setting" in message


PROVIDER = """\
{mode}providers:
  quickbooks:
    client_id: id
    client_secret: secret
    api_base: {api_base}
"""


@pytest.mark.parametrize(
    "api_base",
    [
        "http://10.0.0.5/v3",
        "https://169.254.169.254/v3",
        "http://quickbooks.api.intuit.com/v3",
        "https://evil.example/v3",
    ],
)
def test_production_mode_accepts_only_the_providers_published_https_hosts(api_base: str) -> None:
    """Issue 10 items 11 and 15 (RS-36): a provider base URL on a private IP or another host is refused."""
    message = _problems(PROVIDER.format(mode="", api_base=api_base))
    assert "<config>:5:5: providers.quickbooks.api_base: in production mode" in message


def test_production_mode_takes_the_published_host_and_development_mode_the_emulator() -> None:
    """RS-36: `mode: development` (the demo, the tests) may point a provider at a local emulator."""
    published = parse_settings(
        PROVIDER.format(mode="", api_base="https://quickbooks.api.intuit.com/v3"),
        environ={},
        provider_names=["quickbooks"],
    )
    assert published.mode == "production"
    local = parse_settings(
        PROVIDER.format(mode="mode: development\n", api_base="http://127.0.0.1:8080/v3"),
        environ={},
        provider_names=["quickbooks"],
    )
    assert local.mode == "development"
    assert local.providers["quickbooks"].api_base == "http://127.0.0.1:8080/v3"


def test_sign_in_throttle_settings_have_documented_defaults_and_are_checked() -> None:
    """Issue 10 item 6: web.ratelimit_storage_uri and the two login limits parse, default, and refuse nonsense."""
    from limits import parse_many

    defaults = parse_settings("", environ={}, provider_names=[]).web
    example = load_settings(str(EXAMPLE), environ=CLEAN_ENV).web
    for web in (defaults, example):
        assert web.ratelimit_storage_uri == "memory://"
        assert web.login_limit_per_account == "5 per minute; 20 per hour"
        assert web.login_limit_per_address == "20 per minute; 100 per hour"
    text = (
        "web:\n  ratelimit_storage_uri: redis://127.0.0.1:6379/0\n"
        "  login_limit_per_account: 3/minute\n  login_limit_per_address: 10 per 5 minutes; 50 per day\n"
    )
    web = parse_settings(text, environ={}, provider_names=[]).web
    assert web.ratelimit_storage_uri == "redis://127.0.0.1:6379/0"
    assert [str(item) for item in parse_many(web.login_limit_per_account)] == ["3 per 1 minute"]
    assert len(parse_many(web.login_limit_per_address)) == 2
    message = _problems(
        "web:\n  ratelimit_storage_uri: memcached://x\n  login_limit_per_account: lots\n"
        "  login_limit_per_address: 5 per fortnight\n"
    )
    assert "<config>:2:3: web.ratelimit_storage_uri: expected memory:// or a redis:// URL" in message
    assert "<config>:3:3: web.login_limit_per_account: expected limits such as" in message
    assert (
        "web.login_limit_per_address: expected limits such as '5 per minute; 20 per hour', got '5 per fortnight'"
        in message
    )


def test_metrics_token_comes_from_the_environment_is_checked_and_is_kept_out_of_reprs() -> None:
    """metrics.token (GET /metrics): empty by default (the endpoint answers 404), $NUDGE_METRICS_TOKEN otherwise."""
    token = "m3trics-" + "x" * 24
    assert parse_settings("", environ={}, provider_names=[]).metrics.token == ""
    assert load_settings(str(EXAMPLE), environ=CLEAN_ENV).metrics.token == ""
    example = load_settings(str(EXAMPLE), environ={**CLEAN_ENV, "NUDGE_METRICS_TOKEN": token})
    assert example.metrics.token == token
    assert parse_settings("", environ={"NUDGE_METRICS_TOKEN": token}, provider_names=[]).metrics.token == token
    settings = parse_settings("metrics:\n  token: ${MT}\n", environ={"MT": token}, provider_names=[])
    assert settings.metrics.token == token
    assert token not in repr(settings)

    message = _problems("mail:\n  backend: maildir\nmetrics:\n  token: short\n")
    assert "<config>:4:3: metrics.token: too short: use at least 16 random characters (got 5)" in message
    message = _problems("metrics:\n  token: has a space in the middle\n")
    assert "<config>:2:3: metrics.token: expected printable ASCII without spaces" in message
    message = _problems("metrics:\n  tokn: abc\n")
    assert "<config>:2:3: metrics.tokn: unknown key 'tokn'; did you mean 'token'?" in message
    with pytest.raises(ConfigError) as error:
        parse_settings("", environ={"NUDGE_METRICS_TOKEN": "weak"}, provider_names=[])
    assert "metrics.token: too short" in str(error.value)
    assert "NUDGE_METRICS_TOKEN" in str(error.value)
    with pytest.raises(ConfigError) as error:
        parse_settings("metrics:\n  token: ${UNSET_METRICS_TOKEN}\n", environ={}, provider_names=[])
    assert "<config>:2:3: metrics.token: environment variable UNSET_METRICS_TOKEN is not set" in str(error.value)

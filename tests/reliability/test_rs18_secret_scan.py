"""RS-18: a secret scan of everything Nudge writes: stdout, stderr, log files, exception traces and HTML pages.

Two runs. The demo (`nudge demo --days 3`, a subprocess, root logging at DEBUG into stderr and a log
file; the SDKs' own debug output is never switched on by Nudge, see providers/xero/oauth.py) is
scanned for its config's client secrets, vault and session keys, the tokens left sealed in its
database and every token the emulators issue (recognised by their formats). Then, in this process
with `log_level: DEBUG`, each provider's whole path (the OAuth connect, a turn, a refresh, a revoked
grant with its exception trace, webhooks, a replayed OAuth callback, a 404) is scanned for the exact
fixture values: access and refresh tokens, client secret, auth code, PKCE verifier, webhook key and
SMTP password.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from connector.bootstrap import build
from connector.config import load_settings
from connector.errors import AuthError
from connector.storage.tables import Connection, Customer
from connector.vault.tokens import open_tokens
from providers._emulator import Fault
from tests.support import pipeline as pipeline_module
from tests.support.pipeline import Pipeline, pipeline, rules
from tests.support.workers import ROOT, customer_email
from web import create_app

# Every token the emulators issue, whatever its value: QuickBooks access ("eyJlbmMi…." + random) and
# refresh ("AB1…") tokens and auth codes ("AB…"), Xero's JWT access and ID tokens and "xrt_" refresh tokens.
TOKEN_FORMATS = re.compile(r"eyJ[\w-]{10,}\.[\w-]{20,}|\bAB1[\w-]{30,}|\bxrt_[\w-]{20,}")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
WEBHOOK_KEY = "rs18-webhook-signing-key-0123456789"
SMTP_PASSWORD = "rs18-smtp-password-0123456789"
STEPS = [{"id": "late", "offset": 3, "remind": "firm", "note": "Overdue: reminder sent by Nudge", "late_fee": "flat"}]
RULES = rules(STEPS, late_fees={"flat": {"kind": "flat", "amount": 25}})
DEMO = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s",
                    handlers=[logging.StreamHandler(), logging.FileHandler(sys.argv[1])])
from connector.cli import entry
sys.argv = ["nudge", "demo", "--days", "3", "--out", sys.argv[2]]
entry()
"""


def _hits(texts: dict[str, str], secrets: dict[str, str]) -> list[str]:
    """Where a secret (or any emulator-issued token) occurs: "<secret name> in <place>"."""
    found = [f"{name} in {place}" for place, text in texts.items() for name, value in secrets.items() if value in text]
    found += [
        f"token {m.group()[:12]}… in {place}" for place, text in texts.items() for m in TOKEN_FORMATS.finditer(text)
    ]
    return found


def test_rs18_the_demo_at_debug_prints_and_logs_no_secret(tmp_path: Path) -> None:
    """Expected: zero hits of any token, client secret or key in stdout, stderr, log files and written files."""
    out, log = tmp_path / "demo", tmp_path / "debug.log"
    done = subprocess.run(
        [sys.executable, "-c", DEMO, str(log), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(tmp_path),
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "DEBUG " in done.stderr  # the run did log at DEBUG

    config = yaml.safe_load((out / "nudge.yaml").read_text())
    secrets = {f"{name} client secret": block["client_secret"] for name, block in config["providers"].items()}
    secrets |= {f"vault key {name}": key for name, key in config["vault"]["keys"].items()}
    secrets["session secret"] = config["web"]["secret_key"]
    services = build(load_settings(str(out / "nudge.yaml")))
    try:
        with services.store.unit_of_work() as uow:
            for row in uow.session.scalars(select(Connection)):
                tokens = open_tokens(services.vault, row)
                secrets[f"connection {row.id} access token"] = tokens.access_token
                secrets[f"connection {row.id} refresh token"] = tokens.refresh_token
            emails = {e for c in uow.session.scalars(select(Customer)) for e in [*c.emails, *c.cc_emails]}
    finally:
        services.store.dispose()
    assert len(secrets) >= 8  # two providers' secrets and tokens
    assert emails

    texts = {"stdout": done.stdout, "stderr": done.stderr, "log file": log.read_text()}
    for path in sorted(out.rglob("*")):  # everything written but the config (the secrets' home) and the database
        if path.is_file() and path.name not in ("nudge.yaml", "nudge.sqlite3"):
            texts[str(path.relative_to(out))] = path.read_text(errors="replace")
    assert len(texts) > 3  # the outbox's emails
    assert _hits(texts, secrets) == []
    informative = [line for line in done.stderr.splitlines() if not line.startswith("DEBUG ")]
    assert [line for line in informative if any(e in line for e in emails)] == []  # no customer email at INFO+


class _Capture(logging.Handler):
    """Every log record from the root logger, formatted with its exception trace, and its level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, self.format(record)))


@contextmanager
def _captured() -> Iterator[_Capture]:
    root = logging.getLogger()
    capture, level = _Capture(), root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(level)


def _connect(world: Pipeline, tenant: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict[str, str]]:
    """The real OAuth connect; the auth code and PKCE verifier it used."""
    seen: dict[str, str] = {}
    begin, approve = pipeline_module.begin_connect, world.kit.approve

    def begin_and_keep(*args: Any, **kwargs: Any) -> Any:
        request = begin(*args, **kwargs)
        seen["PKCE verifier"] = request.code_verifier
        return request

    def approve_and_keep(url: str, tenants: list[str]) -> dict[str, str]:
        params = approve(url, tenants)
        seen["auth code"] = params["code"]
        return params

    monkeypatch.setattr(pipeline_module, "begin_connect", begin_and_keep)
    monkeypatch.setattr(world.kit, "approve", approve_and_keep)
    return world.connect(tenant), seen


def _web_pages(world: Pipeline, tenant: str, invoice: str, code: str) -> dict[str, str]:
    """Webhooks (signed, badly signed), the OAuth callback replayed with the used code, a missing page."""
    provider = world.kit.provider
    client = create_app(services=world.services).test_client()
    header = {"quickbooks": "intuit-signature", "xero": "x-xero-signature"}[provider]
    body = world.kit.webhook_body(tenant, invoice)
    pages = {}
    for name, signature in (("signed webhook", world.kit.sign_webhook(body, WEBHOOK_KEY)), ("bad webhook", "AAAA")):
        answer = client.post(f"/webhooks/{provider}", data=body, headers={header: signature})
        pages[name] = f"{answer.status_code} {answer.headers} {answer.text}"
    callback = client.get(f"/oauth/{provider}/callback?code={code}&state=forged&realmId=1")
    pages["replayed callback"] = f"{callback.status_code} {callback.headers} {callback.text}"
    missing = client.get("/no/such/page")
    pages["404 page"] = f"{missing.status_code} {missing.text}"
    assert [pages[name][:3] for name in ("signed webhook", "bad webhook", "404 page")] == ["200", "401", "404"]
    assert callback.status_code == 400
    return pages


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_rs18_every_path_at_debug_shows_no_fixture_secret(
    provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Expected: zero hits of access/refresh token, client secret, auth code, PKCE verifier, webhook key, SMTP password.

    (one line; the values are this run's fixtures)
    """
    now = datetime.now(UTC)
    mail = {"smtp_username": "nudge-mailer", "smtp_password": SMTP_PASSWORD}
    with (
        _captured() as capture,
        pipeline(
            provider, tmp_path, RULES, start=now, webhook_key=WEBHOOK_KEY, mail_options=mail, log_level="DEBUG"
        ) as world,
    ):
        kit = world.kit
        tenant = kit.add_company("Quiet Secrets Ltd")
        customer = kit.add_customer(tenant, "Private Person", customer_email("Private Person"))
        today = now.date()
        invoice = kit.add_invoice(
            tenant, customer, "SS-1", Decimal("700.00"), "", today - timedelta(days=40), today - timedelta(days=10)
        )
        connection, oauth = _connect(world, tenant, monkeypatch)
        secrets = {**oauth, "client secret": world.services.registry.settings(provider).client_secret}
        secrets |= {"webhook key": WEBHOOK_KEY, "SMTP password": SMTP_PASSWORD}
        reports = [world.turn(connection)]  # sync, note, fee; the email is refused (a password needs TLS)

        kit.expire_access_tokens(tenant)
        world.clock.advance(timedelta(hours=2))
        reports.append(world.turn(connection))  # a refresh
        with world.services.store.unit_of_work() as uow:
            row = uow.connections.by_id(connection)
            assert row is not None
            tokens = open_tokens(world.services.vault, row)
        secrets |= {"access token": tokens.access_token, "refresh token": tokens.refresh_token}

        kit.add_fault(Fault("revoke"))
        kit.expire_access_tokens(tenant)
        world.clock.advance(timedelta(hours=2))
        with pytest.raises(AuthError) as refused:  # invalid_grant
            world.turn(connection)
        trace = "".join(traceback.format_exception(refused.value))
        pages = _web_pages(world, tenant, invoice, oauth["auth code"])
        emails_sent = [raw.decode(errors="replace") for raw in world.sink.received]
        assert kit.balance(tenant, invoice) > 0

    assert secrets["PKCE verifier"]  # both providers' flows use PKCE (Intuit's since Sign in with Intuit)
    assert all(secrets.values()), secrets
    assert any(level >= logging.WARNING for level, _ in capture.lines)  # the failures were logged
    texts = {f"log record {n}": line for n, (_, line) in enumerate(capture.lines)}
    texts |= {f"turn report {n}": repr(report) for n, report in enumerate(reports)}
    texts["exception trace"] = trace
    texts |= pages
    texts |= {f"email {n}": text for n, text in enumerate(emails_sent)}
    assert _hits(texts, secrets) == []
    address = customer_email("Private Person")
    assert [line for level, line in capture.lines if level >= logging.INFO and address in line] == []

"""`nudge report`: recovery per cadence step and Nudge's own ledger documents, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from connector.cli import main
from connector.config import load_settings
from connector.domain.actions import Action, ActionKind, ReminderItem
from connector.domain.money import Money
from connector.outbox.attribution import step_name
from connector.outbox.codec import action_to_json
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Invoice, Payment

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "nudge.yaml"
    example = (ROOT / "config.example.yaml").read_text()
    config.write_text(
        example.replace("instance_path: instance", f"instance_path: {tmp_path / 'inst'}").replace(
            "url: ${NUDGE_DATABASE_URL:-sqlite:///instance/nudge.sqlite3}", f"url: sqlite:///{tmp_path / 'n.db'}"
        )
    )
    return config


def _invoice(connection_id: int, external_id: str, number: str, status: str = "paid") -> Invoice:
    now = datetime.now(UTC)
    return Invoice(
        connection_id=connection_id,
        external_id=external_id,
        number=number,
        customer_external_id="c1",
        customer_name="Bright Bakery",
        currency="GBP",
        total=Decimal("1200"),
        balance=Decimal("0"),
        issue_date=now.date() - timedelta(days=40),
        due_date=now.date() - timedelta(days=10),
        status=status,
        updated_at=now,
    )


def test_report_prints_recovery_per_step_and_nudges_documents(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = Store.from_url(load_settings(str(config), environ={}).database.url)
    store.upgrade()
    now = datetime.now(UTC)
    sent = now - timedelta(days=5)
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        cid = uow.connections.add(org.id, "quickbooks", "1", "Acme Ltd", cadence="standard").id
        uow.session.add_all([_invoice(cid, "130", "1037"), _invoice(cid, "FEE9", "1037-FEE", status="open")])
        item = ReminderItem(
            "130", "1037", sent.date(), Money.of("1200", "GBP"), Money.of("1200", "GBP"), 5, "firm", "firm", "m1"
        )
        reminder = Action(
            "r1", ActionKind.REMIND, str(cid), "c1", ("130",), sent, sent.date(), "firm", "rule", items=(item,)
        )
        uow.session.add_all(
            [
                ActionRow(
                    key="r1",
                    connection_id=cid,
                    kind="remind",
                    state="done",
                    scheduled_at=sent,
                    payload=action_to_json(reminder),
                ),
                ActionRow(
                    key="f1",
                    connection_id=cid,
                    kind="late_fee",
                    invoice_external_id="130",
                    state="done",
                    scheduled_at=sent,
                    external_ref="FEE9",
                ),
                ActionRow(
                    key="d1",
                    connection_id=cid,
                    kind="discount_credit",
                    invoice_external_id="130",
                    state="done",
                    scheduled_at=sent,
                    external_ref="130",  # a credit memo's id may equal an invoice's: never shown as that invoice
                ),
                Payment(
                    connection_id=cid,
                    kind="payment",
                    external_id="P1",
                    invoice_external_id="130",
                    customer_external_id="c1",
                    amount=Decimal("1200"),
                    currency="GBP",
                    paid_on=(now - timedelta(days=2)).date(),
                    voided=False,
                ),
            ]
        )
        uow.commit()
    store.dispose()
    result = CliRunner().invoke(main, ["--config", str(config), "report", "--days", "30"], env={"NUDGE_VAULT_KEY": ""})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    firm = next(line for line in lines if line.startswith("firm "))
    assert firm.split()[:4] == ["firm", "1", "1", "1"]
    assert firm.endswith("1,200.00 GBP")
    assert any(line.split()[1:] == ["1037-FEE", "late_fee", "1037"] for line in lines)
    assert any(line.split()[1:] == ["130", "discount_credit", "1037"] for line in lines)
    missing = CliRunner().invoke(main, ["--config", str(config), "report", "--connection", "999"])
    assert missing.exit_code == 1
    assert "no connection with id 999" in missing.output


def test_plan_installment_steps_count_as_one_step_per_offset() -> None:
    assert step_name("plan:12:installment-3:-3") == "plan installment -3"
    assert step_name("late-3") == "late-3"

"""`nudge preview`: the planner run forward over synced invoices, printed as a table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from connector.cli import main
from connector.config import load_settings
from connector.storage import Store
from connector.storage.tables import Invoice

ROOT = Path(__file__).resolve().parents[2]


def test_preview_prints_what_would_go_out(tmp_path: Path) -> None:
    config = tmp_path / "nudge.yaml"
    example = (ROOT / "config.example.yaml").read_text()
    config.write_text(
        example.replace("instance_path: instance", f"instance_path: {tmp_path / 'inst'}").replace(
            "url: ${NUDGE_DATABASE_URL:-sqlite:///instance/nudge.sqlite3}", f"url: sqlite:///{tmp_path / 'n.db'}"
        )
    )
    settings = load_settings(str(config), environ={})
    store = Store.from_url(settings.database.url)
    store.upgrade()
    today = datetime.now(UTC).date()
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        connection = uow.connections.add(
            org.id, "quickbooks", "1", "Acme Ltd", cadence="standard", time_zone="Europe/London"
        )
        uow.session.add(
            Invoice(
                connection_id=connection.id,
                external_id="130",
                number="1037",
                customer_external_id="c1",
                customer_name="Bright Bakery",
                currency="GBP",
                total=Decimal("1200"),
                balance=Decimal("1200"),
                issue_date=today - timedelta(days=10),
                due_date=today + timedelta(days=3),
                status="open",
                updated_at=datetime.now(UTC),
                emails=["ap@bright.example"],
            )
        )
        uow.commit()
        connection_id = connection.id
    store.dispose()
    result = CliRunner().invoke(
        main,
        ["--config", str(config), "preview", "--connection", str(connection_id), "--days", "30"],
        env={"NUDGE_VAULT_KEY": ""},
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("Preview for Acme Ltd: next 30 days")
    body = [line for line in lines[3:] if line.strip()]
    assert any("Bright Bakery" in line and "1037" in line and "remind" in line for line in body)
    assert any("late_fee" in line and "GBP" in line for line in body)  # the 14-day step's interest fee
    dates = [date.fromisoformat(line[:10]) for line in body]
    assert dates == sorted(dates)
    assert all(today <= d <= today + timedelta(days=31) for d in dates)
    missing = CliRunner().invoke(main, ["--config", str(config), "preview", "--connection", "999"])
    assert missing.exit_code == 1
    assert "no connection with id 999" in missing.output

"""The careful-by-default commands (issue 12): `nudge review`, `approve`, `skip`, `connections`, `access`,
and an honest `run` / `preview` (unknown id, nothing synced yet)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import select

from connector.cli import main
from connector.config import load_settings
from connector.connections.connect import store_connections
from connector.domain.model import ConnectionInfo, ConnectionStatus
from connector.outbox.planning import plan_connection
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Activity
from connector.sync.invoices import sync_connection
from connector.vault.keyring import generate_key
from tests.support.ledger import FakeLedger
from tests.support.outbox import invoice_snapshot
from tests.support.tokens import sample_tokens, vault_with

ROOT = Path(__file__).resolve().parents[2]


class World:
    """A config file over a fresh SQLite database, and the store behind it."""

    def __init__(self, tmp_path: Path) -> None:
        self.config = tmp_path / "nudge.yaml"
        example = (ROOT / "config.example.yaml").read_text()
        self.config.write_text(
            example.replace("instance_path: instance", f"instance_path: {tmp_path / 'inst'}").replace(
                "url: ${NUDGE_DATABASE_URL:-sqlite:///instance/nudge.sqlite3}", f"url: sqlite:///{tmp_path / 'n.db'}"
            )
        )
        self.settings = load_settings(str(self.config), environ={})
        self.store = Store.from_url(self.settings.database.url)
        self.store.upgrade()
        self.now = datetime.now(UTC)

    def connect(self, org: str, tenant: str, name: str) -> int:
        with self.store.unit_of_work() as uow:
            org_id = (uow.organizations.by_name(org) or uow.organizations.add(org)).id
            info = ConnectionInfo("fake", tenant, name, extra={"time_zone": "Europe/London", "country": "GB"})
            [connected] = store_connections(uow, vault_with("k"), "fake", org_id, [info], sample_tokens(), self.now)
            row = uow.connections.by_id(connected.connection_id)
            assert row is not None
            row.cadence = "standard"
            uow.commit()
        return connected.connection_id

    def sync_and_plan(self, connection_id: int) -> None:
        """Two customers' overdue invoices synced (a real sync run), then planned."""
        invoices = [
            invoice_snapshot(n, due=self.now.date() - timedelta(days=20), updated_at=self.now - timedelta(days=1))
            for n in (1, 2)
        ]
        from dataclasses import replace

        invoices[1] = replace(invoices[1], customer_external_id="c2", customer_name="Bright Bakery")
        ledger = FakeLedger(invoices)
        ledger.changes = list(invoices)
        sync_connection(self.store, ledger, connection_id, lambda: self.now)
        plan_connection(self.store, connection_id, self.settings.rules, self.now)

    def states(self, connection_id: int) -> dict[str, str]:
        with self.store.unit_of_work() as uow:
            query = select(ActionRow).where(ActionRow.connection_id == connection_id)
            return {row.key: row.state for row in uow.session.scalars(query)}

    def nudge(self, *args: str, vault_key: str = "") -> Result:
        return CliRunner().invoke(main, ["--config", str(self.config), *args], env={"NUDGE_VAULT_KEY": vault_key})


def test_review_approve_and_skip_as_a_user_does(tmp_path: Path) -> None:
    world = World(tmp_path)
    cid = world.connect("Practice", "t1", "Acme Ledger")
    before = world.nudge("review", "--connection", str(cid))
    assert before.exit_code == 0, before.output
    assert "waiting for review" in before.output
    assert f"no synced data yet for Acme Ledger: run `nudge run --connection {cid}` first" in before.output
    world.sync_and_plan(cid)
    shown = world.nudge("review", "--connection", str(cid))
    assert shown.exit_code == 0, shown.output
    keys = sorted(world.states(cid))
    assert keys
    assert set(world.states(cid).values()) <= {"awaiting_approval", "planned"}
    assert "Bright Bakery" in shown.output
    assert "Cust One" in shown.output
    assert "reminder (step " in shown.output
    assert "INV-1" in shown.output
    assert "GBP" in shown.output
    assert "Totals per currency" in shown.output
    assert f"nudge approve --connection {cid} --all" in shown.output
    waiting = [k for k, state in world.states(cid).items() if state == "awaiting_approval"]
    assert all(f"key {key}" in shown.output for key in waiting)

    neither = world.nudge("approve", "--connection", str(cid))
    assert neither.exit_code == 2
    assert "--all, or one or more --action KEY" in neither.output
    both = world.nudge("approve", "--connection", str(cid), "--all", "--action", waiting[0])
    assert both.exit_code == 2

    one = world.nudge("approve", "--connection", str(cid), "--action", waiting[0], "--by", "alice")
    assert one.exit_code == 0, one.output
    assert "approved 1 action(s)" in one.output
    assert world.states(cid)[waiting[0]] == "planned"
    unknown = world.nudge("skip", "--connection", str(cid), "--action", "f" * 40, "--by", "bob")
    assert unknown.exit_code == 1
    assert f"no waiting action {'f' * 40} for connection {cid}" in unknown.output
    if len(waiting) > 1:
        skipped = world.nudge("skip", "--connection", str(cid), "--action", waiting[1], "--by", "bob")
        assert skipped.exit_code == 0, skipped.output
        assert world.states(cid)[waiting[1]] == "skipped"
    rest = world.nudge("approve", "--connection", str(cid), "--all", "--by", "carol")
    assert rest.exit_code == 0, rest.output
    assert f"the review is over: connection {cid} is active" in rest.output
    with world.store.unit_of_work() as uow:
        kinds_actors = {(a.kind, a.actor) for a in uow.session.scalars(select(Activity))}
    assert ("action.approved", "alice") in kinds_actors
    assert ("review.approved", "carol") in kinds_actors
    after = world.nudge("review", "--connection", str(cid))
    assert "nothing waits for approval" in after.output
    listing = world.nudge("connections")
    assert f"active since {world.now:%Y-%m-%d}" in listing.output


def test_connections_lists_status_chasing_last_sync_and_next_run(tmp_path: Path) -> None:
    world = World(tmp_path)
    smith = world.connect("Smith & Co", "shared", "Acme Ledger")
    acme = world.connect("Acme Ltd", "shared", "Acme Ledger")
    world.sync_and_plan(smith)
    with world.store.unit_of_work() as uow:
        gone = uow.connections.by_id(world.connect("Smith & Co", "t-gone", "Old Books"))
        assert gone is not None
        gone.status = ConnectionStatus.NEEDS_REAUTH.value
        gone.last_error = "QuickBooks refused the refresh token"
        uow.commit()
    result = world.nudge("connections")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[2:] if line.strip()[:1].isdigit()}
    assert "waiting for review" in lines[str(smith)]
    assert "Smith & Co" in lines[str(smith)]
    assert f"{world.now:%Y-%m-%d}" in lines[str(smith)]  # last sync
    assert " ok " in lines[str(smith)]
    assert "managed by Smith & Co" in lines[str(acme)]
    assert "never" in lines[str(acme)]
    assert "needs reconnect" in result.output
    assert "QuickBooks refused the refresh token" in result.output
    assert "3 connection(s)" in result.output


def test_access_request_list_and_approve_move_the_chasing(tmp_path: Path) -> None:
    world = World(tmp_path)
    smith = world.connect("Smith & Co", "shared", "Acme Ledger")
    acme = world.connect("Acme Ltd", "shared", "Acme Ledger")
    review = world.nudge("review", "--connection", str(acme))
    assert "Acme Ledger is already managed by Smith & Co; ask them for access" in review.output
    preview = world.nudge("preview", "--connection", str(acme))
    assert "no synced data yet for Acme Ledger" in preview.output
    asked = world.nudge("access", "request", "--connection", str(acme), "--by", "acme-owner")
    assert asked.exit_code == 0, asked.output
    assert "asked Smith & Co to hand over Acme Ledger" in asked.output
    listed = world.nudge("access", "list", "--state", "pending")
    assert "Acme Ltd (acme-owner)" in listed.output
    assert "1 request(s)" in listed.output
    approved = world.nudge("access", "approve", "1", "--by", "smith-owner")
    assert approved.exit_code == 0, approved.output
    assert "Acme Ltd chases Acme Ledger from now on" in approved.output
    listing = world.nudge("connections").output
    assert "managed by Acme Ltd" in listing
    again = world.nudge("access", "decline", "1")
    assert again.exit_code == 1
    assert "already approved" in again.output
    missing = world.nudge("access", "approve", "99")
    assert missing.exit_code == 1
    assert "no access request with id 99" in missing.output
    assert smith != acme


def test_run_names_what_it_did_not_run(tmp_path: Path) -> None:
    world = World(tmp_path)
    unknown = world.nudge("run", "--connection", "7")
    assert unknown.exit_code == 1
    assert "no connection with id 7" in unknown.output
    cid = world.connect("Practice", "t1", "Acme Ledger")
    with world.store.unit_of_work() as uow:
        row = uow.connections.by_id(cid)
        assert row is not None
        row.status = ConnectionStatus.DISCONNECTED.value
        uow.commit()
    key = generate_key()
    disconnected = world.nudge("run", "--connection", str(cid), vault_key=key)
    assert disconnected.exit_code == 1, disconnected.output
    assert f"connection {cid} not run: Acme Ledger is disconnected" in disconnected.output
    busy_id = world.connect("Practice", "t2", "Busy Books")
    with world.store.unit_of_work() as uow:
        busy = uow.connections.by_id(busy_id)
        assert busy is not None
        busy.lease_owner, busy.lease_until = "another-worker", datetime.now(UTC) + timedelta(minutes=10)
        uow.commit()
    held = world.nudge("run", "--connection", str(busy_id), vault_key=key)
    assert held.exit_code == 1, held.output
    assert f"connection {busy_id} not run: busy: another worker holds it" in held.output


def test_preview_before_the_first_sync_says_so(tmp_path: Path) -> None:
    world = World(tmp_path)
    cid = world.connect("Practice", "t1", "Acme Ledger")
    result = world.nudge("preview", "--connection", str(cid))
    assert result.exit_code == 0, result.output
    assert f"no synced data yet for Acme Ledger: run `nudge run --connection {cid}` first" in result.output
    assert "0 actions" not in result.output
    world.sync_and_plan(cid)
    synced = world.nudge("preview", "--connection", str(cid))
    assert synced.output.startswith("Preview for Acme Ledger")
    assert "waiting for review" in synced.output


def test_users_create_adds_an_existing_user_to_another_organization(tmp_path: Path) -> None:
    """One person, many organizations: `users create` with a known email adds the role in the named organization."""
    world = World(tmp_path)
    first = world.nudge(
        "users", "create", "--email", "ann@example.com", "--organization", "Acme", "--password", "x" * 12 + "Q!"
    )
    assert first.exit_code == 0, first.output
    second = world.nudge(
        "users", "create", "--email", "ANN@example.com", "--organization", "Bright Shop", "--role", "accountant"
    )
    assert second.exit_code == 0, second.output
    assert "added ann@example.com (accountant of Bright Shop, new organization" in second.output
    again = world.nudge("users", "create", "--email", "ann@example.com", "--organization", "Bright Shop")
    assert again.exit_code == 1
    assert "already exists in Bright Shop" in again.output
    with world.store.unit_of_work() as uow:
        user = uow.users.by_email("ann@example.com")
        assert user is not None
        assert sorted(org.name for org, _role in uow.organizations.for_user(user.id)) == ["Acme", "Bright Shop"]

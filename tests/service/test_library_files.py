"""Config as code on SQLite and PostgreSQL: `nudge library export` then `import` changes nothing; an edited
file applies as new versions (audited "import"); a broken file is refused with file:line like check-config;
in-use items are never deleted; the CLI through click's CliRunner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from connector import cli
from connector.bootstrap import Services
from connector.config import check_library_text
from connector.errors import ConfigError
from connector.library import audit, items
from connector.library.files import export_library, import_library
from connector.library.resolve import CADENCE, LATE_FEE, TEMPLATE
from connector.registry import Registry
from connector.storage import Store
from tests.support.clock import FakeClock
from tests.support.library import NOW, add_client, seeded_org, starter_settings


def _export(store: Store, org_id: int) -> str:
    with store.unit_of_work() as uow:
        return export_library(uow, org_id)


def _import(store: Store, org_id: int, text: str, **kwargs: bool) -> object:
    with store.unit_of_work() as uow:
        report = import_library(uow, org_id, text, source="lib.yaml", actor="cli", now=NOW, **kwargs)
        uow.commit()
    return report


def _versions(store: Store, org_id: int) -> dict[tuple[str, str], int]:
    with store.unit_of_work() as uow:
        return {(i.kind, i.name): i.version for i in items.list_items(uow, org_id)}


def test_the_export_is_todays_format_and_passes_check_config(store: Store) -> None:
    org_id = seeded_org(store)
    text = _export(store, org_id)
    document = yaml.safe_load(text)
    assert set(document) == {"cadences", "policies", "templates"}
    assert document["cadences"]["standard"] == starter_settings().cadences["standard"]
    assert set(document["policies"]) == {"templates", "late_fees", "discounts", "payment_plans"}
    assert document["policies"]["late_fees"]["monthly_interest"]["kind"] == "interest"
    assert "{{" in document["templates"]["firm"]["body.txt"]
    checked = check_library_text(text, "export.yaml")
    assert set(checked.rules.cadences) == {"standard"}


def test_export_then_import_changes_nothing(store: Store) -> None:
    org_id = seeded_org(store)
    before = _versions(store, org_id)
    report = _import(store, org_id, _export(store, org_id), delete_missing=True)
    assert not report.changed  # type: ignore[attr-defined]
    assert _versions(store, org_id) == before


def test_an_edited_file_applies_as_new_versions_audited_as_import(store: Store) -> None:
    org_id = seeded_org(store)
    document = yaml.safe_load(_export(store, org_id))
    document["policies"]["late_fees"]["monthly_interest"]["grace_days"] = 14
    document["policies"]["late_fees"]["flat_25"] = {"kind": "flat", "amount": 25}
    document["cadences"]["strict"] = {"steps": [{"id": "late", "offset": 5, "remind": "firm", "late_fee": "flat_25"}]}
    document["templates"]["firm"]["subject.txt"] = "Overdue: {{ invoice.number }}"
    report = _import(store, org_id, yaml.safe_dump(document))
    assert sorted(report.created) == [(CADENCE, "strict"), (LATE_FEE, "flat_25")]  # type: ignore[attr-defined]
    assert sorted(report.updated) == [(LATE_FEE, "monthly_interest"), (TEMPLATE, "firm")]  # type: ignore[attr-defined]
    versions = _versions(store, org_id)
    assert versions[(LATE_FEE, "monthly_interest")] == 2
    assert versions[(CADENCE, "standard")] == 1
    with store.unit_of_work() as uow:
        changes = {(e.entity, e.change, e.actor) for e in audit.entries(uow, org_id, limit=4)}
    assert changes == {(CADENCE, "import", "cli"), (LATE_FEE, "import", "cli"), (TEMPLATE, "import", "cli")}


def test_a_broken_file_is_refused_with_file_and_line_and_nothing_changes(store: Store) -> None:
    org_id = seeded_org(store)
    before = _versions(store, org_id)
    text = _export(store, org_id).replace("offset: 14", "offset: fourteen", 1)
    with pytest.raises(ConfigError) as refused:
        _import(store, org_id, text)
    issue = refused.value.issues[0]
    assert issue.file == "lib.yaml"
    assert issue.line is not None
    assert text.splitlines()[issue.line - 1].strip().startswith("standard:")
    assert "offset" in issue.message
    broken_template = _export(store, org_id).replace("{{ customer_name }}", "{{ customer_nam }}", 1)
    with pytest.raises(ConfigError) as template:
        _import(store, org_id, broken_template)
    (problem,) = template.value.issues
    assert problem.path.startswith("templates.")
    assert problem.line is not None
    assert "line " in problem.message
    assert "customer_nam" in problem.message
    assert _versions(store, org_id) == before


def test_delete_missing_keeps_items_in_use_and_reports_them(store: Store) -> None:
    org_id = seeded_org(store)
    with store.unit_of_work() as uow:
        standard = items.list_items(uow, org_id, CADENCE)[0].id
        add_client(uow, org_id, "Acme Ltd", standard)
        uow.commit()
    document = yaml.safe_load(_export(store, org_id))
    document["cadences"] = {}
    del document["policies"]["late_fees"]["uk_statutory"]
    del document["policies"]["late_fees"]["monthly_interest"]
    report = _import(store, org_id, yaml.safe_dump(document), delete_missing=True)
    assert report.deleted == [(LATE_FEE, "uk_statutory")]  # type: ignore[attr-defined]
    kept = {(kind, name): why for kind, name, why in report.kept_in_use}  # type: ignore[attr-defined]
    assert "Acme Ltd" in kept[(CADENCE, "standard")]
    assert "cadence 'standard'" in kept[(LATE_FEE, "monthly_interest")]
    assert (CADENCE, "standard") in _versions(store, org_id)


# -- the CLI --------------------------------------------------------------------------------------------
@pytest.fixture
def run(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """`nudge …` through CliRunner against the test store (SQLite or a PostgreSQL schema)."""
    settings = starter_settings()
    services = Services(settings=settings, store=store, registry=Registry({}, {}), clock=FakeClock(NOW))
    monkeypatch.setattr(cli._Context, "settings", property(lambda self: settings))
    monkeypatch.setattr(cli._Context, "services", lambda self: services)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)

    return invoke


def test_cli_export_import_round_trip_dry_run_and_a_broken_file(store: Store, run: object, tmp_path: Path) -> None:
    with store.unit_of_work() as uow:
        org_id = uow.organizations.add("Practice").id  # not seeded yet: export seeds it first
        uow.commit()
    exported = tmp_path / "library.yaml"
    result = run("library", "export", "--org", str(org_id), "--output", str(exported))  # type: ignore[operator]
    assert result.exit_code == 0, result.output
    assert "standard:" in exported.read_text()
    again = run("library", "import", "--org", str(org_id), str(exported))  # type: ignore[operator]
    assert again.exit_code == 0, again.output
    assert "nothing to change" in again.output
    edited = tmp_path / "edited.yaml"
    edited.write_text(exported.read_text().replace("grace_days: 7", "grace_days: 9", 1))
    dry = run("library", "import", "--org", str(org_id), str(edited), "--dry-run")  # type: ignore[operator]
    assert dry.exit_code == 0, dry.output
    assert "would have updated late fee 'monthly_interest'" in dry.output
    assert _versions(store, org_id)[(LATE_FEE, "monthly_interest")] == 1
    applied = run("library", "import", "--org", str(org_id), str(edited))  # type: ignore[operator]
    assert "updated late fee 'monthly_interest' (new version)" in applied.output
    assert _versions(store, org_id)[(LATE_FEE, "monthly_interest")] == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text("cadences:\n  quick:\n    steps:\n      - {id: a, offset: 1, remind: firm, bogus: 1}\n")
    refused = run("library", "import", "--org", str(org_id), str(broken))  # type: ignore[operator]
    assert refused.exit_code == 1
    assert f"{broken}:2:3: cadences.quick:" in refused.output
    assert "bogus" in refused.output
    missing = run("library", "export", "--org", "999999")  # type: ignore[operator]
    assert missing.exit_code == 1
    assert "no organization with id 999999" in missing.output


def test_a_file_cadence_naming_a_policy_the_library_lacks_is_refused_at_its_line(store: Store) -> None:
    org_id = seeded_org(store)
    text = "cadences:\n  quick:\n    steps:\n      - {id: a, offset: 3, remind: firm, late_fee: nowhere}\n"
    with pytest.raises(ConfigError) as refused:
        _import(store, org_id, text)
    (issue,) = refused.value.issues
    assert (issue.file, issue.line, issue.path) == ("lib.yaml", 2, "cadences.quick")
    assert "unknown late-fee policy 'nowhere'" in issue.message


def test_cli_users_create_seeds_a_new_organization(store: Store, run: object) -> None:
    result = run(  # type: ignore[operator]
        "users",
        "create",
        "--email",
        "owner@example.com",
        "--organization",
        "Acme Books",
        "--password",
        "a long password",
    )
    assert result.exit_code == 0, result.output
    with store.unit_of_work() as uow:
        organization = uow.organizations.by_name("Acme Books")
        assert organization is not None
        assert {i.name for i in items.list_items(uow, organization.id, CADENCE)} == {"standard"}

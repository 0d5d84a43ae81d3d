"""The production wheel: built offline from the sources, it carries connector/, providers/ and web/ but
neither the provider emulators (providers/_emulator, providers/<p>/emulator) nor the sample payloads
(providers/<p>/fixtures); the `nudge` command still starts without them. The development install keeps
the emulators importable (pyproject.toml, [tool.setuptools.packages.find])."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import EntryPoint
from pathlib import Path

import click
import pytest

import connector.cli as cli

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "connector", "providers", "web")


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Every path in the wheel built from a copy of the sources (the working tree gets no build/ folder)."""
    project = tmp_path_factory.mktemp("project")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, project / name)
    out = project / "dist"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    built = subprocess.run([*command, "-w", str(out), str(project)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = out.glob("nudge-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_leaves_out_emulators_and_fixtures(wheel_names: list[str]) -> None:
    emulator_paths = [name for name in wheel_names if "/emulator/" in name or name.startswith("providers/_emulator/")]
    fixture_paths = [name for name in wheel_names if "/fixtures/" in name]
    assert emulator_paths == []
    assert fixture_paths == []


def test_the_wheel_carries_connector_providers_and_web(wheel_names: list[str]) -> None:
    for module in (
        "connector/cli.py",
        "connector/worker/scheduler.py",
        "providers/quickbooks/adapter.py",
        "providers/xero/adapter.py",
        "web/__init__.py",
    ):
        assert module in wheel_names, module
    assert any(name.startswith("web/templates/") for name in wheel_names)


def test_the_development_install_keeps_the_emulators() -> None:
    for module in ("providers._emulator.kit", "providers.quickbooks.emulator.kit", "providers.xero.emulator.kit"):
        importlib.import_module(module)
    assert (ROOT / "providers" / "quickbooks" / "fixtures").is_dir()


def test_nudge_skips_a_command_whose_module_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a production install sees: `demo` is declared, providers._emulator is absent."""
    absent = EntryPoint("ghost-demo", "providers._absent_emulator.commands:demo", "nudge.commands")
    present = EntryPoint("ghost-hello", f"{__name__}:hello", "nudge.commands")
    monkeypatch.setattr(cli, "entry_points", lambda group: [absent, present])
    monkeypatch.setattr(cli.main, "commands", dict(cli.main.commands))
    cli._load_plugins()
    assert "ghost-demo" not in cli.main.commands
    assert "ghost-hello" in cli.main.commands


def test_nudge_still_fails_on_a_broken_import_inside_an_installed_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "ghost_plugin.py").write_text("import ghost_dependency_that_is_absent\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = EntryPoint("ghost-broken", "ghost_plugin:command", "nudge.commands")
    monkeypatch.setattr(cli, "entry_points", lambda group: [broken])
    monkeypatch.setattr(cli.main, "commands", dict(cli.main.commands))
    with pytest.raises(ModuleNotFoundError):
        cli._load_plugins()


@click.command("ghost-hello")
def hello() -> None:
    """A command that is installed."""

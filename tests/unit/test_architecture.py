"""The import rules of docs/design.md are enforced: the contracts pass, and would fail if broken.

The contracts are read from pyproject.toml; one copy of the tree with a deliberate violation of each
contract is linted once, and each test looks for its contract among the broken ones.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")
CONTRACTS: list[dict[str, Any]] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "contracts"
]
# One deliberate violation per contract: (file in the copied tree, its body).
VIOLATIONS = {
    "connector/sync_leak.py": "import flask\n",
    "connector/domain/leak.py": "import sqlalchemy\n",
    "connector/storage/leak.py": "import connector.sync\n",
    "providers/xero/leak.py": "import providers.quickbooks\n",
    "providers/quickbooks/web_leak.py": "import web\n",
    "web/leak.py": "import providers.quickbooks\n",
}


def _contract(**wanted: Any) -> str:
    """The name of the one contract whose settings include `wanted`."""
    [found] = [c for c in CONTRACTS if all(c.get(key) == value for key, value in wanted.items())]
    return str(found["name"])


def _lint(cwd: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(cwd))
    result = subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    output = " ".join(result.stdout.split())  # lint-imports wraps long contract names
    assert (result.returncode == 0) == ("BROKEN" not in output), result.stdout + result.stderr
    return output


def _copy_tree(into: Path) -> Path:
    copy = into / "tree"
    copy.mkdir()
    for name in ("connector", "providers", "web"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> str:
    """lint-imports' output over a copy of the tree holding every violation of VIOLATIONS."""
    copy = _copy_tree(tmp_path_factory.mktemp("architecture"))
    for name, body in VIOLATIONS.items():
        (copy / name).write_text(f'"""A deliberate violation."""\n{body}')
    # A provider adapter reaching its emulator.
    adapter = copy / "providers" / "quickbooks" / "adapter.py"
    adapter.write_text(adapter.read_text() + "\nimport providers.quickbooks.emulator  # noqa: E402\n")
    return _lint(copy)


def test_connector_importing_flask_breaks_the_contract(broken: str) -> None:
    assert f"{_contract(type='forbidden', source_modules=['connector'])} BROKEN" in broken
    assert "connector.sync_leak -> flask" in broken


def test_domain_importing_sqlalchemy_breaks_purity(broken: str) -> None:
    assert f"{_contract(type='forbidden', source_modules=['connector.domain'])} BROKEN" in broken


def test_an_upward_import_in_connector_breaks_the_layers(broken: str) -> None:
    assert f"{_contract(type='layers', containers=['connector'])} BROKEN" in broken
    assert "connector.storage.leak -> connector.sync" in broken


def test_a_provider_importing_another_breaks_their_independence(broken: str) -> None:
    assert f"{_contract(type='independence', modules=['providers.*'])} BROKEN" in broken
    assert "providers.xero.leak -> providers.quickbooks" in broken


def test_web_importing_a_provider_breaks_the_contract(broken: str) -> None:
    assert f"{_contract(type='forbidden', source_modules=['web'])} BROKEN" in broken
    assert "web.leak -> providers.quickbooks" in broken


def test_an_adapter_importing_its_emulator_breaks_the_contract(broken: str) -> None:
    name = _contract(type="forbidden", forbidden_modules=["providers._emulator", "providers.*.emulator"])
    assert f"{name} BROKEN" in broken
    assert "providers.quickbooks.adapter -> providers.quickbooks.emulator" in broken


def test_providers_importing_web_breaks_the_contract(broken: str) -> None:
    assert f"{_contract(type='forbidden', source_modules=['providers'])} BROKEN" in broken
    assert "providers.quickbooks.web_leak -> web" in broken


def test_every_contract_is_exercised(broken: str) -> None:
    """A contract added to pyproject.toml needs its deliberate violation here."""
    assert [c["name"] for c in CONTRACTS if f"{c['name']} BROKEN" not in broken] == []


def test_the_layers_contract_places_every_part_of_connector() -> None:
    """A new package or module under connector/ must be given a layer (or it could import anything)."""
    [layers] = [c for c in CONTRACTS if c["type"] == "layers" and c["containers"] == ["connector"]]
    named = {part.strip().strip("()") for layer in layers["layers"] for part in re.split(r"[:|]", layer)}
    parts = {
        path.stem if path.is_file() else path.name
        for path in (ROOT / "connector").iterdir()
        if (path.suffix == ".py" and path.name != "__init__.py") or (path / "__init__.py").is_file()
    }
    assert parts - named == set(), "parts of connector/ in no layer"
    assert named - parts == set(), "layers naming nothing"
    for bottom in ("domain", "errors"):
        assert bottom in layers["layers"][-1]
    assert layers["layers"][0] == "cli"


def test_domain_imports_only_the_standard_library_holidays_and_itself() -> None:
    allowed_third_party = {"holidays"}
    offenders = []
    for path in sorted((ROOT / "connector" / "domain").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                ok = (
                    top in sys.stdlib_module_names
                    or top in allowed_third_party
                    or name == "connector.domain"
                    or name.startswith("connector.domain.")
                )
                if not ok:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert offenders == []


def test_contracts_hold_on_the_real_tree() -> None:
    output = _lint(ROOT)
    assert "BROKEN" not in output, output
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in output

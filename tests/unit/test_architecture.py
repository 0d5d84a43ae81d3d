"""The import rules of docs/design.md are enforced: the contracts pass, and would fail if broken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _copy_tree(tmp_path: Path) -> Path:
    copy = tmp_path / "tree"
    copy.mkdir()
    for name in ("connector", "providers", "web"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_connector_importing_flask_breaks_the_contract(tmp_path: Path) -> None:
    copy = _copy_tree(tmp_path)
    with (copy / "connector" / "sync_leak.py").open("w") as handle:
        handle.write('"""A deliberate violation."""\nimport flask  # noqa: F401\n')
    result = _lint(copy)
    assert result.returncode != 0
    assert "connector imports neither providers nor web nor flask BROKEN" in result.stdout
    assert "connector.sync_leak -> flask" in result.stdout


def test_domain_importing_sqlalchemy_breaks_purity(tmp_path: Path) -> None:
    copy = _copy_tree(tmp_path)
    with (copy / "connector" / "domain" / "leak.py").open("w") as handle:
        handle.write('"""A deliberate violation."""\nimport sqlalchemy  # noqa: F401\n')
    result = _lint(copy)
    assert result.returncode != 0
    assert "connector.domain is pure: standard library, holidays and itself BROKEN" in result.stdout


def test_domain_imports_only_the_standard_library_holidays_and_itself() -> None:
    import ast

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
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout
    assert "BROKEN" not in result.stdout

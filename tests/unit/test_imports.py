"""Every module of connector/, providers/ and web/ imports on its own, and there is no import cycle.

The graph is grimp's (the one import-linter checks) over the modules pkgutil finds, emulators included.
Every import counts wherever it stands: at module level, under TYPE_CHECKING, or inside a function. A
function-local import is lazy, so it does not fail today, but it is a cycle waiting for the day someone
moves it to the top of the file; the ones found by walking the source are added to the graph (grimp
already has them) and named as such when they close a cycle. Importing `a.b.c` first runs `a` and
`a.b`, so an import of a module also counts as an import of the packages above it that the importer is
not itself inside: cycles through package __init__ modules are found too.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import pairwise
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("connector", "providers", "web")

Graph = dict[str, set[str]]


def walk_modules(packages: Iterable[str]) -> list[str]:
    """Every module and package under `packages`, as pkgutil finds them."""
    found: set[str] = set()
    for name in packages:
        package = importlib.import_module(name)
        found.add(name)
        found.update(info.name for info in pkgutil.walk_packages(package.__path__, f"{name}."))
    return sorted(found)


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _resolve(name: str, modules: set[str]) -> str | None:
    """The module an imported name lands in: itself, or the nearest enclosing module of ours."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        source = f"{base}.{node.module}" if node.module else base
    else:
        source = node.module or ""
    return [f"{source}.{alias.name}" for alias in node.names]  # `from m import name`: module m.name, else m


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement, and whether it stands inside a function body."""
    pending: list[tuple[ast.AST, bool]] = [(tree, False)]
    while pending:
        node, in_function = pending.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, in_function
            pending.append((child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)))


def source_imports(modules: Iterable[str]) -> tuple[set[tuple[str, str]], dict[tuple[str, str], str]]:
    """(importer, imported) pairs read from the source: those at module level, and those inside a
    function body (mapped to "path:line")."""
    known = set(modules)
    top: set[tuple[str, str]] = set()
    local: dict[tuple[str, str], str] = {}
    for module in sorted(known):
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        path = Path(spec.origin)
        where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        for node, in_function in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for name in _imported_names(node, module, path.name == "__init__.py"):
                target = _resolve(name, known)
                if target is None or target == module:
                    continue
                if in_function:
                    local.setdefault((module, target), f"{where}:{node.lineno}")
                else:
                    top.add((module, target))
    return top, local


def function_local_imports(modules: Iterable[str]) -> dict[tuple[str, str], str]:
    """(importer, imported) -> "path:line" for every import statement inside a function body."""
    return source_imports(modules)[1]


def import_graph(
    packages: Iterable[str],
    extra_edges: Iterable[tuple[str, str]] = (),
    dropped_edges: Iterable[tuple[str, str]] = (),
) -> Graph:
    """importer -> imported modules, with the implied imports of the packages above each import."""
    names = list(packages)
    built = grimp.build_graph(*names, cache_dir=None)
    modules = set(built.modules)
    direct: Graph = {m: set(built.find_modules_directly_imported_by(m)) & modules for m in modules}
    for importer, imported in extra_edges:
        direct.setdefault(importer, set()).add(imported)
    for importer, imported in dropped_edges:
        direct.get(importer, set()).discard(imported)
    graph: Graph = {m: set(targets) for m, targets in direct.items()}
    for importer, targets in direct.items():
        inside = {importer, *_ancestors(importer)}
        for target in targets:
            graph[importer].update(a for a in _ancestors(target) if a not in inside and a in modules)
        graph[importer].discard(importer)
    return graph


def strongly_connected(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of two or more modules that reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group: list[str] = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def a_cycle(graph: Mapping[str, set[str]], group: list[str]) -> list[str]:
    """The shortest cycle through the first module of a strongly connected group, closed (first == last)."""
    start, members = group[0], set(group)
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph[node] & members):
            if target == start:
                path = [node]  # back from `node` to `start`
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if target not in previous:
                previous[target] = node
                queue.append(target)
    raise AssertionError(f"{group} is not strongly connected")


def describe_cycles(graph: Mapping[str, set[str]], lazy: Mapping[tuple[str, str], str]) -> list[str]:
    lines = []
    for group in strongly_connected(graph):
        cycle = a_cycle(graph, group)
        steps = []
        for importer, imported in pairwise(cycle):
            where = lazy.get((importer, imported))
            steps.append(f"{importer} -> {imported}" + (f" (inside a function, {where})" if where else ""))
        lines.append(f"cycle among {len(group)} modules {group}:\n    " + "\n    ".join(steps))
    return lines


def test_every_package_is_walked_and_graphed() -> None:
    modules = walk_modules(PACKAGES)
    graph = import_graph(PACKAGES)
    assert set(graph) == set(modules)
    assert "providers.quickbooks.emulator" in modules
    assert "providers.xero.emulator" in modules
    assert "web.commands" in modules


def test_no_import_cycle_even_counting_function_local_imports() -> None:
    modules = walk_modules(PACKAGES)
    lazy = function_local_imports(modules)
    graph = import_graph(PACKAGES, lazy)
    cycles = describe_cycles(graph, lazy)
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def needs_in_order(graph: Mapping[str, set[str]], modules: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Each module (dependencies first) with what importing it loads: its packages and their imports."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(module: str) -> None:
        if module not in seen:
            seen.add(module)
            for target in sorted(graph.get(module, ())):
                visit(target)
            order.append(module)

    wanted = sorted(modules)
    for module in wanted:
        visit(module)
    result = []
    for module in (m for m in order if m in set(wanted)):
        needs: set[str] = set()
        pending = [module, *_ancestors(module)]
        while pending:
            current = pending.pop()
            if current not in needs:
                needs.add(current)
                pending.extend(graph.get(current, ()))
                pending.extend(_ancestors(current))
        result.append((module, sorted(needs - {module})))
    return result


IMPORT_EACH = textwrap.dedent(
    """
    import importlib, json, sys, traceback

    roots = set(sys.argv[1].split(","))
    failures = {}
    for name, needs in json.loads(sys.stdin.read()):
        keep = set(needs)
        for loaded in [m for m in sys.modules if m.partition(".")[0] in roots and m not in keep]:
            module = sys.modules.pop(loaded)
            parent, _, child = loaded.rpartition(".")
            if parent in keep and getattr(sys.modules.get(parent), child, None) is module:
                delattr(sys.modules[parent], child)  # a kept package forgets it too
        try:
            importlib.import_module(name)
        except BaseException:
            failures[name] = traceback.format_exc(limit=-8)
    print(json.dumps(failures))
    """
)


def import_each(packages: Sequence[str], modules: Iterable[str], where: Path) -> dict[str, str]:
    """Import every module as `test_every_module_imports_on_its_own` says; module -> traceback of failures."""
    wanted = [m for m in modules if m.rpartition(".")[2] != "__main__"]
    top, local = source_imports(wanted)
    graph = import_graph(packages, dropped_edges=set(local) - top)  # a lazy import loads nothing up front
    plan = needs_in_order(graph, wanted)
    assert sorted(name for name, _ in plan) == sorted(wanted)
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH, ",".join(packages)],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        cwd=where,
        env={**os.environ, "PYTHONPATH": str(where)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    failures: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return failures


def test_every_module_imports_on_its_own() -> None:
    """Each module is imported in an interpreter holding none of our modules except those it imports itself.

    Third-party libraries stay loaded; of ours, only the module's own (module-level) import closure may
    be loaded already, each checked the same way before it. With no cycle in the graph, a module's own
    imports being loaded first changes nothing for it, while anything else of ours being loaded could hide
    a missing import (`import connector` and then `connector.x.y`): that is unloaded before each module.
    Purging everything before every module would say the same in ~20 s instead of ~3 s.
    `__main__` modules run their program when imported, so they are only checked through the graph.
    """
    failures = import_each(PACKAGES, walk_modules(PACKAGES), ROOT)
    assert failures == {}, "\n".join(f"{name}:\n{trace}" for name, trace in failures.items())


# -- the checker itself, on a small package with the cycles it must find ------------------------------
SAMPLE = {
    "cyclesample/__init__.py": "from cyclesample.api import handler\n",
    "cyclesample/api.py": "def handler():\n    from cyclesample.store import load\n\n    return load()\n",
    "cyclesample/store.py": "import cyclesample.api\n\n\ndef load():\n    return 1\n",
    "cyclesample/util/__init__.py": "from cyclesample.util.text import shout\n",
    "cyclesample/util/text.py": "def shout(s):\n    return s.upper()\n",
    "cyclesample/util/numbers.py": "from cyclesample.util.text import shout\n",
    "cyclesample/pkg/__init__.py": "from cyclesample.pkg.inner import thing\n",
    "cyclesample/pkg/inner.py": "from cyclesample.leaf import helper\n\nthing = helper\n",
    "cyclesample/pkg/other.py": "value = 1\n",
    "cyclesample/leaf.py": "from cyclesample.pkg.other import value\n\n\ndef helper():\n    return value\n",
    "cyclesample/wrapup.py": "import cyclesample\n\nSHOUTED = cyclesample.util.text.shout('works only after util')\n",
}


def _forget_sample() -> None:
    for name in [m for m in sys.modules if m.partition(".")[0] == "cyclesample"]:
        del sys.modules[name]


@pytest.fixture
def sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name, body in SAMPLE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield tmp_path
    finally:
        _forget_sample()


def test_the_checker_finds_lazy_cycles_and_cycles_through_package_inits(sample: Path) -> None:
    modules = walk_modules(["cyclesample"])
    assert "cyclesample.util.numbers" in modules
    lazy = function_local_imports(modules)
    assert lazy == {("cyclesample.api", "cyclesample.store"): f"{sample / 'cyclesample' / 'api.py'}:2"}
    graph = import_graph(["cyclesample"], lazy)
    groups = strongly_connected(graph)
    # api -> store only inside a function; store -> api at the top: a cycle all the same.
    assert ["cyclesample.api", "cyclesample.store"] in groups
    # pkg/__init__ -> pkg.inner -> leaf -> pkg.other, which runs pkg/__init__ first: a cycle through a package.
    assert ["cyclesample.leaf", "cyclesample.pkg", "cyclesample.pkg.inner"] in groups
    # util.numbers -> util.text runs util/__init__ too, but numbers is inside util already: no cycle.
    assert not any("cyclesample.util" in group for group in groups)
    assert len(groups) == 2
    described = "\n".join(describe_cycles(graph, lazy))
    assert "cyclesample.api -> cyclesample.store (inside a function," in described
    assert a_cycle(graph, ["cyclesample.api", "cyclesample.store"]) == [
        "cyclesample.api",
        "cyclesample.store",
        "cyclesample.api",
    ]


def test_import_each_unloads_what_a_module_does_not_import_itself(sample: Path) -> None:
    modules = walk_modules(["cyclesample"])
    _forget_sample()
    failures = import_each(["cyclesample"], modules, sample)
    assert list(failures) == ["cyclesample.wrapup"]  # util.text was loaded before it, but not by it
    assert "has no attribute 'util'" in failures["cyclesample.wrapup"]

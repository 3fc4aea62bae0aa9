"""The package's layout is its data path, and the tests keep it so.

* The engine never imports Qt: it runs in the CLI, benchmarks and CI.
* Imports run one way, down the layers below; nothing imports upward and
  there are no circles, counting imports inside functions and under
  TYPE_CHECKING too (each is a real dependency for a reader).
* No folder holds more than 12 modules, and no module is over 500 lines.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import imgdedupe
import imgdedupe.core

PACKAGE = Path(imgdedupe.__file__).parent

# Lowest first. A module may import its own unit and the units below it.
# The engine's units follow the scan: files are found and hashed, decoded
# into images, embedded by a model; pairs are searched, grouped, acted on;
# the scan drives them all. verify (evidence that a pair is one picture)
# sits between the pairs it checks and the groups it will shape. records,
# errors and units are the vocabulary every layer speaks.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("imgdedupe.core.units",),
    ("imgdedupe.core.records",),
    ("imgdedupe.core.errors",),
    ("imgdedupe.core.files",),
    ("imgdedupe.core.storage",),
    ("imgdedupe.core.images",),
    ("imgdedupe.core.model",),
    ("imgdedupe.core.pairs",),
    ("imgdedupe.core.verify",),
    ("imgdedupe.core.groups",),
    ("imgdedupe.core.actions",),
    ("imgdedupe.core.scan",),
    ("imgdedupe.report",),
    ("imgdedupe.cli",),
    ("imgdedupe.gui.jobs",),
    ("imgdedupe.gui.review",),
    ("imgdedupe.gui",),
    ("imgdedupe.__main__",),
)
MAX_MODULES_PER_FOLDER = 12
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports, wherever the import is."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # "from pkg import mod" imports the module pkg.mod.
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                       for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in known and t != name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _unit(module: str) -> tuple[int, str]:
    """(layer, unit) of a module: the longest matching prefix in LAYERS."""
    best: tuple[int, str] | None = None
    for rank, units in enumerate(LAYERS):
        for unit in units:
            if (module == unit or module.startswith(unit + ".")) and (
                    best is None or len(unit) > len(best[1])):
                best = (rank, unit)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add its folder to LAYERS")
    return best


def test_every_module_has_a_layer():
    for module in _graph():
        if module not in ("imgdedupe", "imgdedupe.core"):
            _unit(module)


def test_imports_only_go_down():
    upward = []
    for module, targets in _graph().items():
        if module in ("imgdedupe", "imgdedupe.core"):
            continue
        rank, unit = _unit(module)
        for target in targets:
            if target in ("imgdedupe", "imgdedupe.core"):
                continue  # the version string, the package docstrings
            target_rank, target_unit = _unit(target)
            if target_unit != unit and target_rank >= rank:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_circles():
    graph = _graph()
    circles = []
    # Tarjan's strongly connected components: any of more than one module
    # is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert circles == []


def test_the_checker_sees_circles_and_upward_imports(tmp_path, monkeypatch):
    # The same parser on a known bad pair, so a broken parser cannot pass.
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from imgdedupe.core.scan import pipeline\n")
    assert _imports("imgdedupe.core.files.walk", a, {"imgdedupe.core.scan.pipeline"}) == {
        "imgdedupe.core.scan.pipeline"}
    b = tmp_path / "b.py"
    b.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                 "    from ..groups import graph\n")
    assert _imports("imgdedupe.core.records", b, {"imgdedupe.groups.graph"}) == {
        "imgdedupe.groups.graph"}
    assert _unit("imgdedupe.core.files.walk")[0] < _unit("imgdedupe.core.scan.pipeline")[0]


def test_folders_and_modules_stay_small():
    too_big = []
    per_folder: dict[Path, int] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py":
            per_folder[path.parent] = per_folder.get(path.parent, 0) + 1
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            too_big.append(f"{path.relative_to(PACKAGE)}: {lines} lines")
    too_big += [f"{folder.relative_to(PACKAGE.parent)}/: {count} modules"
                for folder, count in per_folder.items() if count > MAX_MODULES_PER_FOLDER]
    assert too_big == []


def test_core_never_imports_pyside6():
    modules = [m.name for m in pkgutil.walk_packages(imgdedupe.core.__path__, "imgdedupe.core.")]
    assert len(modules) >= 30
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6')]\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == ""

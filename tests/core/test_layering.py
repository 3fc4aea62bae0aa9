"""The engine must never import Qt: it runs in the CLI, benchmarks and CI."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import imgdedupe.core


def test_core_never_imports_pyside6():
    modules = [f"imgdedupe.core.{m.name}" for m in pkgutil.iter_modules(imgdedupe.core.__path__)]
    assert len(modules) >= 10
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

"""Nothing is ever deleted for good: no code path in imgdedupe/ removes a
file other than the app's own side files, the command line has no way to
delete at all, and where the platform has no trash a plain folder takes
the files, visibly."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

from imgdedupe import cli
from imgdedupe.core.actions import trash_backends as trash_module
from imgdedupe.core.actions.trash_backends import FolderTrash, FreedesktopTrash, default_trash
from imgdedupe.core.actions.trashing import (
    SeenFile,
    plan_deletions,
    trash_files,
)
from imgdedupe.core.storage.store import Store

from .support import REPO

pytestmark = pytest.mark.reliability

PACKAGE = REPO / "imgdedupe"

# Calls that destroy a file or folder. ``remove`` only on ``os`` (lists and
# sets have one too); ``unlink``/``rmdir`` on anything (os or a Path).
_ANY_RECEIVER = {"unlink", "rmdir", "rmtree", "removedirs"}
_OS_ONLY = {"remove"}
_IMPORTED = {("os", "remove"), ("os", "unlink"), ("os", "rmdir"), ("os", "removedirs"),
             ("shutil", "rmtree"), ("shutil", "move")}

# Every place allowed to remove something, and what it removes. A new one
# must be added here, by name, with its reason: never a photo.
ALLOWED = {
    ("core/actions/undoing.py", "_remove_trashinfo_of", "os.unlink"):
        "a .trashinfo that imgdedupe wrote for a move that never happened or was undone",
    ("core/actions/trash_backends.py", "_MoveReservation.release", "os.unlink"):
        "the .trashinfo this reservation wrote, when its move failed",
    ("core/model/weights.py", "_unlink_quietly", "path.unlink"):
        "a partial or damaged model-weights download",
    ("core/pairs/ann.py", "remove_stale_indexes", "old.unlink"):
        "stale approximate-index files in the cache folder beside the database",
    ("core/storage/cachefile.py", "save_npz", "stale.unlink"):
        "a pair-cache or scan-memo temp file left by a scan killed mid-save, in the cache folder",
    ("core/storage/cachefile.py", "save_npz", "tmp.unlink"):
        "this scan's own pair-cache or scan-memo temp file, when saving it failed",
}


def _call_name(node: ast.expr) -> str:
    return ast.unparse(node)


def _removals(source: str) -> list[tuple[str, str, int]]:
    """(enclosing function, callee, line) of every removing call or import."""
    tree = ast.parse(source)
    found: list[tuple[str, str, int]] = []

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = f"{scope}.{child.name}" if scope else child.name
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                attr, receiver = child.func.attr, _call_name(child.func.value)
                if attr in _ANY_RECEIVER or (attr in _OS_ONLY and receiver == "os"):
                    found.append((scope, _call_name(child.func), child.lineno))
                if attr == "move" and receiver == "shutil":
                    found.append((scope, "shutil.move", child.lineno))
            if isinstance(child, ast.ImportFrom):
                for alias in child.names:
                    if (child.module, alias.name) in _IMPORTED:
                        found.append((scope, f"from {child.module} import {alias.name}",
                                      child.lineno))
            visit(child, inner)

    visit(tree, "")
    return found


def test_the_scanner_itself_sees_every_kind_of_removal():
    source = ("import os, shutil\nfrom os import remove\n"
              "def f(p):\n    os.remove(p)\n    p.unlink()\n    shutil.rmtree(p)\n"
              "    shutil.move(p, p)\n    [].remove(1)\n")
    assert [callee for _, callee, _ in _removals(source)] == [
        "from os import remove", "os.remove", "p.unlink", "shutil.rmtree", "shutil.move"]


def test_only_the_apps_own_side_files_are_ever_removed():
    seen = set()
    unexpected = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for scope, callee, line in _removals(path.read_text(encoding="utf-8")):
            key = (relative, scope, callee)
            if key in ALLOWED:
                seen.add(key)
            else:
                unexpected.append(f"imgdedupe/{relative}:{line} {scope}: {callee}")
    assert unexpected == [], "new code removes files; photos must only ever be moved"
    # Stale entries would hide a removal that moved elsewhere.
    present = {k for k in ALLOWED if (PACKAGE / k[0]).exists()}
    assert seen == present


def test_the_command_line_cannot_delete():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(commands) == {"scan", "similar", "eval"}  # no delete, trash or clean
    tree = ast.parse(Path(cli.__file__).read_text(encoding="utf-8"))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in modules if m and ("actions" in m or "trash" in m)}
    assert "changes, moves or deletes" in cli.EPILOG


def test_without_a_platform_trash_a_visible_folder_takes_the_files(tmp_path, monkeypatch):
    for platform in ("win32", "darwin"):
        monkeypatch.setattr(sys, "platform", platform)
        assert isinstance(default_trash(str(tmp_path)), FolderTrash)
    monkeypatch.setattr(sys, "platform", "linux")
    backend = default_trash(str(tmp_path / "photos"))
    assert isinstance(backend, FreedesktopTrash) and isinstance(backend.fallback, FolderTrash)

    # No freedesktop trash can take it (no home trash on its filesystem, and
    # the topdir trash is a symlink): the fallback folder does, and says so.
    volume = tmp_path / "vol"
    (volume / "photos").mkdir(parents=True)
    monkeypatch.setattr(trash_module, "mount_point", lambda path: str(volume))
    monkeypatch.setattr(FreedesktopTrash, "_home_device", lambda self: -1)
    (tmp_path / "elsewhere").mkdir()
    (volume / f".Trash-{os.getuid()}").symlink_to(tmp_path / "elsewhere")
    keep, victim = volume / "photos" / "keep.jpg", volume / "photos" / "copy.jpg"
    for path in (keep, victim):
        path.write_bytes(b"same bytes")
    members = [SeenFile(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in (keep, victim)]
    backend = FreedesktopTrash(str(tmp_path / "data"), fallback=FolderTrash(str(volume)))
    with Store(tmp_path / "c.db") as store:
        (outcome,) = trash_files(store, plan_deletions([members], {str(victim)}),
                                 backend).outcomes
    assert outcome.status == "moved"
    assert outcome.trash_path == str(volume / "imgdedupe-trash" / "photos" / "copy.jpg")
    assert Path(outcome.trash_path).read_bytes() == b"same bytes"
    assert os.listdir(tmp_path / "elsewhere") == []

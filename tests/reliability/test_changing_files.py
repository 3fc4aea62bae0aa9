"""Files that change between the scan and the move, end to end from a real
scan's groups (which carry no hashes; the cache's are used). The cases on
hand-made plans are in tests/core/test_actions.py."""

from __future__ import annotations

import os
import random
import shutil

import pytest

from imgdedupe.core.actions.trash_backends import FreedesktopTrash
from imgdedupe.core.actions.trashing import plan_deletions, trash_files
from imgdedupe.core.storage.store import Store

from .support import scan_json as _scan

pytestmark = pytest.mark.reliability


def test_changed_renamed_replaced_and_deleted_files_are_refused_the_rest_move(
        tmp_path, photo_maker, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    root = tmp_path / "photos"
    photo_maker(root / "keep.jpg", 4, size=(320, 240))
    roles = ["modified", "replaced", "renamed", "deleted", "fine"]
    for role in roles:
        shutil.copyfile(root / "keep.jpg", root / f"{role}.jpg")
    (group,) = _scan(root, tmp_path)
    assert all(m.content_hash is None for m in group)  # as the window passes them
    path = {role: str(root / f"{role}.jpg") for role in roles}
    plan = plan_deletions([group], set(path.values()))
    assert plan.files == 5

    with open(path["modified"], "ab") as handle:
        handle.write(b"edited")
    st = os.stat(path["replaced"])  # other bytes, same size and mtime
    with open(path["replaced"], "r+b") as handle:
        handle.write(random.Random(5).randbytes(64))
    os.utime(path["replaced"], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (os.stat(path["replaced"]).st_size, os.stat(path["replaced"]).st_mtime_ns) == (
        st.st_size, st.st_mtime_ns)
    replaced_bytes = (root / "replaced.jpg").read_bytes()
    os.rename(path["renamed"], root / "renamed elsewhere.jpg")
    os.unlink(path["deleted"])

    with Store(tmp_path / "c.db") as store:
        result = trash_files(store, plan, FreedesktopTrash())
        journal = [(r.path, r.state) for r in store.journal_rows()]
    outcome = {o.path: o for o in result.outcomes}
    assert {role: (outcome[p].status, outcome[p].code) for role, p in path.items()} == {
        "modified": ("refused", "modified"),
        "replaced": ("refused", "replaced"),
        "renamed": ("refused", "missing"),
        "deleted": ("refused", "missing"),
        "fine": ("moved", ""),
    }
    assert all(outcome[p].reason for role, p in path.items() if role != "fine")
    assert journal == [(path["fine"], "done")]
    assert (root / "replaced.jpg").read_bytes() == replaced_bytes
    assert (root / "renamed elsewhere.jpg").read_bytes() == (root / "keep.jpg").read_bytes()
    assert (root / "modified.jpg").exists() and not (root / "fine.jpg").exists()

"""Paths that could trick a delete, end to end from a real scan: symlinks
out of the roots, hard links, and names with newlines, leading dashes,
bytes that are not UTF-8 and very long paths (scan -> JSON -> trash ->
undo)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from imgdedupe.core.actions.trash_backends import FreedesktopTrash
from imgdedupe.core.actions.trashing import (
    SeenFile,
    UnsafeActionError,
    plan_deletions,
    trash_files,
    undo,
)
from imgdedupe.core.storage.store import Store

from .support import scan_json as _scan

pytestmark = pytest.mark.reliability


@pytest.fixture
def trash(tmp_path, monkeypatch) -> FreedesktopTrash:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # never the real home trash
    return FreedesktopTrash()


def test_symlinks_out_of_the_roots_are_never_offered_nor_moved(tmp_path, photo_maker, trash):
    root, outside = tmp_path / "photos", tmp_path / "outside"
    photo_maker(root / "a.jpg", 1, size=(320, 240))
    shutil.copyfile(root / "a.jpg", root / "a copy.jpg")
    outside.mkdir()
    shutil.copyfile(root / "a.jpg", outside / "far.jpg")
    (root / "far link.jpg").symlink_to(outside / "far.jpg")
    (root / "linked dir").symlink_to(outside, target_is_directory=True)
    (root / "alias.jpg").symlink_to(root / "a.jpg")  # inside: found once, by its real path
    groups = _scan(root, tmp_path)
    assert [sorted(Path(m.path).name for m in g) for g in groups] == [["a copy.jpg", "a.jpg"]]

    # Handed a symlink anyway (a stale or forged group), the move refuses it.
    link = str(root / "far link.jpg")
    st = os.lstat(link)
    plan = plan_deletions([[*groups[0], SeenFile(link, st.st_size, st.st_mtime_ns)]], {link})
    with Store(tmp_path / "c.db") as store:
        (outcome,) = trash_files(store, plan, trash).outcomes
    assert (outcome.status, outcome.code) == ("refused", "not_regular")
    assert os.path.islink(link) and (outside / "far.jpg").read_bytes() == (
        root / "a.jpg").read_bytes()


def test_a_hard_link_is_never_the_copy_that_goes(tmp_path, photo_maker, trash):
    root = tmp_path / "photos"
    photo_maker(root / "p.jpg", 2, size=(320, 240))
    os.link(root / "p.jpg", root / "p hardlink.jpg")
    (root / "sub").mkdir()
    shutil.copyfile(root / "p.jpg", root / "sub" / "p copy.jpg")
    (group,) = _scan(root, tmp_path)
    by_name = {Path(m.path).name: m.path for m in group}
    assert sorted(by_name) == ["p copy.jpg", "p hardlink.jpg", "p.jpg"]

    # Keeping p.jpg, its other name frees nothing: refused; the real copy may go.
    plan = plan_deletions([group], {by_name["p hardlink.jpg"], by_name["p copy.jpg"]})
    assert [(Path(o.path).name, o.code) for o in plan.refused] == [("p hardlink.jpg",
                                                                    "same_file")]
    assert [Path(d.file.path).name for d in plan.deletions] == ["p copy.jpg"]
    # Keeping only the hard link: p.jpg is the same data, so it stays too.
    plan = plan_deletions([group], {by_name["p.jpg"], by_name["p copy.jpg"]})
    assert [Path(o.path).name for o in plan.refused] == ["p.jpg"]
    with Store(tmp_path / "c.db") as store:
        (moved,) = trash_files(store, plan, trash).with_status("moved")
    assert Path(moved.path).name == "p copy.jpg"
    assert (root / "p.jpg").exists() and (root / "p hardlink.jpg").exists()
    # And the last members of a group can never all be marked.
    with pytest.raises(UnsafeActionError):
        plan_deletions([group], set(by_name.values()))


def _awkward_names(root: Path) -> list[Path]:
    deep = root
    while len(os.fsencode(deep)) < 2800:  # PATH_MAX is 4096; ~3 KB of folders
        deep = deep / ("d" * 200)
    return [
        root / "-rf --no-preserve-root.jpg",
        root / "--.jpg",
        root / "new\nline.jpg",
        root / "tab\tand\rreturn.jpg",
        root / os.fsdecode(b"caf\xe9 latin-1.jpg"),
        root / os.fsdecode(b"\xff\xfe.jpg"),
        root / "e\u0301 ☃ 照片.jpg",
        deep / ("x" * 240 + ".jpg"),
    ]


def test_awkward_names_round_trip_through_scan_json_trash_and_undo(tmp_path, photo_maker,
                                                                    trash):
    root = tmp_path / "photos"
    photo_maker(root / "keep.jpg", 3, size=(320, 240))
    names = _awkward_names(root)
    for path in names:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / "keep.jpg", path)
    data = (root / "keep.jpg").read_bytes()
    (group,) = _scan(root, tmp_path)
    assert {m.path for m in group} == {str(root / "keep.jpg"), *map(str, names)}

    marked = {str(p) for p in names}
    plan = plan_deletions([group], marked)
    assert plan.refused == ()
    with Store(tmp_path / "c.db") as store:
        result = trash_files(store, plan, trash)
        assert {o.path for o in result.with_status("moved")} == marked, result.outcomes
        assert not any(p.exists() for p in names)
        restored = undo(store)
    assert {o.path for o in restored.with_status("restored")} == marked, restored.outcomes
    for path in names:
        assert path.read_bytes() == data
    assert not [p for p in (tmp_path / "data" / "Trash").rglob("*") if p.is_file()]
    # The report after the round trip is the same as before it.
    assert _scan(root, tmp_path, "again.json") == [group]

"""Delete = move to a trash, journalled, undoable; on real files in tmp_path."""

from __future__ import annotations

import os
import random
import re
import sqlite3
import stat
from pathlib import Path

import pytest

from imgdedupe.core.actions import trash_backends as trash_module
from imgdedupe.core.actions.ignore_marks import add_ignore_mark, remove_ignore_marks
from imgdedupe.core.actions.trash_backends import (
    CrossDeviceError,
    FolderTrash,
    FreedesktopTrash,
    TrashError,
    move_no_replace,
    read_trashinfo,
)
from imgdedupe.core.actions.trashing import (
    ActionError,
    SeenFile,
    UnsafeActionError,
    history,
    plan_deletions,
    recover,
    trash_files,
    undo,
)
from imgdedupe.core.errors import DatabaseError
from imgdedupe.core.files.hashing import content_hash
from imgdedupe.core.files.walk import is_system_dir_name
from imgdedupe.core.records import Group, ImageFile, Member
from imgdedupe.core.storage.store import Store


def write(path: Path | str, seed: int, size: int = 4096) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def seen(path: Path | str, with_hash: bool = True) -> SeenFile:
    st = os.lstat(path)
    return SeenFile(str(path), st.st_size, st.st_mtime_ns,
                    content_hash(str(path)) if with_hash else None)


@pytest.fixture
def volume(tmp_path, monkeypatch) -> Path:
    """Pretend tmp_path/vol is a mounted filesystem, so nothing is ever
    written at the real filesystem's top."""
    vol = tmp_path / "vol"
    vol.mkdir()

    def fake_mount_point(path: str) -> str:
        assert Path(path).is_relative_to(vol), path
        return str(vol)

    monkeypatch.setattr(trash_module, "mount_point", fake_mount_point)
    return vol


class Crash(BaseException):
    """Stands for the process dying: nothing in actions may catch it."""


def test_trash_then_undo_round_trip_in_the_freedesktop_trash(tmp_path, db, fdo):
    keep = write(tmp_path / "p" / "keep.jpg", 1)
    copies = [write(tmp_path / "p" / f"copy{i}.jpg", 1) for i in range(2)]
    originals = {str(c): c.read_bytes() for c in copies}
    plan = plan_deletions([[seen(keep), *map(seen, copies)]], {str(c) for c in copies})
    assert (plan.files, plan.total_bytes) == (2, 8192)
    assert plan.summary().startswith("Move 2 files (8.0 KB) to the trash")  # 8192 bytes

    result = trash_files(db, plan, fdo, description="2 copies")
    trash_dir = tmp_path / "data" / "Trash"
    for outcome in result.outcomes:
        assert outcome.status == "moved", outcome
        assert Path(outcome.trash_path).parent == trash_dir / "files"
        assert Path(outcome.trash_path).read_bytes() == originals[outcome.path]
        assert not os.path.lexists(outcome.path)
        info = trash_dir / "info" / (Path(outcome.trash_path).name + ".trashinfo")
        text = info.read_text("ascii")
        assert text.startswith("[Trash Info]\nPath=/")
        original, date = read_trashinfo(str(info))
        assert original == outcome.path
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", date)
    assert [r.state for r in db.journal_rows(result.batch_id)] == ["done", "done"]
    (batch,) = history(db)
    assert (batch.batch_id, batch.description, batch.states, batch.bytes_done) == (
        result.batch_id, "2 copies", {"done": 2}, 8192)

    restored = undo(db)
    assert [o.status for o in restored.outcomes] == ["restored", "restored"]
    for path, data in originals.items():
        assert Path(path).read_bytes() == data
    assert os.listdir(trash_dir / "files") == []
    assert os.listdir(trash_dir / "info") == []
    assert history(db)[0].states == {"undone": 2}
    assert undo(db).batch_id is None  # nothing left to undo


def test_same_names_get_unique_trash_names_and_return_home(tmp_path, db, fdo):
    keep = write(tmp_path / "keep.jpg", 2)
    twins = [write(tmp_path / d / "x.jpg", 2) for d in ("a", "b", "c")]
    plan = plan_deletions([[seen(keep), *map(seen, twins)]], {str(t) for t in twins})
    result = trash_files(db, plan, fdo)
    names = sorted(Path(o.trash_path).name for o in result.outcomes)
    assert names == ["x.2.jpg", "x.3.jpg", "x.jpg"]
    for outcome in result.outcomes:
        info = Path(outcome.trash_path).parent.parent / "info" / (
            Path(outcome.trash_path).name + ".trashinfo")
        assert read_trashinfo(str(info))[0] == outcome.path
    assert all(o.status == "restored" for o in undo(db, result.batch_id).outcomes)
    assert all(t.read_bytes() == keep.read_bytes() for t in twins)


def test_changed_files_are_refused_and_the_rest_proceed(tmp_path, db, fdo):
    keep = write(tmp_path / "keep.jpg", 3)
    names = ["modified", "missing", "replaced", "symlink", "folder", "fine"]
    files = {n: write(tmp_path / f"{n}.jpg", 3) for n in names}
    plan = plan_deletions([[seen(keep), *(seen(f) for f in files.values())]],
                          {str(f) for f in files.values()})
    assert plan.files == 6

    with open(files["modified"], "ab") as handle:
        handle.write(b"more")
    files["missing"].unlink()
    st = files["replaced"].stat()  # same size and mtime, other bytes
    files["replaced"].write_bytes(random.Random(99).randbytes(st.st_size))
    os.utime(files["replaced"], ns=(st.st_atime_ns, st.st_mtime_ns))
    files["symlink"].unlink()
    files["symlink"].symlink_to(keep)
    files["folder"].unlink()
    files["folder"].mkdir()

    result = trash_files(db, plan, fdo)
    by_path = {o.path: o for o in result.outcomes}
    codes = {n: (by_path[str(f)].status, by_path[str(f)].code) for n, f in files.items()}
    assert codes == {
        "modified": ("refused", "modified"),
        "missing": ("refused", "missing"),
        "replaced": ("refused", "replaced"),
        "symlink": ("refused", "not_regular"),
        "folder": ("refused", "not_regular"),
        "fine": ("moved", ""),
    }
    assert "changed since the scan" in by_path[str(files["modified"])].reason
    assert files["modified"].exists() and files["replaced"].exists()
    assert files["symlink"].is_symlink() and keep.exists()
    # Only the moved file is journalled.
    assert [(r.path, r.state) for r in db.journal_rows()] == [(str(files["fine"]), "done")]


def test_a_group_never_loses_every_member(tmp_path):
    a, b, c = (write(tmp_path / f"{n}.jpg", 4) for n in "abc")
    with pytest.raises(UnsafeActionError, match="keep at least one"):
        plan_deletions([[seen(a), seen(b)]], {str(a), str(b)})
    # A file in two groups: marking b and c empties the second group.
    with pytest.raises(UnsafeActionError):
        plan_deletions([[seen(a), seen(b)], [seen(b), seen(c)]], {str(b), str(c)})
    # records.Group works as is (the window passes its groups).
    members = tuple(Member(str(p), 100.0, 0, 4096, 8, 8, p.stat().st_mtime_ns) for p in (a, b))
    group = Group("exact", members, str(a), "exact", "same bytes")
    with pytest.raises(UnsafeActionError):
        plan_deletions([group], {str(a), str(b)})
    plan = plan_deletions([group], {str(b), "/elsewhere.jpg"})
    assert [d.file.path for d in plan.deletions] == [str(b)]
    assert [(o.path, o.code) for o in plan.refused] == [("/elsewhere.jpg", "not_in_group")]


def test_hard_links_and_symlinked_keepers_are_the_same_file(tmp_path, db, fdo):
    keep = write(tmp_path / "keep.jpg", 5)
    link = tmp_path / "hardlink.jpg"
    os.link(keep, link)
    other = write(tmp_path / "other.jpg", 5)
    plan = plan_deletions([[seen(keep), seen(link), seen(other)]], {str(link), str(other)})
    assert [(o.path, o.code) for o in plan.refused] == [(str(link), "same_file")]
    assert "same file as the kept copy" in plan.refused[0].reason
    assert [d.file.path for d in plan.deletions] == [str(other)]

    target = write(tmp_path / "target.jpg", 6)
    alias = tmp_path / "alias.jpg"
    alias.symlink_to(target)  # the kept "copy" is a symlink to the marked file
    plan = plan_deletions([[SeenFile(str(alias), 4096, 0), seen(target)]], {str(target)})
    assert [o.code for o in plan.refused] == ["same_file"]

    # Checked again on disk when moving: the keeper replaced by a link to
    # the marked file after planning is no longer the copy the scan saw.
    fresh = write(tmp_path / "fresh.jpg", 7)
    plan = plan_deletions([[seen(keep), seen(fresh)]], {str(fresh)})
    keep.unlink()
    os.link(fresh, keep)
    (outcome,) = trash_files(db, plan, fdo).outcomes
    assert (outcome.status, outcome.code) == ("refused", "keeper_changed")
    assert fresh.exists()


def test_missing_keepers_block_their_group_only(tmp_path, db, fdo):
    k1, d1 = write(tmp_path / "k1.jpg", 8), write(tmp_path / "d1.jpg", 8)
    k2, d2 = write(tmp_path / "k2.jpg", 9), write(tmp_path / "d2.jpg", 9)
    groups = [[seen(k1), seen(d1)], [seen(k2), seen(d2)]]
    k1.unlink()
    plan = plan_deletions(groups, {str(d1), str(d2)})
    assert [(o.path, o.code) for o in plan.refused] == [(str(d1), "keepers_missing")]

    plan = plan_deletions(groups, {str(d2)})
    k2.unlink()  # gone between the confirmation and the move
    (outcome,) = trash_files(db, plan, fdo).outcomes
    assert (outcome.code, d2.exists()) == ("keepers_missing", True)


@pytest.mark.parametrize("name", ["-rf ☃ café.jpg", "new\nline.jpg", "--.png", "e\u0301%20.jpg",
                                  os.fsdecode(b"latin\xe9.jpg"), "x" * 250 + ".jpg"])
def test_awkward_names_round_trip(tmp_path, db, fdo, name):
    keep = write(tmp_path / "keep.jpg", 10)
    victim = write(tmp_path / "d" / name, 10)
    (outcome,) = trash_files(db, plan_deletions([[seen(keep), seen(victim)]],
                                                {str(victim)}), fdo).outcomes
    assert outcome.status == "moved", outcome
    info = Path(outcome.trash_path).parent.parent / "info" / (
        Path(outcome.trash_path).name + ".trashinfo")
    raw = info.read_bytes()
    raw.decode("ascii")  # percent-encoded: no newline or raw byte leaks into the file
    assert raw.count(b"\n") == 3
    assert read_trashinfo(str(info))[0] == str(victim)
    assert undo(db).outcomes[0].status == "restored"
    assert victim.read_bytes() == keep.read_bytes()


def test_undo_never_overwrites_and_says_where_the_file_was_expected(tmp_path, db, fdo):
    keep = write(tmp_path / "keep.jpg", 11)
    a, b = write(tmp_path / "a" / "a.jpg", 11), write(tmp_path / "b.jpg", 11)
    result = trash_files(db, plan_deletions([[seen(keep), seen(a), seen(b)]],
                                            {str(a), str(b)}), fdo)
    where = {o.path: o.trash_path for o in result.outcomes}
    b.write_bytes(b"a new file the user made")
    os.unlink(where[str(a)])  # the user emptied it from the trash
    refused = {o.path: o for o in undo(db).outcomes}
    assert refused[str(b)].code == "exists" and "not overwritten" in refused[str(b)].reason
    assert b.read_bytes() == b"a new file the user made"
    assert Path(where[str(b)]).exists()
    assert refused[str(a)].code == "not_in_trash"
    assert where[str(a)] in refused[str(a)].reason

    # The file emptied from the trash is settled ("unknown"): it never
    # blocks the batch again; the one refused for an occupied path is retried.
    assert [r.state for r in db.journal_rows(result.batch_id) if r.path == str(a)] == ["unknown"]
    b.unlink()
    os.rmdir(tmp_path / "a")
    again = {o.path: o.status for o in undo(db, result.batch_id).outcomes}
    assert again == {str(b): "restored"}
    assert b.read_bytes() == keep.read_bytes()


def test_undo_recreates_missing_folders(tmp_path, db, fdo):
    keep = write(tmp_path / "keep.jpg", 12)
    deep = write(tmp_path / "x" / "y" / "z.jpg", 12)
    trash_files(db, plan_deletions([[seen(keep), seen(deep)]], {str(deep)}), fdo)
    os.rmdir(tmp_path / "x" / "y")
    os.rmdir(tmp_path / "x")
    assert undo(db).outcomes[0].status == "restored"
    assert deep.read_bytes() == keep.read_bytes()


class _CrashingReservation:
    def __init__(self, inner, before: bool) -> None:
        self.inner, self.before = inner, before
        self.destination = inner.destination

    def commit(self) -> str:
        if not self.before:
            self.inner.commit()
        raise Crash

    def release(self) -> None:
        self.inner.release()


class CrashingTrash:
    """A reserving backend that dies just before or just after the move."""

    def __init__(self, inner: FreedesktopTrash, before: bool) -> None:
        self.inner, self.before = inner, before

    def reserve(self, path: str) -> _CrashingReservation:
        return _CrashingReservation(self.inner.reserve(path), self.before)


def _one_file_plan(tmp_path: Path, seed: int):
    keep = write(tmp_path / "keep.jpg", seed)
    victim = write(tmp_path / "victim.jpg", seed)
    return victim, plan_deletions([[seen(keep), seen(victim)]], {str(victim)})


def test_recover_after_a_crash_before_the_move(tmp_path, db, fdo):
    victim, plan = _one_file_plan(tmp_path, 13)

    def dies(path: str) -> str:
        raise Crash

    with pytest.raises(Crash):
        trash_files(db, plan, dies)
    assert [r.state for r in db.journal_rows()] == ["pending"]
    (settled,) = recover(db)
    assert (settled.status, settled.code) == ("failed", "not_moved")
    assert db.journal_rows()[0].state == "failed" and victim.exists()

    with pytest.raises(Crash):  # a reserved freedesktop name is given back
        trash_files(db, plan, CrashingTrash(fdo, before=True))
    assert recover(db)[0].code == "not_moved"
    assert os.listdir(tmp_path / "data" / "Trash" / "info") == []
    assert recover(db) == []  # idempotent


def test_recover_after_the_move_before_done(tmp_path, db, fdo):
    victim, plan = _one_file_plan(tmp_path, 14)
    data = victim.read_bytes()
    with pytest.raises(Crash):
        trash_files(db, plan, CrashingTrash(fdo, before=False))
    (row,) = db.journal_rows()
    assert row.state == "pending" and not victim.exists()
    (settled,) = recover(db)
    assert (settled.status, settled.trash_path) == ("moved", row.expected_path)
    assert db.journal_rows()[0].state == "done"
    assert undo(db).outcomes[0].status == "restored"
    assert victim.read_bytes() == data


def test_recover_when_the_backend_never_said_where(tmp_path, db, volume):
    keep, victim = write(volume / "keep.jpg", 15), write(volume / "victim.jpg", 15)
    plan = plan_deletions([[seen(keep), seen(victim)]], {str(victim)})

    def moves_then_dies(path: str) -> str:
        FolderTrash()(path)
        raise Crash

    with pytest.raises(Crash):
        trash_files(db, plan, moves_then_dies)
    (settled,) = recover(db)
    assert settled.code == "unknown" and "system trash" in settled.reason
    assert db.journal_rows()[0].state == "unknown"


def test_folder_trash_keeps_the_relative_path_and_never_overwrites(tmp_path, db, volume):
    keep = write(volume / "photos" / "keep.jpg", 16)
    first = write(volume / "photos" / "a" / "b.jpg", 16)
    folder = FolderTrash()
    (outcome,) = trash_files(db, plan_deletions([[seen(keep), seen(first)]], {str(first)}),
                             folder).outcomes
    assert outcome.trash_path == str(volume / "imgdedupe-trash" / "photos" / "a" / "b.jpg")
    second = write(first, 17)  # a new file of the same name, trashed too
    (outcome2,) = trash_files(db, plan_deletions([[seen(keep), seen(second)]],
                                                 {str(second)}), folder).outcomes
    assert outcome2.trash_path == str(volume / "imgdedupe-trash" / "photos" / "a" / "b.2.jpg")
    assert Path(outcome.trash_path).read_bytes() == keep.read_bytes()
    assert Path(outcome2.trash_path).read_bytes() == random.Random(17).randbytes(4096)
    assert undo(db).outcomes[0].status == "restored"  # the newest batch first
    assert second.read_bytes() == random.Random(17).randbytes(4096)
    assert is_system_dir_name("imgdedupe-trash")  # a rescan never offers them


def test_folder_trash_goes_beside_the_root_when_the_top_is_read_only(tmp_path, db, volume,
                                                                     monkeypatch):
    root = volume / "lib" / "photos"
    keep, victim = write(root / "keep.jpg", 18), write(root / "a" / "v.jpg", 18)
    monkeypatch.setattr(FolderTrash, "_writable", lambda self, base: base != str(volume))
    (outcome,) = trash_files(db, plan_deletions([[seen(keep), seen(victim)]], {str(victim)}),
                             FolderTrash(str(root))).outcomes
    assert outcome.trash_path == str(volume / "lib" / "imgdedupe-trash" / "photos" / "a" / "v.jpg")

    monkeypatch.setattr(FolderTrash, "_writable", lambda self, base: False)
    other = write(root / "w.jpg", 18)
    (failed,) = trash_files(db, plan_deletions([[seen(keep), seen(other)]], {str(other)}),
                            FolderTrash(str(root))).outcomes
    assert (failed.status, other.exists()) == ("failed", True)
    assert "no writable place" in failed.reason
    assert db.journal_rows()[-1].state == "failed"


def test_freedesktop_uses_the_topdir_trash_on_another_device(tmp_path, monkeypatch, volume):
    monkeypatch.setattr(FreedesktopTrash, "_home_device", lambda self: -1)
    victim = write(volume / "photos" / "v.jpg", 19)
    where = FreedesktopTrash(str(tmp_path / "data"))(str(victim))
    own = volume / f".Trash-{os.getuid()}"
    assert where == str(own / "files" / "v.jpg")
    assert read_trashinfo(str(own / "info" / "v.jpg.trashinfo"))[0] == "photos/v.jpg"

    shared = volume / ".Trash"
    shared.mkdir()
    shared.chmod(0o1777)  # the spec's admin-made sticky folder
    second = write(volume / "w.jpg", 20)
    where = FreedesktopTrash(str(tmp_path / "data"))(str(second))
    assert where == str(shared / str(os.getuid()) / "files" / "w.jpg")
    assert stat.S_IMODE((shared / str(os.getuid())).stat().st_mode) == 0o700


def test_freedesktop_falls_back_when_no_trash_fits(tmp_path, monkeypatch, volume):
    monkeypatch.setattr(FreedesktopTrash, "_home_device", lambda self: -1)
    (tmp_path / "elsewhere").mkdir()
    (volume / f".Trash-{os.getuid()}").symlink_to(tmp_path / "elsewhere")  # never followed
    victim = write(volume / "v.jpg", 21)
    with pytest.raises(TrashError, match="no usable trash"):
        FreedesktopTrash(str(tmp_path / "data"))(str(victim))
    where = FreedesktopTrash(str(tmp_path / "data"), fallback=FolderTrash())(str(victim))
    assert where == str(volume / "imgdedupe-trash" / "v.jpg")
    assert os.listdir(tmp_path / "elsewhere") == []


@pytest.mark.parametrize("atomic", [True, False])
def test_moves_never_overwrite_nor_cross_filesystems(tmp_path, monkeypatch, atomic):
    if not atomic:
        monkeypatch.setattr(trash_module, "_renameat2", None)
    src, dst = write(tmp_path / "src.jpg", 22), write(tmp_path / "dst.jpg", 23)
    with pytest.raises(FileExistsError):
        move_no_replace(str(src), str(dst))
    assert src.read_bytes() != dst.read_bytes() == random.Random(23).randbytes(4096)
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem to try a cross-device move")
    target = shm / f"imgdedupe-test-{os.getpid()}-{atomic}.jpg"
    with pytest.raises(CrossDeviceError, match="never copies"):
        move_no_replace(str(src), str(target))
    assert src.exists() and not target.exists()


def test_backend_errors_none_paths_and_cancel(tmp_path, db):
    keep = write(tmp_path / "keep.jpg", 24)
    a, b = write(tmp_path / "a.jpg", 24), write(tmp_path / "b.jpg", 24)
    plan = plan_deletions([[seen(keep), seen(a), seen(b)]], {str(a), str(b)})

    def qt_like(path: str) -> str | None:  # some platform trashes do not say where
        if path == str(a):
            raise PermissionError(13, "Permission denied", path)
        os.rename(path, tmp_path / "somewhere")
        return None

    out = {o.path: o for o in trash_files(db, plan, qt_like).outcomes}
    assert (out[str(a)].status, out[str(a)].reason) == ("failed", "Permission denied")
    assert (out[str(b)].status, out[str(b)].code) == ("moved", "no_trash_path")
    assert undo(db).outcomes[0].code == "unknown_place"

    class Cancelled:
        def is_set(self) -> bool:
            return True

    result = trash_files(db, plan, qt_like, cancel=Cancelled())  # type: ignore[arg-type]
    assert {o.code for o in result.outcomes} == {"cancelled"} and result.batch_id is None


def test_not_duplicates_marks_survive_renames_and_reopening(tmp_path):
    a, b, c = (write(tmp_path / f"{n}.jpg", 30 + i) for i, n in enumerate("abc"))
    twin = write(tmp_path / "twin.jpg", 30)
    with Store(tmp_path / "cache.db") as store:
        mark = add_ignore_mark(store, [str(a), seen(b), str(twin)])
        assert add_ignore_mark(store, [str(b), str(a)]) == mark  # same set: same mark
        with pytest.raises(ActionError, match="same bytes"):
            add_ignore_mark(store, [str(a), str(twin)])
        # A known hash is used as is: the file need not be read (or exist).
        other = add_ignore_mark(store, [SeenFile("/gone.jpg", 1, 1, "f" * 32), str(c)])
    b.rename(tmp_path / "renamed.jpg")
    with Store(tmp_path / "cache.db") as store:
        marks = store.ignore_marks()
        assert marks[mark] == {content_hash(str(a)), content_hash(str(tmp_path / "renamed.jpg"))}
        assert marks[other] == {"f" * 32, content_hash(str(c))}
        assert remove_ignore_marks(store, members=[str(tmp_path / "renamed.jpg"), str(twin)]) == 1
        assert remove_ignore_marks(store, other) == 1 and store.ignore_marks() == {}


def test_hidden_groups_are_listed_by_the_files_the_cache_knows(tmp_path):
    """The list of hidden groups names each mark's files: marking hashes them
    and their cache rows learn the hash, but only for the size and mtime
    hashed (a row of another state keeps none)."""
    a, b, c = (write(tmp_path / f"{n}.jpg", 40 + i) for i, n in enumerate("abc"))
    with Store(tmp_path / "cache.db") as store:
        store.sync_files([ImageFile(str(p), p.stat().st_size, p.stat().st_mtime_ns)
                          for p in (a, b)])
        store.sync_files([ImageFile(str(c), 1, 1)])  # a stale row: c changed since
        first = add_ignore_mark(store, [str(a), str(b)])
        second = add_ignore_mark(store, [str(b), str(c)])
        rows = store.ignore_mark_rows()
        assert store.cached_hash(str(c), 1, 1) is None
    assert [r.mark_id for r in rows] == [second, first]  # newest first
    assert rows[1].paths == (str(a), str(b))
    assert rows[0].paths == (str(b),) and len(rows[0].content_hashes) == 2


def test_version_1_databases_gain_the_user_tables_and_newer_ones_keep_them(tmp_path, db):
    conn = sqlite3.connect(tmp_path / "old.db")
    conn.executescript("CREATE TABLE files (id INTEGER PRIMARY KEY, path BLOB, size INT, "
                       "mtime_ns INT, content_hash TEXT, width INT, height INT, "
                       "error_reason TEXT, error_detail TEXT, last_seen REAL);"
                       "CREATE TABLE embeddings (file_id INT, model_id TEXT, upright BLOB, "
                       "rotated BLOB);"
                       "INSERT INTO files VALUES (1, x'2f612e6a7067', 1, 1, 'h', "
                       "NULL, NULL, NULL, NULL, 0);"
                       "PRAGMA user_version = 1;")
    conn.close()
    with Store(tmp_path / "old.db") as store:
        assert store.counts()["files"] == 1  # the cache survives the upgrade
        store.add_ignore_mark(["h1", "h2"])
        store.begin_batch("kept forever")
    conn = sqlite3.connect(tmp_path / "old.db")
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match="newer imgdedupe"):
        Store(tmp_path / "old.db")
    conn = sqlite3.connect(tmp_path / "old.db")
    assert conn.execute("SELECT count(*) FROM ignore_members").fetchone()[0] == 2
    assert conn.execute("SELECT description FROM action_batches").fetchall() == [
        ("kept forever",)]
    conn.close()

"""The SQLite cache: keys, invalidation, purging, corruption, migrations."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest

from imgdedupe.core.errors import DatabaseError
from imgdedupe.core.records import ImageFile
from imgdedupe.core.storage import db as db_module
from imgdedupe.core.storage import store as store_module
from imgdedupe.core.storage.db import SCHEMA_VERSION
from imgdedupe.core.storage.store import Store


def _file(path: str, size: int = 10, mtime_ns: int = 1) -> ImageFile:
    return ImageFile(path, size, mtime_ns)


def test_sync_keeps_ids_and_invalidates_changed_files(tmp_path):
    with Store(tmp_path / "c.db") as db:
        a, b = _file("/p/a.jpg"), _file("/p/b.jpg")
        first = db.sync_files([a, b])
        db.set_hashes([(first[0].file_id, "h-a")])
        db.put_vectors("m1", [(first[0].file_id, np.ones(4), None)])
        again = db.sync_files([a, b])
        assert [c.file_id for c in again] == [c.file_id for c in first]
        assert again[0].content_hash == "h-a"
        assert first[0].file_id in db.get_vectors("m1", [first[0].file_id], 4)

        changed = db.sync_files([_file("/p/a.jpg", mtime_ns=2), b])
        assert changed[0].file_id == first[0].file_id
        assert changed[0].content_hash is None
        assert db.get_vectors("m1", [first[0].file_id], 4) == {}


def test_vectors_are_float16_and_kept_apart_by_model(tmp_path):
    with Store(tmp_path / "c.db") as db:
        (row,) = db.sync_files([_file("/p/a.jpg")])
        up = np.linspace(-1, 1, 8, dtype=np.float32)
        rot = np.arange(24, dtype=np.float32).reshape(3, 8) / 24
        db.put_vectors("m1", [(row.file_id, up, rot)])
        db.put_vectors("m2", [(row.file_id, -up, None)])
        got_up, got_rot = db.get_vectors("m1", [row.file_id], 8)[row.file_id]
        assert got_up.dtype == np.float16
        np.testing.assert_allclose(got_up, up, atol=1e-3)
        np.testing.assert_allclose(got_rot, rot, atol=1e-3)
        other_up, other_rot = db.get_vectors("m2", [row.file_id], 8)[row.file_id]
        np.testing.assert_allclose(other_up, -up, atol=1e-3)
        assert other_rot is None


def test_sync_tree_forgets_only_unseen_files_below_the_roots(tmp_path):
    with Store(tmp_path / "c.db") as db:
        rows = db.sync_files([_file("/r/a/x.jpg"), _file("/r/a/y.jpg"), _file("/r/ab/z.jpg")])
        db.set_hashes([(r.file_id, "h") for r in rows])
        db.sync_tree(["/r/a"], [_file("/r/a/x.jpg")])
        assert db.counts()["files"] == 2
        # A forgotten file comes back as a new row, without what was cached.
        y, z = db.sync_files([_file("/r/a/y.jpg"), _file("/r/ab/z.jpg")])
        assert y.content_hash is None
        assert z.content_hash == "h"  # /r/ab is a sibling, not below /r/a


def test_non_utf8_paths_round_trip(tmp_path):
    name = os.fsdecode(b"/p/caf\xe9.jpg")
    with Store(tmp_path / "c.db") as db:
        (row,) = db.sync_files([_file(name)])
        db.put_vectors("m", [(row.file_id, np.ones(2), None)])
        files, matrix = db.all_vectors("m", 2)
        assert files[0].path == name
        assert matrix.shape == (1, 2)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatabaseError, match="does not exist"):
        Store(tmp_path / "nope" / "c.db")


def test_unwritable_folder_is_a_clear_error(tmp_path, monkeypatch):
    # Tests run as root here, where chmod cannot deny writing; ask os.access.
    monkeypatch.setattr(db_module.os, "access", lambda path, mode: False)
    with pytest.raises(DatabaseError, match="not writable"):
        Store(tmp_path / "c.db")


def test_corrupt_database_is_moved_aside_and_rebuilt(tmp_path, caplog):
    path = tmp_path / "c.db"
    # Damaged SQLite (its header, then garbage): a file that is not SQLite
    # at all is not ours, and is refused instead (test_cache_path.py).
    path.write_bytes(b"SQLite format 3\x00" + b"this is not a database" * 100)
    with Store(path) as db:
        assert db.counts() == {"files": 0, "embeddings": 0}
    conn = sqlite3.connect(path)  # the rebuilt file, as SQLite itself sees it
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    aside = [p for p in os.listdir(tmp_path) if ".corrupt-" in p]
    assert aside, "the damaged file must be kept, not deleted"
    assert "damaged" in caplog.text


def make_newer_cache(path, ahead: int) -> None:  # noqa: ANN001
    """A cache as a newer imgdedupe leaves it: a schema ``ahead`` versions on."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE files (x)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + ahead}")
    conn.commit()
    conn.close()


def test_newer_schema_is_rebuilt_and_current_schema_recorded(tmp_path):
    path = tmp_path / "c.db"
    make_newer_cache(path, 5)
    with Store(path) as db:
        db.sync_files([_file("/p/a.jpg")])
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_cached_errors_survive_until_the_file_changes(tmp_path):
    with Store(tmp_path / "c.db") as db:
        (row,) = db.sync_files([_file("/p/bad.jpg")])
        db.set_errors([(row.file_id, "truncated", "cut short")])
        (again,) = db.sync_files([_file("/p/bad.jpg")])
        assert (again.error_reason, again.error_detail) == ("truncated", "cut short")
        (changed,) = db.sync_files([_file("/p/bad.jpg", size=11)])
        assert changed.error_reason is None


def test_vector_version_counts_every_change_to_a_models_vectors(tmp_path):
    with Store(tmp_path / "c.db") as db:
        a, b = db.sync_files([_file("/r/a.jpg"), _file("/r/b.jpg")])
        versions = [db.vector_version("m1")]

        def changed() -> bool:
            versions.append(db.vector_version("m1"))
            return versions[-1] != versions[-2]

        db.put_vectors("m1", [(a.file_id, np.ones(4), None)])
        assert changed()
        db.put_vectors("m1", [(a.file_id, np.ones(4), None)])  # replaced, same values
        assert changed()
        db.put_vectors("m2", [(b.file_id, np.ones(4), None)])  # another model
        db.set_hashes([(a.file_id, "h")])
        db.sync_files([_file("/r/a.jpg"), _file("/r/b.jpg")])  # nothing changed
        assert not changed()
        db.sync_files([_file("/r/a.jpg", size=99), _file("/r/b.jpg")])  # a's vector dropped
        assert changed()
        db.put_vectors("m1", [(b.file_id, np.ones(4), None)])
        assert changed()
        db.sync_tree(["/r"], [_file("/r/a.jpg", size=99)])  # b forgotten, its vector with it
        assert changed()
    with Store(tmp_path / "other.db") as other:  # same count, other database
        other.put_vectors("m1", [(other.sync_files([_file("/r/a.jpg")])[0].file_id,
                                  np.ones(4), None)])
        assert other.vector_version("m1") not in versions


def test_vector_ids_come_from_the_index_and_honour_rotations(tmp_path):
    with Store(tmp_path / "c.db") as db:
        a, b, c = db.sync_files([_file("/p/a.jpg"), _file("/p/b.jpg"), _file("/p/c.jpg")])
        db.put_vectors("m", [(a.file_id, np.ones(4), np.ones((3, 4))),
                             (b.file_id, np.ones(4), None)])
        db.put_vectors("other", [(c.file_id, np.ones(4), np.ones((3, 4)))])
        assert db.vector_ids("m", rotations=False) == {a.file_id, b.file_id}
        assert db.vector_ids("m", rotations=True) == {a.file_id}
        plan = db._conn.execute(
            "EXPLAIN QUERY PLAN SELECT file_id FROM embeddings WHERE model_id = ?",
            ("m",)).fetchall()
        assert "COVERING INDEX" in str(plan)  # no vector is read


def test_sync_tree_is_sync_files_then_forgets_the_unseen_below_its_roots(tmp_path):
    walked = [_file("/r/a.jpg"), _file("/r/sub/b.jpg", size=5), _file("/solo.jpg")]
    with Store(tmp_path / "one.db") as one, Store(tmp_path / "two.db") as two:
        for db in (one, two):
            rows = db.sync_files([*walked, _file("/r/gone.jpg"), _file("/elsewhere/x.jpg")])
            db.set_hashes([(r.file_id, "h") for r in rows])
        walked[1] = _file("/r/sub/b.jpg", size=6)  # changed
        walked.append(_file("/r/new.jpg"))
        expected = one.sync_files(walked)
        assert two.sync_tree(["/r", "/solo.jpg"], walked) == expected
        assert one.counts() == {"files": 6, "embeddings": 0}
        assert two.counts() == {"files": 5, "embeddings": 0}
        # The walk of /r missed gone.jpg: forgotten, it comes back without
        # its hash. /elsewhere is below no root: kept, hash and all.
        gone, elsewhere = two.sync_files([_file("/r/gone.jpg"), _file("/elsewhere/x.jpg")])
        assert (gone.content_hash, elsewhere.content_hash) == (None, "h")


def test_version_1_cache_is_migrated_with_its_vectors(tmp_path):
    path = tmp_path / "c.db"
    conn = sqlite3.connect(path)
    for statement in db_module._statements(db_module._MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("INSERT INTO files(id, path, size, mtime_ns, last_seen) "
                 "VALUES (1, ?, 10, 1, 0)", (os.fsencode("/p/a.jpg"),))
    conn.execute("INSERT INTO embeddings VALUES (1, 'm', ?, NULL)",
                 (store_module.to_blob(np.ones(4)),))
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Store(path) as db:
        assert db.vector_ids("m", rotations=False) == {1}
        before = db.vector_version("m")
        db.put_vectors("m", [(1, np.zeros(4), None)])
        assert db.vector_version("m") != before


def test_a_wal_removed_while_the_cache_opens_is_no_crash(tmp_path, monkeypatch):
    # The last connection of a scan removes the -wal as it closes; a search
    # opening the cache at that moment saw it exist, then not (Find similar
    # failed with FileNotFoundError right after a scan).
    with Store(tmp_path / "c.db") as first:
        first.sync_files([_file("/p/a.jpg")])
    wal = tmp_path / "c.db-wal"
    wal.write_bytes(b"")
    real_stat = type(wal).stat
    looks = []

    def vanishing(self, **kwargs):  # noqa: ANN001, ANN003, ANN202
        if self.name == "c.db-wal":
            looks.append(1)
            if len(looks) > 1:  # there at the first look, gone at the next
                raise FileNotFoundError(2, "No such file or directory", str(self))
        return real_stat(self, **kwargs)

    monkeypatch.setattr(type(wal), "stat", vanishing)
    with Store(tmp_path / "c.db") as again:
        assert [c.path for c in again.sync_files([_file("/p/a.jpg")])] == ["/p/a.jpg"]
    assert looks
    wal.unlink(missing_ok=True)
    assert db_module._wal_size(wal) == 0  # none at all: a clean close

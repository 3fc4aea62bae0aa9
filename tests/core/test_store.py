"""The SQLite cache: keys, invalidation, purging, corruption, migrations."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest

from imgdedupe.core import store as store_module
from imgdedupe.core.errors import DatabaseError
from imgdedupe.core.records import ImageFile
from imgdedupe.core.store import SCHEMA_VERSION, Store


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


def test_purge_forgets_only_unseen_files_below_the_roots(tmp_path):
    with Store(tmp_path / "c.db") as db:
        db.sync_files([_file("/r/a/x.jpg"), _file("/r/a/y.jpg"), _file("/r/ab/z.jpg")])
        removed = db.purge_missing(["/r/a"], ["/r/a/x.jpg"])
        assert removed == 1
        assert db.counts()["files"] == 2  # /r/ab is a sibling, not below /r/a


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
    monkeypatch.setattr(store_module.os, "access", lambda path, mode: False)
    with pytest.raises(DatabaseError, match="not writable"):
        Store(tmp_path / "c.db")


def test_corrupt_database_is_moved_aside_and_rebuilt(tmp_path, caplog):
    path = tmp_path / "c.db"
    path.write_bytes(b"this is not a database" * 100)
    with Store(path) as db:
        assert db.counts() == {"files": 0, "embeddings": 0}
        assert db.integrity_ok()
    aside = [p for p in os.listdir(tmp_path) if ".corrupt-" in p]
    assert aside, "the damaged file must be kept, not deleted"
    assert "damaged" in caplog.text


def test_newer_schema_is_rebuilt_and_current_schema_recorded(tmp_path):
    path = tmp_path / "c.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE files (x)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.commit()
    conn.close()
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

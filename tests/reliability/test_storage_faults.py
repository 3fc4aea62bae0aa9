"""A full disk or a read-only cache folder: a clear error (exit code 3 and a
sentence, never a traceback), and the existing cache still sound and
readable afterwards, never moved aside as "damaged".

Real filesystems where the test may mount them (a tmpfs of 1 MB, a
read-only bind mount); the same faults injected into SQLite always run.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from imgdedupe.cli import EXIT_DATABASE, EXIT_OK, main
from imgdedupe.core.errors import DatabaseError
from imgdedupe.core.storage import db as db_module
from imgdedupe.core.storage.store import Store

from .support import SCAN_THRESHOLD, integrity

pytestmark = pytest.mark.reliability


def _scan(library: Path, db: Path, capsys) -> tuple[int, str]:  # noqa: ANN001
    capsys.readouterr()
    code = main(["scan", str(library), "--db", str(db), "--backbone", "efficientnet-lite0",
                 "--no-rotations", "--threshold", str(SCAN_THRESHOLD), "-q"])
    return code, capsys.readouterr().err


def _rows(db: Path) -> dict[bytes, tuple]:
    """Every file row with its vector: reading them all proves them readable."""
    conn = sqlite3.connect(db)
    try:
        return {row[0]: row[1:] for row in conn.execute(
            "SELECT f.path, f.size, f.mtime_ns, f.width, e.upright FROM files f "
            "LEFT JOIN embeddings e ON e.file_id = f.id ORDER BY f.path")}
    finally:
        conn.close()


def _fill(folder: Path, leave: int) -> Path:
    """Fill the filesystem of ``folder`` but for ``leave`` bytes."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(64 * 1024))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
        try:
            while True:
                os.write(fd, bytes(4096))
        except OSError:
            pass
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


@pytest.fixture
def library(tmp_path, photo_maker) -> Path:
    root = tmp_path / "photos"
    for n in range(3):
        photo_maker(root / f"IMG_{n}.jpg", 300 + n, size=(320, 240))
    return root


def _grow(library: Path, photo_maker, count: int = 8) -> None:  # noqa: ANN001
    for n in range(count):
        photo_maker(library / "new" / f"IMG_{n}.jpg", 400 + n, size=(320, 240))


def _assert_intact(db: Path, before: dict[bytes, tuple]) -> None:
    assert integrity(db) == "ok"
    after = _rows(db)
    assert {k: after.get(k) for k in before} == before  # every old row, unchanged
    assert not list(db.parent.glob("*.corrupt-*"))  # not moved aside as damaged


@pytest.mark.parametrize("leave_kb", [0, 24])
def test_a_full_disk_is_a_clear_error_and_the_cache_survives(library, photo_maker, tiny_fs,
                                                              capsys, leave_kb):
    """0 KB free: SQLite cannot even open its shared memory; 24 KB: the scan
    fails part-way, while writing rows."""
    fs = tiny_fs("1m")
    if fs is None:
        pytest.skip("mounting a tmpfs is not permitted here; the injected faults cover it")
    db = fs / "c.db"
    assert _scan(library, db, capsys)[0] == EXIT_OK
    before = _rows(db)
    _grow(library, photo_maker)
    filler = _fill(fs, leave_kb * 1024)
    code, err = _scan(library, db, capsys)
    assert (code, "Traceback" in err) == (EXIT_DATABASE, False), err
    assert "the disk is full" in err and str(db) in err
    filler.unlink()
    _assert_intact(db, before)
    # With space again, the next scan carries on from the cache.
    assert _scan(library, db, capsys)[0] == EXIT_OK
    assert len(_rows(db)) == 11


def test_a_read_only_cache_folder_is_a_clear_error(library, tmp_path, read_only_view, capsys):
    cache = tmp_path / "cache"
    cache.mkdir()
    assert _scan(library, cache / "c.db", capsys)[0] == EXIT_OK
    before = _rows(cache / "c.db")
    view = read_only_view(cache)
    if view is None:
        pytest.skip("bind mounts are not permitted here; the injected faults cover it")
    code, err = _scan(library, view / "c.db", capsys)
    assert (code, "Traceback" in err) == (EXIT_DATABASE, False), err
    assert "not writable" in err
    _assert_intact(cache / "c.db", before)


# -- the same faults, injected --------------------------------------------------
class FailingConnection:
    """A sqlite3 connection whose ``fail_at``-th data write raises ``error``
    (a statement that changes rows; BEGIN, COMMIT and pragmas pass)."""

    def __init__(self, conn: sqlite3.Connection, error: sqlite3.Error, fail_at: int) -> None:
        self._conn, self._error, self._left = conn, error, fail_at

    def _maybe_fail(self, sql: str) -> None:
        if sql.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            self._left -= 1
            if self._left == 0:
                raise self._error

    def execute(self, sql: str, *args):  # noqa: ANN002, ANN201
        self._maybe_fail(sql)
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, rows):  # noqa: ANN001, ANN201
        self._maybe_fail(sql)
        return self._conn.executemany(sql, rows)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._conn, name)


def _inject(monkeypatch, error: sqlite3.Error, fail_at: int) -> None:  # noqa: ANN001
    real = db_module._connect_and_migrate

    def failing(path: Path) -> FailingConnection:
        return FailingConnection(real(path), error, fail_at)

    monkeypatch.setattr(db_module, "_connect_and_migrate", failing)


@pytest.mark.parametrize(("message", "expected", "fail_at"), [
    ("database or disk is full", "the disk is full", 1),  # the first batch of a scan
    ("attempt to write a readonly database", "it is read-only", 3),  # a later one
])
def test_injected_write_failures(library, tmp_path, photo_maker, monkeypatch, capsys,
                                 message, expected, fail_at):
    db = tmp_path / "c.db"
    assert _scan(library, db, capsys)[0] == EXIT_OK
    before = _rows(db)
    _grow(library, photo_maker, 2)
    _inject(monkeypatch, sqlite3.OperationalError(message), fail_at)
    code, err = _scan(library, db, capsys)
    assert (code, "Traceback" in err) == (EXIT_DATABASE, False), err
    assert expected in err
    monkeypatch.undo()
    _assert_intact(db, before)


def test_a_failing_open_never_moves_a_sound_cache_aside(library, tmp_path, monkeypatch,
                                                        capsys):
    db = tmp_path / "c.db"
    assert _scan(library, db, capsys)[0] == EXIT_OK
    before = _rows(db)
    real = db_module._connect_and_migrate

    def io_error(path: Path) -> sqlite3.Connection:
        real(path).close()
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(db_module, "_connect_and_migrate", io_error)
    monkeypatch.setattr(db_module, "_no_space_left", lambda path: True)
    with pytest.raises(DatabaseError, match="the disk is full"):
        Store(db)
    code, err = _scan(library, db, capsys)
    assert code == EXIT_DATABASE and "Traceback" not in err
    monkeypatch.undo()
    _assert_intact(db, before)
    # A damaged file still is moved aside (and kept), then rebuilt.
    # Damaged SQLite (its header, then garbage): a file that is not SQLite
    # at all is not ours, and is refused instead (test_cache_path.py).
    db.write_bytes(b"SQLite format 3\x00" + b"this is not a database" * 100)
    with Store(db) as fresh:
        assert fresh.counts() == {"files": 0, "embeddings": 0}
    assert len(list(tmp_path.glob("c.db.corrupt-*"))) == 1


def test_a_full_disk_while_saving_the_pair_cache(library, tmp_path, monkeypatch, capsys):
    def no_space(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "pairs.npz")

    monkeypatch.setattr(np, "savez", no_space)
    db = tmp_path / "c.db"
    code, err = _scan(library, db, capsys)
    # The pairs are only a cache: the scan still gives its result, and the
    # next scan searches again instead of reading a half-written file.
    assert (code, "Traceback" in err) == (0, False), err
    assert not list(tmp_path.rglob("pairs.npz*"))
    monkeypatch.undo()
    assert integrity(db) == "ok" and len(_rows(db)) == 3

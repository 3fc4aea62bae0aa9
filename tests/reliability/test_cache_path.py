"""The cache path is ours alone (issue 17, finding 6).

``--db`` or ``IMGDEDUPE_DB`` naming a file that is not an imgdedupe
database (a photo, a text file, another program's SQLite database) is
refused with a sentence: the file keeps its name and its bytes, and
nothing is created beside it. A file that is ours (or an SQLite file too
damaged to tell) still works as before: a zero-length or missing file
becomes a new cache, a damaged or truncated cache is moved aside (kept)
and rebuilt.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from imgdedupe.cli import EXIT_DATABASE, EXIT_OK, main
from imgdedupe.core.errors import DatabaseError
from imgdedupe.core.storage.db import SCHEMA_VERSION
from imgdedupe.core.storage.store import Store
from tests.core.test_store import make_newer_cache

from .support import SCAN_THRESHOLD, integrity

pytestmark = pytest.mark.reliability


@pytest.fixture
def library(tmp_path: Path, photo_maker) -> Path:  # noqa: ANN001
    root = tmp_path / "photos"
    for n in range(2):
        photo_maker(root / f"IMG_{n}.jpg", 500 + n, size=(160, 120))
    photo_maker(root / "IMG_0 (1).jpg", 500, size=(160, 120))
    return root


def _scan(library: Path, db: Path | None, capsys) -> tuple[int, str]:  # noqa: ANN001
    capsys.readouterr()
    args = ["scan", str(library), "--backbone", "efficientnet-lite0", "--no-rotations",
            "--threshold", str(SCAN_THRESHOLD), "-q"]
    code = main(args + (["--db", str(db)] if db is not None else []))
    return code, capsys.readouterr().err


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _foreign_sqlite(path: Path, user_version: int = 0, table: str = "moz_places") -> None:
    """Another program's database, in rollback-journal mode as most are."""
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, url TEXT)")
    conn.executemany(f"INSERT INTO {table}(url) VALUES (?)",
                     [(f"https://example.org/{n}",) for n in range(50)])
    conn.execute(f"PRAGMA user_version = {user_version}")
    conn.commit()
    conn.close()


def _make(kind: str, path: Path, photo_maker) -> None:  # noqa: ANN001
    if kind == "jpeg":
        photo_maker(path, 7, size=(320, 240))
    elif kind == "png":
        photo_maker(path, 8, size=(64, 48))
    elif kind == "text":
        path.write_text("shopping list\nmilk\n" * 50, encoding="utf-8")
    elif kind == "sqlite":
        _foreign_sqlite(path)
    elif kind == "sqlite_with_files":  # a table we also have, at version 0
        _foreign_sqlite(path, 0, "files")
    elif kind == "sqlite_versioned":  # user_version in our range, other tables
        _foreign_sqlite(path, 2, "notes")


@pytest.mark.parametrize("kind", ["jpeg", "png", "text", "sqlite", "sqlite_with_files",
                                  "sqlite_versioned"])
def test_a_file_that_is_not_ours_is_refused_and_left_untouched(tmp_path, library, photo_maker,
                                                               capsys, kind):
    folder = tmp_path / "pictures"
    folder.mkdir()
    names = {"jpeg": "holiday.jpg", "png": "scan.png", "text": "holiday.jpg"}
    victim = folder / names.get(kind, f"{kind}.sqlite")
    _make(kind, victim, photo_maker)
    before, stat = _digest(victim), victim.stat()
    code, err = _scan(library, victim, capsys)
    assert (code, "Traceback" in err) == (EXIT_DATABASE, False), err
    assert "is not an imgdedupe database" in err and str(victim) in err
    assert "choose another --db" in err
    # Same name, same bytes, same inode, nothing beside it: no
    # holiday.jpg.corrupt-*, no -wal/-shm, not even a lock file.
    assert _listing(folder) == [victim.name]
    assert _digest(victim) == before
    assert (victim.stat().st_ino, victim.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    # The engine says the same to the window.
    with pytest.raises(DatabaseError, match="is not an imgdedupe database"):
        Store(victim)
    assert _listing(folder) == [victim.name] and _digest(victim) == before


def test_the_environment_variable_is_held_to_the_same_rule(tmp_path, library, photo_maker,
                                                           capsys, monkeypatch):
    victim = tmp_path / "holiday.jpg"
    photo_maker(victim, 9, size=(320, 240))
    before = _digest(victim)
    monkeypatch.setenv("IMGDEDUPE_DB", str(victim))
    code, err = _scan(library, None, capsys)
    assert (code, "Traceback" in err) == (EXIT_DATABASE, False), err
    assert "is not an imgdedupe database" in err
    assert _digest(victim) == before
    assert not list(tmp_path.glob("holiday.jpg?*"))


def test_what_is_ours_still_opens_as_before(tmp_path, library, capsys):
    """Missing, zero-length, a cache of ours, and one of a newer imgdedupe."""
    missing = tmp_path / "new" / "c.db"
    missing.parent.mkdir()
    assert _scan(library, missing, capsys)[0] == EXIT_OK
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert _scan(library, empty, capsys)[0] == EXIT_OK
    assert _scan(library, empty, capsys)[0] == EXIT_OK  # and again, from the cache
    assert integrity(empty) == "ok" and not list(tmp_path.glob("*.corrupt-*"))
    newer = tmp_path / "newer.db"
    make_newer_cache(newer, 3)
    assert _scan(library, newer, capsys)[0] == EXIT_OK  # cache tables rebuilt, as before
    with sqlite3.connect(newer) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


@pytest.mark.parametrize("keep", [0.5, 4096, 100, 10])
def test_a_truncated_cache_is_still_moved_aside_and_rebuilt(tmp_path, library, capsys, keep):
    """A cache cut short (a disk that lost its tail, a copy interrupted):
    still an SQLite file, or a prefix of its header, so it is ours to
    move aside and rebuild."""
    db = tmp_path / "c.db"
    assert _scan(library, db, capsys)[0] == EXIT_OK
    data = db.read_bytes()
    cut = data[: int(len(data) * keep) if isinstance(keep, float) else keep]
    db.write_bytes(cut)
    code, err = _scan(library, db, capsys)
    assert (code, "Traceback" in err) == (EXIT_OK, False), err
    [aside] = tmp_path.glob("c.db.corrupt-*")
    assert aside.read_bytes() == cut  # kept, never deleted
    assert integrity(db) == "ok"


def test_a_damaged_sqlite_file_is_still_moved_aside_and_rebuilt(tmp_path):
    """The SQLite header, then garbage: too damaged to tell whose it is;
    moving it aside loses nothing (it is kept) and the app works."""
    db = tmp_path / "c.db"
    damaged = b"SQLite format 3\x00" + b"\x10\x00\x02\x02" + bytes(range(256)) * 40
    db.write_bytes(damaged)
    with Store(db) as store:
        assert store.counts() == {"files": 0, "embeddings": 0}
    [aside] = tmp_path.glob("c.db.corrupt-*")
    assert aside.read_bytes() == damaged

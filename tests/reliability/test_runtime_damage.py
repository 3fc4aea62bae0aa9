"""Damage found while running is handled like damage found at open
(issue 17, finding 7).

A bad page that SQLite finds mid-scan, or a ``-wal`` beside the database
that belongs to another database, moves the cache aside (kept, never
deleted), rebuilds it with the user's undo journal and "Not duplicates"
marks copied over where readable, and says so in one sentence: exit code
3 on the command line, "The scan could not run" in the window, never a
traceback. The next run works.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import textwrap
import threading
from pathlib import Path

import pytest

from imgdedupe.cli import EXIT_DATABASE, EXIT_OK, main
from imgdedupe.core.errors import DatabaseError
from imgdedupe.core.storage.store import Store

from .support import REPO, SCAN_THRESHOLD, child_env, integrity, python

pytestmark = pytest.mark.reliability

PAGE = 4096


@pytest.fixture
def library(tmp_path: Path, photo_maker) -> Path:  # noqa: ANN001
    root = tmp_path / "photos"
    for n in range(3):
        photo_maker(root / f"IMG_{n}.jpg", 600 + n, size=(160, 120))
    shutil.copyfile(root / "IMG_0.jpg", root / "IMG_0 (1).jpg")
    return root


def _scan(library: Path, db: Path, capsys) -> tuple[int, str, str]:  # noqa: ANN001
    capsys.readouterr()
    code = main(["scan", str(library), "--db", str(db), "--backbone", "efficientnet-lite0",
                 "--no-rotations", "--threshold", str(SCAN_THRESHOLD), "-q"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _decisions(db: Path, batch: str = "moved 2 files", journal: int = 2) -> None:
    """An undo batch and a "Not duplicates" mark: what must survive."""
    with Store(db) as store:
        batch_id = store.begin_batch(batch)
        for n in range(journal):
            row = store.journal_pending(batch_id, f"/photos/{batch}/{n}.jpg", 100 + n, n,
                                        f"hash{n}")
            store.journal_set(row, "done", f"/trash/{batch}/{n}.jpg")
        store.add_ignore_mark(["aaaa", "bbbb"])


def _user_rows(db: Path) -> tuple[list, list, dict]:
    with Store(db) as store:
        return ([(b.description, b.states) for b in store.batches()],
                [(r.path, r.state, r.trash_path) for r in store.journal_rows()],
                store.ignore_marks())


def _root_page(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                            (table,)).fetchone()[0]
    finally:
        conn.close()


def _damage_page(db: Path, page: int) -> None:
    with open(db, "r+b") as handle:
        handle.seek((page - 1) * PAGE)
        handle.write(b"\xff" * PAGE)


def test_a_bad_page_found_mid_scan_is_moved_aside_rebuilt_and_said(tmp_path, library,
                                                                   photo_maker, capsys):
    db = tmp_path / "c.db"
    code, clean_text, _ = _scan(library, db, capsys)
    assert code == EXIT_OK
    _decisions(db)
    before = _user_rows(db)
    assert _root_page(db, "files") == 2  # the page: the files table
    _damage_page(db, 2)
    photo_maker(library / "IMG_new.jpg", 700, size=(160, 120))  # so the scan reads files
    code, _, err = _scan(library, db, capsys)
    assert (code, "Traceback" in err) == (EXIT_DATABASE, False), err
    assert "was damaged" in err and "moved it to" in err and "rebuilt" in err, err
    assert "recovered" in err
    [aside] = tmp_path.glob("c.db.corrupt-*")  # kept, never deleted
    assert aside.stat().st_size > 0
    assert integrity(db) == "ok"
    assert _user_rows(db) == before  # the undo journal and the marks came over
    # The next run works, and finds what a clean scan finds.
    code, text, err = _scan(library, db, capsys)
    assert code == EXIT_OK, err
    assert text.split("\n\n")[:2] == clean_text.split("\n\n")[:2]  # the same groups
    assert _user_rows(db) == before


def test_damage_in_a_user_table_recovers_what_is_readable(tmp_path):
    db = tmp_path / "c.db"
    _decisions(db, journal=300)  # a journal of several pages
    conn = sqlite3.connect(db)
    pages = [row[0] for row in conn.execute(
        "SELECT pageno FROM dbstat WHERE name = 'action_journal' AND pagetype = 'leaf' "
        "ORDER BY pageno")] if _has_dbstat(conn) else []
    conn.close()
    if len(pages) < 3:
        pytest.skip("this SQLite has no dbstat table to find a journal leaf page")
    _damage_page(db, pages[len(pages) // 2])  # one leaf in the middle
    with Store(db) as store, pytest.raises(DatabaseError, match="was damaged"):
        store.journal_rows()
    with Store(db) as store:
        rows = store.journal_rows()
        assert 0 < len(rows) < 300  # all but the damaged leaf's rows
        assert {r.batch_id for r in rows} == {b.batch_id for b in store.batches()}
        assert store.ignore_marks()  # the marks, elsewhere, all there
    assert integrity(db) == "ok"


def _has_dbstat(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1 FROM dbstat LIMIT 1").fetchall()
    except sqlite3.Error:
        return False
    return True


def test_the_window_says_it_was_rebuilt_instead_of_an_internal_error(tmp_path, library,
                                                                      photo_maker, capsys):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from imgdedupe.core.scan.config import ScanConfig
    from imgdedupe.gui.jobs.scan_worker import BackboneCache, ScanWorker

    db = tmp_path / "c.db"
    assert _scan(library, db, capsys)[0] == EXIT_OK
    _damage_page(db, 2)
    photo_maker(library / "IMG_new.jpg", 701, size=(160, 120))
    config = ScanConfig(roots=(str(library),), db_path=str(db), backbone="efficientnet-lite0",
                        device="cpu", threshold=SCAN_THRESHOLD, rotations=False)
    worker = ScanWorker(config, threading.Event(), BackboneCache())
    failures: list = []
    worker.failed.connect(failures.append)
    worker.run()  # synchronously, in this thread
    [failure] = failures
    assert failure.title == "The scan could not run"  # not "an internal error"
    assert "was damaged" in failure.message and "rebuilt" in failure.message
    assert _scan(library, db, capsys)[0] == EXIT_OK


# -- a -wal that belongs to another database ----------------------------------------
_CRASH = textwrap.dedent("""
    import os, sys
    from imgdedupe.core.storage.store import Store
    db, checkpoint = sys.argv[1], sys.argv[2] == "1"
    store = Store(db)
    store._conn.execute("PRAGMA wal_autocheckpoint = 0")
    if checkpoint:  # the WAL then holds only what follows
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    batch = store.begin_batch("the other library's batch")
    for n in range(3):
        row = store.journal_pending(batch, f"/other/{n}.jpg", 10, n, None)
        store.journal_set(row, "done", f"/other-trash/{n}.jpg")
    os._exit(0)  # killed: the WAL stays beside the database
""")


def _crash_after_writes(db: Path, checkpoint: bool) -> None:
    done = subprocess.run([*python(), "-c", _CRASH, str(db), "1" if checkpoint else "0"],
                          env=child_env(), cwd=REPO, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert Path(f"{db}-wal").stat().st_size > 0


@pytest.mark.parametrize("checkpoint", [False, True], ids=["whole-db-in-wal", "journal-only"])
def test_a_foreign_wal_is_damage_not_a_part_of_this_database(tmp_path, library, capsys,
                                                             checkpoint):
    ours, other = tmp_path / "c.db", tmp_path / "other" / "c.db"
    other.parent.mkdir()
    assert _scan(library, ours, capsys)[0] == EXIT_OK
    _decisions(ours, batch="our batch")
    before = _user_rows(ours)
    assert _scan(library, other, capsys)[0] == EXIT_OK  # the same shape as ours
    _decisions(other, batch="their old batch")
    _crash_after_writes(other, checkpoint)
    shutil.copyfile(f"{other}-wal", f"{ours}-wal")  # beside our (cleanly closed) database
    with Store(ours) as store:
        descriptions = [b.description for b in store.batches()]
    assert "the other library's batch" not in descriptions
    assert _user_rows(ours) == before  # ours, recovered from the file itself
    [aside] = [p for p in tmp_path.glob("c.db.corrupt-*") if not p.name.endswith("-shm")
               and not p.name.endswith("-wal")]
    assert aside.stat().st_size > 0
    # The foreign -wal is kept, under a name SQLite will not apply to it.
    assert Path(f"{aside}.foreign-wal").read_bytes() == Path(f"{other}-wal").read_bytes()
    assert not Path(f"{aside}-wal").exists()
    assert integrity(ours) == "ok"
    assert _scan(library, ours, capsys)[0] == EXIT_OK


def test_our_own_wal_after_a_crash_is_not_taken_for_damage(tmp_path, library, capsys):
    db = tmp_path / "c.db"
    assert _scan(library, db, capsys)[0] == EXIT_OK
    _crash_after_writes(db, checkpoint=True)
    with Store(db) as store:
        assert "the other library's batch" in [b.description for b in store.batches()]
    assert not list(tmp_path.glob("*.corrupt-*"))
    code, _, err = _scan(library, db, capsys)
    assert code == EXIT_OK, err

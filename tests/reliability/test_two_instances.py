"""Two scans of one cache database at once: no corruption, no deadlock.
The second waits for the first (storage.dblock.LOCK_WAIT_S) and then either
runs from the cache or fails fast with "in use by another imgdedupe scan"."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from imgdedupe.cli import EXIT_DATABASE, EXIT_OK, main
from imgdedupe.core.storage import dblock
from imgdedupe.core.storage.dblock import ScanLock
from imgdedupe.core.storage.store import Store

from .support import SCAN_THRESHOLD, child_env, integrity, python

pytestmark = pytest.mark.reliability


@pytest.fixture
def library(tmp_path, photo_maker) -> tuple[Path, set[frozenset[str]]]:
    root = tmp_path / "photos"
    for n in range(5):
        photo_maker(root / f"IMG_{n}.jpg", 500 + n, size=(320, 240))
    picture = photo_maker(None, 500, size=(320, 240))
    picture.resize((200, 150)).save(root / "IMG_0_small.jpg", quality=75)
    picture.save(root / "IMG_0.png")
    group = frozenset(str(root / n) for n in ("IMG_0.jpg", "IMG_0_small.jpg", "IMG_0.png"))
    return root, {group}


def _args(root: Path, db: Path, out: Path) -> list[str]:
    return ["scan", str(root), "--db", str(db), "--backbone", "efficientnet-lite0",
            "--no-rotations", "--threshold", str(SCAN_THRESHOLD), "--json", str(out), "-q"]


def _groups(report: Path) -> set[frozenset[str]]:
    return {frozenset(m["path"] for m in g["members"])
            for g in json.loads(report.read_text())["groups"]}


def test_two_concurrent_scans_neither_corrupt_nor_deadlock(library, tmp_path):
    root, expected = library
    db = tmp_path / "c.db"
    procs = [subprocess.Popen([*python(), "-m", "imgdedupe",
                               *_args(root, db, tmp_path / f"r{n}.json")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=child_env())
             for n in range(2)]
    results = []
    for proc in procs:
        _, err = proc.communicate(timeout=180)  # a deadlock fails here
        results.append((proc.returncode, err))
    for code, err in results:
        assert code in (EXIT_OK, EXIT_DATABASE), err
        assert "Traceback" not in err, err
        if code == EXIT_DATABASE:
            assert "in use by another imgdedupe scan" in err, err
    assert EXIT_OK in [code for code, _ in results]
    for n, (code, _) in enumerate(results):
        if code == EXIT_OK:
            assert _groups(tmp_path / f"r{n}.json") == expected
    assert integrity(db) == "ok"
    assert main(_args(root, db, tmp_path / "third.json")) == EXIT_OK
    assert _groups(tmp_path / "third.json") == expected


def test_a_held_lock_makes_the_second_scan_fail_fast(library, tmp_path, monkeypatch, capsys):
    root, expected = library
    db = tmp_path / "c.db"
    monkeypatch.setattr(dblock, "LOCK_WAIT_S", 0.3)
    with ScanLock(db):  # another scan, as far as the CLI can tell
        assert main(_args(root, db, tmp_path / "r.json")) == EXIT_DATABASE
        err = capsys.readouterr().err
        assert "in use by another imgdedupe scan (process" in err and "Traceback" not in err
        assert not (tmp_path / "r.json").exists()
    assert main(_args(root, db, tmp_path / "r.json")) == EXIT_OK  # released: it runs
    assert _groups(tmp_path / "r.json") == expected
    assert integrity(db) == "ok"


def test_many_openers_of_a_new_database_all_succeed(tmp_path):
    """Each opener migrates a new database under the write lock, so none
    sees the others' tables appear under it (it used to fail "table files
    already exists", and before that moved the new database aside)."""
    for attempt in range(4):
        db = tmp_path / f"new{attempt}.db"
        start = threading.Barrier(6)
        failures: list[BaseException] = []

        def open_it(db: Path, start: threading.Barrier, failures: list) -> None:
            start.wait()
            try:
                Store(db).close()
            except BaseException as exc:  # noqa: BLE001 - collected for the assert
                failures.append(exc)

        threads = [threading.Thread(target=open_it, args=(db, start, failures))
                   for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert failures == []
        assert integrity(db) == "ok"
        assert not list(tmp_path.glob("*.corrupt-*"))
        with Store(db) as store:
            assert store.counts() == {"files": 0, "embeddings": 0}

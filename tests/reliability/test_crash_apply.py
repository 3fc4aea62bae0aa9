"""A trash batch killed with SIGKILL mid-way: after restart, recover() and
the journal say exactly which files moved, undo() brings them all back,
and at no moment is a photo neither in its folder nor in the journalled
trash place."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from imgdedupe.core.actions.trash_backends import read_trashinfo
from imgdedupe.core.actions.trashing import recover, undo
from imgdedupe.core.files.hashing import content_hash
from imgdedupe.core.storage.store import Store

from .support import REPO, child_env, integrity, python

pytestmark = pytest.mark.reliability

GROUPS, PER_GROUP = 40, 5  # 200 files; the first of each group is kept


def _library(root: Path) -> tuple[list[list[dict]], list[str], dict[str, bytes]]:
    groups, marked, data = [], [], {}
    for g in range(GROUPS):
        payload = random.Random(g).randbytes(64 + g)
        members = []
        for k in range(PER_GROUP):
            path = root / f"g{g:02d}" / ("keep.jpg" if k == 0 else f"copy {k}.jpg")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
            st = os.lstat(path)
            members.append({"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                            "content_hash": content_hash(str(path))})
            data[str(path)] = payload
            if k:
                marked.append(str(path))
        groups.append(members)
    return groups, marked, data


def _run(spec_path: Path, delay: float | None) -> bool:
    """Run the driver; True when it died by SIGKILL."""
    proc = subprocess.Popen([*python(), str(REPO / "tests" / "reliability" / "apply_driver.py"),
                             str(spec_path)], stdout=subprocess.PIPE, text=True,
                            env=child_env())
    assert proc.stdout is not None
    with proc.stdout:
        if delay is not None:
            assert proc.stdout.readline().strip() == "go"
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        proc.stdout.read()
    code = proc.wait(timeout=60)
    assert code in (0, -signal.SIGKILL), code
    return code == -signal.SIGKILL


def _check_every_file(store: Store, data: dict[str, bytes], marked: list[str],
                      trash_files_dir: Path) -> set[str]:
    """Each photo is at its path, or at its journalled trash path with state
    done; nothing else is in the trash. Returns the paths moved."""
    done = {r.path: r for r in store.journal_rows(states=("done",))}
    assert not store.journal_rows(states=("pending", "unknown"))
    moved = set()
    for path, payload in data.items():
        if os.path.lexists(path):
            assert Path(path).read_bytes() == payload
            assert path not in done, path
        else:
            moved.add(path)
            row = done[path]  # KeyError: a photo gone and not journalled
            assert row.trash_path is not None
            assert Path(row.trash_path).read_bytes() == payload
    assert moved <= set(marked)  # no kept copy ever moves
    in_trash = {str(p) for p in trash_files_dir.rglob("*") if p.is_file()}
    assert in_trash == {done[p].trash_path for p in moved}
    return moved


@pytest.mark.parametrize("backend", ["freedesktop", "folder"])
def test_killed_trash_batches_are_recovered_and_undone(tmp_path, backend):
    rng = random.Random(7 if backend == "freedesktop" else 8)
    # Each step of one file's move: journalled pending; a trash name chosen;
    # the name journalled; its .trashinfo written (freedesktop only); the
    # rename; 'done' written but not committed; 'done' committed.
    points = ["pending", "reserved", "expected", "claimed", "moved", "done_uncommitted",
              "done"]
    if backend == "folder":  # the same journal code: fewer kills
        points = ["pending", "expected", "moved", "done_uncommitted"]
    steps: list[dict] = [{"kill": {"point": p, "at": rng.randint(5, 150)}} for p in points]
    steps += [{"delay": round(rng.uniform(0.02, 0.2), 3)} for _ in range(2)]
    report = []
    for n, step in enumerate(steps):
        work = tmp_path / f"run{n}"
        volume = work / "vol"
        groups, marked, data = _library(volume / "photos")
        db = work / "c.db"
        spec = {"db": str(db), "groups": groups, "marked": marked, "kill": step.get("kill")}
        if backend == "freedesktop":
            spec["data_home"] = str(work / "data")
            trash_dir = work / "data" / "Trash" / "files"
            info_dir = work / "data" / "Trash" / "info"
        else:
            spec["folder_root"] = str(volume / "photos")
            spec["volume"] = str(volume)
            trash_dir = volume / "imgdedupe-trash"
            info_dir = None
        (work / "spec.json").write_text(json.dumps(spec))
        killed = _run(work / "spec.json", step.get("delay"))
        assert killed or "delay" in step, step
        assert integrity(db) == "ok"
        with Store(db) as store:
            journal_before = {r.path: r.state for r in store.journal_rows()}
            settled = recover(store)
            # Only the file in flight was pending, and recover settled it.
            assert len(settled) == sum(s == "pending" for s in journal_before.values()) <= 1
            moved = _check_every_file(store, data, marked, trash_dir)
            report.append(f"{step}: {'killed' if killed else 'finished'} after "
                          f"{len(moved)} moved; recovered {[o.code for o in settled]}")
            if info_dir is not None:
                for info in info_dir.iterdir():
                    original, _ = read_trashinfo(str(info))
                    assert original in moved, (step, info.name)  # no ghost entries
            restored = undo(store)
            assert {o.path for o in restored.outcomes} == moved
            assert all(o.status == "restored" for o in restored.outcomes), restored
        for path, payload in data.items():
            assert Path(path).read_bytes() == payload
        assert not [p for p in trash_dir.rglob("*") if p.is_file()]
        if info_dir is not None:
            assert list(info_dir.iterdir()) == []
    print("\n".join(report))

"""A trash batch of photos with companion files (a JPEG with its RAW and
sidecar) killed with SIGKILL mid-way, also between a photo and its
companions: after restart, recover() and the journal say exactly which
files moved, a companion never left while its photo stayed, and one undo
brings every file back, byte for byte."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from imgdedupe.core.actions.trashing import recover, undo
from imgdedupe.core.files.hashing import content_hash
from imgdedupe.core.storage.store import Store

from .support import integrity
from .test_crash_apply import _run

pytestmark = pytest.mark.reliability

UNITS = 8  # each: a kept JPEG, and a JPEG copy marked with its RAW and sidecar
COMPANIONS = (("CR2", "raw"), ("xmp", "sidecar"))


def _library(root: Path) -> tuple[list[list[dict]], list[str], dict[str, bytes],
                                  dict[str, str]]:
    """The groups as the driver takes them, the marked photos, every file's
    bytes, and each companion's photo."""
    groups, marked, data, photo_of = [], [], {}, {}
    for g in range(UNITS):
        payload = random.Random(g).randbytes(64 + g)
        folder = root / f"g{g:02d}"
        folder.mkdir(parents=True)
        members = []
        for name in ("keep.jpg", f"IMG_{g:04d}.JPG"):
            path = folder / name
            path.write_bytes(payload)
            data[str(path)] = payload
            st = os.lstat(path)
            members.append({"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                            "content_hash": content_hash(str(path))})
        photo = members[1]
        photo["companions"] = []
        for ext, kind in COMPANIONS:
            companion = folder / f"IMG_{g:04d}.{ext}"
            companion.write_bytes(random.Random(f"{g}{ext}").randbytes(100 + g))
            data[str(companion)] = companion.read_bytes()
            photo_of[str(companion)] = photo["path"]
            st = os.lstat(companion)
            photo["companions"].append({"path": str(companion), "size": st.st_size,
                                        "mtime_ns": st.st_mtime_ns, "kind": kind})
        marked.append(photo["path"])
        groups.append(members)
    return groups, marked, data, photo_of


@pytest.mark.parametrize("backend", ["freedesktop", "folder"])
def test_killed_batches_of_photos_with_companions_are_recovered_and_undone(
        tmp_path: Path, backend: str) -> None:
    rng = random.Random(16)
    # Files move photo, RAW, sidecar, photo, ...: a count of 3k+2 or 3k+3
    # is a companion's move, 3k+1 a photo's.
    points = ["pending", "expected", "moved", "done_uncommitted", "done"]
    if backend == "freedesktop":
        points.insert(2, "claimed")
    steps: list[dict] = [{"kill": {"point": p, "at": 3 * rng.randint(0, UNITS - 1) + k}}
                         for p in points for k in (2, 3)]
    steps.append({"kill": {"point": "pending", "at": 4}})  # between two units
    steps.append({"delay": 0.05})
    split = 0  # runs killed between a photo and its last companion
    for n, step in enumerate(steps):
        work = tmp_path / f"run{n}"
        volume = work / "vol"
        groups, marked, data, photo_of = _library(volume / "photos")
        db = work / "c.db"
        spec = {"db": str(db), "groups": groups, "marked": marked, "kill": step.get("kill")}
        if backend == "freedesktop":
            spec["data_home"] = str(work / "data")
            trash_dir = work / "data" / "Trash" / "files"
        else:
            spec["folder_root"] = str(volume / "photos")
            spec["volume"] = str(volume)
            trash_dir = volume / "imgdedupe-trash"
        (work / "spec.json").write_text(json.dumps(spec))
        killed = _run(work / "spec.json", step.get("delay"))
        assert killed or "delay" in step, step
        assert integrity(db) == "ok"
        with Store(db) as store:
            recover(store)
            assert not store.journal_rows(states=("pending", "unknown"))
            done = {r.path: r for r in store.journal_rows(states=("done",))}
            moved = set()
            for path, payload in data.items():
                if os.path.lexists(path):
                    assert Path(path).read_bytes() == payload and path not in done
                else:
                    moved.add(path)
                    trash_path = done[path].trash_path  # KeyError: gone, not journalled
                    assert trash_path is not None
                    assert Path(trash_path).read_bytes() == payload
            assert moved <= set(marked) | set(photo_of), step  # no kept copy moved
            # A companion never leaves without its photo.
            assert all(photo_of[c] in moved for c in moved & set(photo_of)), step
            if "kill" in step:  # killed at a count >= 2: a photo has moved
                assert moved, step
            split += any(photo_of[c] in moved and c not in moved for c in photo_of)
            restored = undo(store)
            assert {o.path for o in restored.outcomes} == moved
            assert all(o.status == "restored" for o in restored.outcomes), restored
        for path, payload in data.items():
            assert Path(path).read_bytes() == payload
        assert not [p for p in trash_dir.rglob("*") if p.is_file()]
    assert split >= len(points)  # the kills did fall inside a unit's move

"""A scan killed with SIGKILL anywhere leaves a sound cache, and the next
scan gives exactly the groups of an uninterrupted one.

scan_driver.py loads the model once and forks a real scan per kill; most
kills land on a hook point (deterministic: the n-th file walked, hash,
decode, forward pass, database batch half-written inside its transaction
or just committed, a schema migration half-run, pair cache half-written,
grouping), the rest after a seeded delay, wherever that falls.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from .support import (
    REPO,
    build_library,
    child_env,
    file_hashes,
    integrity,
    python,
)

pytestmark = pytest.mark.reliability

SEED = 20240611


class Driver:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [*python(), str(REPO / "tests" / "reliability" / "scan_driver.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env())
        assert json.loads(self.ask_line()) == {"ready": True}

    def ask_line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the scan driver died (exit {self.proc.poll()})"
        return line

    def scan(self, **request: object) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request, default=str) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.ask_line())

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def driver():
    d = Driver()
    yield d
    d.close()


def _groups(report_path: Path) -> tuple[list, list]:
    report = json.loads(report_path.read_text())
    return report["groups"], report["errors"]


def _plan(counts: dict[str, int], kills: int, rng: random.Random,
          baseline_s: float) -> list[dict]:
    """One kill at every hook point the scan reached (in a random one of its
    arrivals), then random points and delays up to ``kills`` in all."""
    points = sorted(counts)
    plan = [{"kill": {"point": p, "at": rng.randint(1, counts[p])}} for p in points]
    rng.shuffle(plan)
    plan = plan[:kills]
    while len(plan) < kills:
        if (len(plan) - len(points)) % 2 == 0:
            plan.append({"delay": round(rng.uniform(0.02, baseline_s), 3)})
        else:
            p = rng.choice(points)
            plan.append({"kill": {"point": p, "at": rng.randint(1, counts[p])}})
    return plan


def _crash_and_rescan(driver: Driver, tmp_path: Path, photo_maker, kills: int) -> list[str]:
    root = tmp_path / "photos"
    expected = build_library(root, photo_maker)
    before = file_hashes(root)

    base = tmp_path / "baseline"
    base.mkdir()
    started = time.perf_counter()
    reply = driver.scan(root=root, db=base / "c.db", json=base / "r.json",
                        counts=base / "counts.json")
    baseline_s = time.perf_counter() - started
    assert reply["rc"] == 0, reply
    groups, errors = _groups(base / "r.json")
    assert sorted(sorted(m["path"] for m in g["members"]) for g in groups) == \
        sorted(sorted(g) for g in expected.values())
    assert sorted(e["reason"] for e in errors) == ["not_an_image", "truncated"]
    counts = json.loads((base / "counts.json").read_text())
    # Every phase was reached, so every phase can be killed in.
    for point in ("db_migrate", "walk", "hash", "decode", "embed", "group", "db_files_mid",
                  "db_hashes_mid", "db_vectors_mid", "db_sizes_mid", "db_errors_mid",
                  "scan_memo"):
        assert counts.get(point, 0) >= 1, (point, counts)

    landed = []
    for n, step in enumerate(_plan(counts, kills, random.Random(SEED), baseline_s)):
        work = tmp_path / f"kill{n:02d}"
        work.mkdir()
        db = work / "c.db"
        markers = work / "markers"
        reply = driver.scan(root=root, db=db, markers=markers, **step)
        arrivals = markers.read_text().split("\n") if markers.exists() else []
        last = next((a for a in reversed(arrivals) if a), "before the walk")
        if "kill" in step:
            assert reply["killed"], (step, reply)  # a hook point always kills
        else:
            assert reply["killed"] or reply["rc"] == 0, (step, reply)
        landed.append(f"{step}: {'killed' if reply['killed'] else 'finished'} at {last}")
        if db.exists():
            assert integrity(db) == "ok", landed[-1]
        again = driver.scan(root=root, db=db, json=work / "r.json")
        assert again["rc"] == 0, (landed[-1], again)
        assert _groups(work / "r.json") == (groups, errors), landed[-1]
        # The cache was sound, not moved aside and rebuilt.
        assert not list(work.glob("*.corrupt-*")), landed[-1]
        assert integrity(db) == "ok", landed[-1]
        assert file_hashes(root) == before, landed[-1]
    print("\n".join(landed))
    return landed


def test_killed_scans_leave_a_sound_cache_and_the_same_groups(driver, tmp_path, photo_maker):
    """One kill at each of the 18 hook points, and three more (two after a
    seeded delay)."""
    landed = _crash_and_rescan(driver, tmp_path, photo_maker, kills=20)
    assert sum("killed" in line for line in landed) >= 18, landed


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("IMGDEDUPE_LONG_RELIABILITY"),
                    reason="60 kills take about a minute: set IMGDEDUPE_LONG_RELIABILITY=1")
def test_many_killed_scans(driver, tmp_path, photo_maker):
    """Sixty kills: every hook point, then random points and delays."""
    landed = _crash_and_rescan(driver, tmp_path, photo_maker, kills=60)
    assert sum("killed" in line for line in landed) >= 45, landed

"""Is the window's "about N left" right? One cold scan, its time left
compared with the time it really took.

    python bench/eta_check.py [--photos 2000] [--root ../shared/corpus/caltech101]
                              [--work /tmp/eta_check] [--backbone efficientnet-lite0]

Copies the first --photos JPEGs of --root (sorted paths) into --work, scans
them cold in this process with the engine and feeds every progress event to
the window's status line (gui.jobs.progress_text, Qt-free), as the window
does. For each event it records the time left shown and the time the scan
then really needed, and prints the error after the first minute (the
throughput issue's check: within 20%), and also what the status line
showed before it counted the verification (the embedding's time left
alone). Run it under `taskset -c 0` for a one-core laptop's pace: on two
cores 2,000 small photos take under a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

import numpy as np

from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import Progress, ScanResult
from imgdedupe.core.scan.pipeline import run_scan
from imgdedupe.gui.jobs.progress_text import ProgressText

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def library(root: str, photos: int, work: str) -> str:
    folder = os.path.join(work, f"photos_{photos}")
    if os.path.isdir(folder) and len(os.listdir(folder)) == photos:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    found = sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files
                   if f.lower().endswith((".jpg", ".jpeg")))[:photos]
    for n, path in enumerate(found):
        shutil.copyfile(path, os.path.join(folder, f"{n:05d}_{os.path.basename(path)}"))
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=2000)
    ap.add_argument("--root", default=os.path.join(REPO, "..", "shared", "corpus", "caltech101"))
    ap.add_argument("--work", default="/tmp/eta_check")
    ap.add_argument("--backbone", default="efficientnet-lite0")
    ap.add_argument("--trace", help="write every progress event (t, phase, done, total, "
                    "share) and the phases' timings to this JSON file, to replay estimates")
    args = ap.parse_args()
    folder = library(args.root, args.photos, args.work)
    db = os.path.join(args.work, "eta.db")
    for leftover in (db, db + "-wal", db + "-shm"):
        if os.path.exists(leftover):
            os.remove(leftover)
    shutil.rmtree(os.path.join(args.work, "eta.index"), ignore_errors=True)
    text = ProgressText()
    shown: list[tuple[float, float, float, str]] = []  # (t, left, embedding's left, phase)
    shares: list[tuple[float, float]] = []  # (t, verification's share of work done)
    started = time.monotonic()
    timings: dict[str, float] = {}
    events: list[tuple[float, str, int, int | None, float | None]] = []
    for event in run_scan(ScanConfig(roots=(folder,), db_path=db, backbone=args.backbone)):
        if isinstance(event, ScanResult):
            timings = event.stats.timings
        if not isinstance(event, Progress):
            continue
        text.describe(event)
        now = time.monotonic() - started
        events.append((now, event.phase, event.done, event.total, event.share))
        if event.phase == "verify" and event.share is not None:
            shares.append((now, event.share))
        if text.left_s is not None and event.phase in ("embed", "verify"):
            embedding_only = 0.0
            if event.phase == "embed" and event.total:
                embedding_only = text.left_s - text.verification_s
            shown.append((now, text.left_s, embedding_only, event.phase))
    total = time.monotonic() - started
    if args.trace:
        with open(args.trace, "w") as handle:
            json.dump({"total_s": total, "cores": len(os.sched_getaffinity(0)),
                       "timings": timings, "events": events}, handle)
    print(f"{args.photos} photos, cold scan {total:.1f} s, cores usable: "
          f"{len(os.sched_getaffinity(0))}")
    print("phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    print(f"verification: estimated {text.verification_s:.1f} s while embedding (from this "
          f"machine's pace), took {timings.get('verify', 0.0):.1f} s")
    # The last seconds are left out: a second off is 50% of two.
    def errors_of(rows: list) -> tuple[np.ndarray, np.ndarray]:
        kept = [(t, left, old, phase) for t, left, old, phase in rows if total - t >= 10.0]
        new = np.array([abs(left - (total - t)) / (total - t) for t, left, _, _ in kept])
        old = np.array([abs(o - (total - t)) / (total - t) for t, _, o, p in kept
                        if p == "embed"])
        return new, old

    for name, rows in (("after the first minute", [r for r in shown if r[0] >= 60.0]),
                       ("from the first update", shown)):
        new, old = errors_of(rows)
        if not len(new):
            print(f"{name}: no update with 10 s or more left")
            continue
        print(f"{name}, {len(new)} updates with >= 10 s left: time left shown vs taken, "
              f"median error {100 * np.median(new):.0f}%, worst {100 * new.max():.0f}%, "
              f"within 20%: {100 * (new <= 0.2).mean():.0f}% of them")
        worst = max((r for r in rows if total - r[0] >= 10.0),
                    key=lambda r: abs(r[1] - (total - r[0])) / (total - r[0]))
        print(f"  worst at {worst[0]:.1f} s ({worst[3]}): shown {worst[1]:.1f} s left, "
              f"took {total - worst[0]:.1f} s")
        if len(old):
            print(f"  the embedding's time left alone (before verification was counted): "
                  f"median error {100 * np.median(old):.0f}%, worst {100 * old.max():.0f}%")
    if shares:
        begun, ended = shares[0][0], total
        print("verification's share of work done against its share of time: " + ", ".join(
            f"{share:.2f}/{(t - begun) / (ended - begun):.2f}"
            for t, share in shares[:: max(1, len(shares) // 8)]))
    for t, left, _, phase in shown[:: max(1, len(shown) // 12)]:
        print(f"  {t:6.1f} s  {phase:6s}  shown {left:6.1f} s left, took {total - t:6.1f} s")


if __name__ == "__main__":
    main()

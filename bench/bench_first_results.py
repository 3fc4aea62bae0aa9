"""Time to the first results of a scan of new photos, while the CNN runs.

    python bench/bench_first_results.py [--photos 5000] [--backbone efficientnet-lite0]
                                        [--no-rotations] [--full] [--keep DIR]

Makes a folder of small photos (800 x 600 JPEGs, seeded, photo-like) with
duplicates: 5% byte copies, and 10% near-exact copies (re-encoded at
quality 70, half of them also halved in size) in a backup folder, half
keeping their file name, half renamed. Then scans it with a cold cache
and prints when each kind of result first arrived, counted from the start
of the scan: exact copies (ExactGroupsReady), near-exact copies
(NearExactGroupsReady, perceptual hash of the decoded network input), and,
with --full, the final CNN groups (ScanResult). Without --full the scan is
cancelled a few seconds after the first near-exact group (the model would
take minutes on a CPU), and the model's own rate is printed instead.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from imgdedupe.core.errors import ScanCancelled
from imgdedupe.core.model.loading import load_backbone
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import ExactGroupsReady, NearExactGroupsReady, Progress, ScanResult
from imgdedupe.core.scan.pipeline import run_scan


def photo(seed: int, size: tuple[int, int] = (800, 600)) -> Image.Image:
    """Smooth colour gradients, a few shapes, a little noise: like a photo."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    image = Image.fromarray(grid, "RGB").resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, x1 = sorted(rng.uniform(0, size[0], 2))
        y0, y1 = sorted(rng.uniform(0, size[1], 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1 + 8, y1 + 8),
                                                                  fill=colour)
    noise = rng.integers(-6, 7, size=(size[1], size[0], 3), dtype=np.int16)
    return Image.fromarray(np.clip(np.asarray(image, np.int16) + noise, 0, 255).astype(np.uint8))


def make_folder(root: Path, count: int) -> tuple[int, int]:
    """``count`` files in all; returns (byte copies, near-exact copies)."""
    copies, near = count // 20, count // 10
    originals = count - copies - near
    for n in range(originals):
        folder = root / "photos" / f"{n // 500:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        photo(n).save(folder / f"IMG_{n:05d}.jpg", quality=90)
    backup = root / "backup"
    backup.mkdir(parents=True)
    rng = np.random.default_rng(1)
    picks = rng.choice(originals, size=copies + near, replace=False)
    for m, n in enumerate(picks.tolist()):
        src = root / "photos" / f"{n // 500:02d}" / f"IMG_{n:05d}.jpg"
        if m < copies:
            shutil.copyfile(src, backup / f"IMG_{n:05d}.jpg")
            continue
        image = Image.open(src)
        if m % 2:
            image = image.resize((400, 300))
        name = f"IMG_{n:05d}.jpg" if m % 4 < 2 else f"export_{m:05d}.jpg"
        image.save(backup / name, quality=70)
    return copies, near


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=5000)
    parser.add_argument("--backbone", default="efficientnet-lite0")
    parser.add_argument("--no-rotations", dest="rotations", action="store_false")
    parser.add_argument("--full", action="store_true", help="run the scan to the end")
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="imgdedupe-first-"))
    root = work / "lib"
    try:
        if not root.exists():
            start = time.perf_counter()
            copies, near = make_folder(root, args.photos)
            print(f"made {args.photos} photos ({copies} byte copies, {near} near-exact) in "
                  f"{time.perf_counter() - start:.1f} s")
        db = work / "cache.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        shutil.rmtree(work / "cache.index", ignore_errors=True)
        backbone, _ = load_backbone(args.backbone, device="cpu")
        config = ScanConfig(roots=(str(root),), db_path=str(db), backbone=backbone.info.name,
                            rotations=args.rotations)
        cancel = threading.Event()
        start = time.perf_counter()
        first: dict[str, tuple[float, int]] = {}
        last_near: tuple[float, int, int] | None = None
        embedded = 0
        stop_at = None
        try:
            for event in run_scan(config, cancel, backbone=backbone):
                now = time.perf_counter() - start
                if isinstance(event, ExactGroupsReady):
                    first.setdefault("exact", (now, len(event.groups)))
                elif isinstance(event, NearExactGroupsReady):
                    first.setdefault("near-exact", (now, len(event.groups)))
                    last_near = (now, len(event.groups), event.hashed)
                    if stop_at is None and not args.full:
                        stop_at = now + 5.0
                elif isinstance(event, Progress) and event.phase == "embed":
                    embedded = event.done
                elif isinstance(event, ScanResult):
                    first["cnn"] = (now, len(event.groups))
                if stop_at is not None and now >= stop_at:
                    cancel.set()
        except ScanCancelled:
            pass
        elapsed = time.perf_counter() - start
        print(f"backbone {backbone.info.name}, rotations {'on' if args.rotations else 'off'}, "
              f"{args.photos} photos")
        for kind, (at, groups) in first.items():
            print(f"first {kind} groups: {at:.2f} s after the start ({groups} groups)")
        if last_near:
            print(f"last near-exact event: {last_near[0]:.1f} s, {last_near[1]} groups, "
                  f"{last_near[2]} photos hashed")
        print(f"model: {embedded} photos embedded in {elapsed:.1f} s "
              f"(~{embedded / max(elapsed, 1e-9):.1f}/s; the CNN groups need all "
              f"{args.photos} embedded)")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Rescan speed: a fully cached tree against a plain os.scandir walk + stat.

    python bench/bench_rescan.py [--files 100000] [--no-rotations] [--changes] [--keep DIR]

Issue target: a tree of 100k real (tiny) files that are all in the cache
rescans in <= 2 x the time of a plain os.scandir walk + stat of the tree.

The files are real but tiny (never decoded on a rescan), in a few hundred
folders. The cache is filled through the Store API, without the CNN, with
EfficientNet-Lite0-sized (1280-d) clustered vectors: every photo belongs to
a "scene" (unrelated photos of one scene score ~0.4, as real ones do), and
some photos have near-duplicates and byte copies. A fake backbone with the
real one's name and dimension stands in for the model, which the rescan
never runs. The first scan builds the index cache; the second one, the
steady state, is the rescan that is timed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from imgdedupe.core.files.hashing import content_hash
from imgdedupe.core.model.backbone import BackboneInfo
from imgdedupe.core.records import ImageFile
from imgdedupe.core.scan import memo as scan_memo
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import ScanResult
from imgdedupe.core.scan.pipeline import run_scan
from imgdedupe.core.storage.store import Store

DIM = 1280  # EfficientNet-Lite0 with GeM pooling
PER_FOLDER = 250  # 100k files -> 400 folders
COPY_EVERY = 97  # about 1% of the files are byte copies of the previous one
NEAR_EVERY = 23  # about 4% are near-duplicates of the previous photo


class FakeBackbone:
    """Just enough of embed.Backbone for a scan that embeds nothing."""

    device = "cpu"
    info = BackboneInfo("efficientnet-lite0", DIM, "efficientnet-lite0:benchfake:p2", "none")

    def embed(self, images: np.ndarray) -> np.ndarray:
        raise AssertionError("a rescan of a cached tree must not embed")


class EmbeddingFake(FakeBackbone):
    """For --changes: embeds the few real photos a changed tree adds, with
    vectors drawn from their pixels (the model's speed is not measured)."""

    def embed_turns(self, images: np.ndarray, quarter_turns: tuple[int, ...]) -> np.ndarray:
        out = np.empty((len(quarter_turns), len(images), DIM), dtype=np.float32)
        for n, image in enumerate(images):
            rng = np.random.default_rng(int(image.sum()))
            out[:, n] = _unit(rng.normal(size=(len(quarter_turns), DIM)))
        return out

    def embed(self, images: np.ndarray) -> np.ndarray:
        return self.embed_turns(images, (0,))[0]


def write_photo(path: Path, seed: int) -> None:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def make_tree(root: Path, count: int) -> list[ImageFile]:
    """``count`` tiny .jpg files; each is distinct, except the byte copies."""
    files: list[ImageFile] = []
    for n in range(count):
        folder = root / f"{n // PER_FOLDER:04d}"
        if n % PER_FOLDER == 0:
            folder.mkdir(parents=True)
        path = folder / f"IMG_{n:06d}.jpg"
        source = n - 1 if n % COPY_EVERY == 0 and n else n
        path.write_bytes(b"\xff\xd8 tiny photo %d \xff\xd9" % source)
        st = path.stat()
        files.append(ImageFile(str(path), st.st_size, st.st_mtime_ns))
    return files


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_vectors(count: int, rotations: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Clustered unit vectors: scenes, near-duplicates and byte copies."""
    rng = np.random.default_rng(0)
    scenes = rng.normal(size=(max(1, count // 100), DIM))
    scene = rng.integers(0, len(scenes), size=count)
    upright = _unit(0.8 * _unit(scenes[scene]) + 0.6 * _unit(rng.normal(size=(count, DIM))))
    for n in range(1, count):
        if n % COPY_EVERY == 0:
            upright[n] = upright[n - 1]  # same bytes, same vector
        elif n % NEAR_EVERY == 0:
            upright[n] = _unit(upright[n - 1] + 0.5 * _unit(rng.normal(size=DIM)))
    rotated = None
    if rotations:
        noise = _unit(rng.normal(size=(count, 3, DIM)))
        rotated = _unit(0.5 * upright[:, None, :] + noise).astype(np.float16)
        for n in range(COPY_EVERY, count, COPY_EVERY):
            rotated[n] = rotated[n - 1]
    return upright.astype(np.float16), rotated


def fill_cache(db: Path, files: list[ImageFile], rotations: bool) -> None:
    """What a first scan would have stored, without running the model."""
    upright, rotated = make_vectors(len(files), rotations)
    with Store(db) as store:
        cached = store.sync_files(files)
        sizes: dict[int, list[int]] = {}
        for c in cached:
            sizes.setdefault(c.size, []).append(c.file_id)
        shared = {c.file_id for c in cached if len(sizes[c.size]) > 1}
        store.set_hashes((c.file_id, content_hash(c.path)) for c in cached
                         if c.file_id in shared)
        store.set_sizes((c.file_id, 4000, 3000) for c in cached)
        store.put_vectors(FakeBackbone.info.model_id, (
            (c.file_id, upright[n], None if rotated is None else rotated[n])
            for n, c in enumerate(cached)))


def scan(root: Path, db: Path, rotations: bool, embeds: int = 0) -> tuple[ScanResult, float]:
    config = ScanConfig(roots=(str(root),), db_path=str(db),
                        backbone=FakeBackbone.info.name, rotations=rotations)
    backbone = EmbeddingFake() if embeds else FakeBackbone()
    start = time.perf_counter()
    result = [e for e in run_scan(config, backbone=backbone)][-1]
    elapsed = time.perf_counter() - start
    assert isinstance(result, ScanResult) and result.stats.embedded == embeds, result.stats
    return result, elapsed


def changes(root: Path, db: Path, rotations: bool, plain: float) -> None:
    """Rescans after the changes a user makes: one file deleted, then one
    photo edited and one added. These change the tree for good."""
    photos = sorted(root.rglob("*.jpg"))
    photos[len(photos) // 2].unlink()
    deleted, deleted_s = scan(root, db, rotations)
    print(f"rescan after deleting one file: {deleted_s * 1000:.0f} ms "
          f"({deleted_s / plain:.1f} x walk+stat)  [{phases(deleted)}]")
    # Seeds from the tree's size: a rerun on a kept tree writes new pictures.
    write_photo(photos[len(photos) // 3], len(photos))  # edited: new bytes, new mtime
    write_photo(photos[0].parent / f"IMG_added_{len(photos)}.jpg", len(photos) + 1)
    grown, grown_s = scan(root, db, rotations, embeds=2)
    print(f"rescan after editing one photo and adding one: {grown_s * 1000:.0f} ms "
          f"({grown_s / plain:.1f} x walk+stat)  [{phases(grown)}]")


def walk_stat(root: Path) -> int:
    """The baseline: a plain recursive os.scandir walk with a stat per file."""
    found = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    os.stat(entry.path)
                    found += 1
    return found


def best_of(runs: int, func, *args) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        func(*args)
        best = min(best, time.perf_counter() - start)
    return best


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def phases(result: ScanResult) -> str:
    return ", ".join(f"{k} {v * 1000:.1f}" for k, v in result.stats.timings.items()) + " ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100000)
    parser.add_argument("--no-rotations", dest="rotations", action="store_false")
    parser.add_argument("--changes", action="store_true",
                        help="then rescan after deleting, editing and adding files")
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the tree and cache in this folder and keep them; "
                             "reuse them when they are already there")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {cpu_model()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="imgdedupe-rescan-"))
    root, db = work / "photos", work / "cache.db"
    try:
        if not db.exists():
            start = time.perf_counter()
            files = make_tree(root, args.files)
            made = time.perf_counter() - start
            fill_cache(db, files, args.rotations)
            print(f"made {args.files} files in {made:.1f} s, filled the cache "
                  f"({db.stat().st_size / 2**20:.0f} MiB) in "
                  f"{time.perf_counter() - start - made:.1f} s")
        print(f"N = {walk_stat(root)} files, rotations {'on' if args.rotations else 'off'}")
        first, first_s = scan(root, db, args.rotations)
        print(f"first scan (builds the index cache): {first_s * 1000:.1f} ms  [{phases(first)}]")
        plain = best_of(3, walk_stat, root)
        again, rescan_s = scan(root, db, args.rotations)
        assert again.groups == first.groups, "a rescan must give the first scan's groups"
        replayed = "sync" not in again.stats.timings
        print(f"rescan: {rescan_s * 1000:.1f} ms  [{phases(again)}]  "
              f"(answer replayed from the scan memo: {'yes' if replayed else 'no'})")
        # The path a rescan takes when the memo does not apply but no vector
        # changed (another threshold, say): rows synced, pairs from their cache.
        for memo in db.with_suffix(".index").glob(f"*/{scan_memo.FILE_NAME}"):
            memo.unlink()
        computed, computed_s = scan(root, db, args.rotations)
        assert computed.groups == first.groups
        print(f"rescan without the memo: {computed_s * 1000:.1f} ms  [{phases(computed)}]")
        print(f"groups: {len(again.groups)} "
              f"({sum(g.kind == 'exact' for g in again.groups)} exact)")
        print(f"walk+stat (os.scandir, warm, best of 3): {plain * 1000:.2f} ms")
        print(f"rescan / walk+stat = {rescan_s / plain:.2f}  (target <= 2); "
              f"without the memo {computed_s / plain:.2f}")
        if args.changes:
            changes(root, db, args.rotations, plain)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

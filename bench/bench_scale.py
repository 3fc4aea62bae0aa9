"""Index + group at library scale: time, peak memory and recall.

    python bench/bench_scale.py --vectors 100000 [--no-rotations] [--keep DIR]

Issue targets on the 2-core build machine: 100k vectors index + group in
<= 30 s within 1.5 GB peak RSS; 1M vectors in <= 10 min within 4 GB.

No image is decoded. N file rows and realistic clustered 1280-d vectors
(EfficientNet-Lite0's size; with the 3 rotated vectors per image the real
cache holds, unless --no-rotations) are written straight into a SQLite
cache through the Store API. Their cosines follow Lite0's calibration
(the knots in core/model/registry.py): unrelated photos ~0.3, photos of one scene ~0.5,
near-duplicates 0.75-0.96, each photo's rotated vectors ~0.5 to it. Planted
near-duplicate groups (of 2 and 3) and really rotated copies sit inside the
background, and the vectors live in a decaying spectrum plus isotropic noise,
as CNN features do (PCA-128 keeps most, not all, of the energy).

The timed stage runs in a fresh child process (so its ru_maxrss is the
stage's own peak): the pipeline's own index and group functions
(pairs.cache.library_pairs: the pair cache, PCA on a bounded sample, the on-disk Annoy
forest, exact rescoring streamed from SQLite; then scan.grouping.similarity_graph and
graph.groups_at) on a cold index cache. Afterwards the parent measures
recall@10 of the Annoy forest against exact search for sampled queries,
and the recall of the planted pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from imgdedupe.core.model import calibration
from imgdedupe.core.model.backbone import BackboneInfo
from imgdedupe.core.records import ImageFile
from imgdedupe.core.storage.store import Store

DIM = 1280
MODEL = BackboneInfo("efficientnet-lite0", DIM, "efficientnet-lite0:benchscale:p3", "none")
PERIOD = 37 * 101  # planted copies refer back at most 3 rows, never across a chunk
CHUNK = PERIOD * 8
# Planted structure, by row number: row r with r % 37 == 1 is a near copy
# of row r-1, r % 37 == 2 a weaker copy of row r-2 (a group of 3);
# r % 101 == 5 is row r-1 turned 90 degrees (matches only via rotations).
A2, B2, C2, E2 = 0.30, 0.20, 0.35, 0.15  # energy: mean, scene, photo, noise


class Space:
    """The fixed directions the vectors are drawn in."""

    def __init__(self, count: int) -> None:
        rng = np.random.default_rng(1)
        basis, _ = np.linalg.qr(rng.normal(size=(DIM, 64 + 512 + 1)))
        self.mean = basis[:, 0]
        self.scene_basis = basis[:, 1:65] * (np.arange(1, 65) ** -0.5)
        self.photo_basis = basis[:, 65:] * (np.arange(1, 513) ** -0.3)
        self.scenes = rng.normal(size=(max(1, count // 40), 64))

    def photo(self, rng: np.random.Generator, scene: np.ndarray) -> np.ndarray:
        """Unit vectors: the shared mean, a scene, the photo's own content, noise."""
        n = len(scene)
        scene_part = _unit(self.scenes[scene] @ self.scene_basis.T)
        photo_part = _unit(rng.normal(size=(n, 512)) @ self.photo_basis.T)
        noise = _unit(rng.normal(size=(n, DIM)).astype(np.float32))
        return _unit(np.sqrt(A2) * self.mean + np.sqrt(B2) * scene_part
                     + np.sqrt(C2) * photo_part + np.sqrt(E2) * noise)

    def perturb(self, rng: np.random.Generator, x: np.ndarray, t: float) -> np.ndarray:
        """A near-duplicate: the same photo with its content and noise nudged."""
        n = len(x)
        photo_part = _unit(rng.normal(size=(n, 512)) @ self.photo_basis.T)
        noise = _unit(rng.normal(size=(n, DIM)).astype(np.float32))
        return _unit(x + t * (np.sqrt(C2) * photo_part + np.sqrt(E2) * noise))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_chunk(space: Space, start: int, count: int, rotations: bool
               ) -> tuple[np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(1000 + start)
    rows = np.arange(start, start + count)
    scene = rng.integers(0, len(space.scenes), size=count)
    upright = space.photo(rng, scene)
    rotated = None
    if rotations:  # other views of the same scene, ~0.5 to the upright one
        rotated = np.stack([_unit(0.1 * upright + space.photo(rng, scene)) for _ in range(3)], 1)
    for offset, t in ((1, 0.4), (2, 1.0)):  # a near copy, a weaker one (groups of 3)
        copy = np.nonzero(rows % 37 == offset)[0]
        upright[copy] = space.perturb(rng, upright[copy - offset], t)
        if rotated is not None:  # the copy turned looks like the original turned
            rotated[copy] = space.perturb(rng, rotated[copy - offset].reshape(-1, DIM),
                                          t).reshape(-1, 3, DIM)
    turned = np.nonzero((rows % 101 == 5) & (rows % 37 > 2) & ((rows - 1) % 37 > 2))[0]
    if rotated is not None:
        upright[turned] = space.perturb(rng, rotated[turned - 1, 0], 0.4)
        rotated[turned, 2] = space.perturb(rng, upright[turned - 1], 0.4)
    return upright.astype(np.float16), None if rotated is None else rotated.astype(np.float16)


def planted_pairs(count: int, rotations: bool) -> np.ndarray:
    rows = np.arange(count)
    pairs = [np.stack([rows[rows % 37 == 1] - 1, rows[rows % 37 == 1]], 1),
             np.stack([rows[rows % 37 == 2] - 2, rows[rows % 37 == 2]], 1)]
    if rotations:
        turned = rows[(rows % 101 == 5) & (rows % 37 > 2) & ((rows - 1) % 37 > 2)]
        pairs.append(np.stack([turned - 1, turned], 1))
    return np.concatenate(pairs)


def fill(db: Path, count: int, rotations: bool) -> None:
    space = Space(count)
    files = [ImageFile(f"/bench/photos/{n // 250:05d}/IMG_{n:07d}.jpg", 1000 + n, n)
             for n in range(count)]
    with Store(db) as store:
        ids = [c.file_id for c in store.sync_files(files)]
        for start in range(0, count, CHUNK):
            upright, rotated = make_chunk(space, start, min(CHUNK, count - start), rotations)
            store.put_vectors(MODEL.model_id, (
                (ids[start + n], upright[n], None if rotated is None else rotated[n])
                for n in range(len(upright))))


def peak_rss_mb() -> float:
    """VmHWM, the peak resident set of this process. Not ru_maxrss: Linux
    carries that across exec from the forking parent, so a child of a
    parent that held 1.3 GB reported 1.3 GB before doing anything."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(db: Path, rotations: bool) -> dict:
    """The timed stage (in a child): index + group, as the pipeline runs them."""
    from imgdedupe.core.groups.contents import PixelSizes
    from imgdedupe.core.groups.graph import FLOOR_SCORE, groups_at
    from imgdedupe.core.pairs.cache import library_pairs
    from imgdedupe.core.scan.config import ScanConfig, cache_dir
    from imgdedupe.core.scan.grouping import similarity_graph

    with Store(db) as store:
        ids = sorted(store.vector_ids(MODEL.model_id, rotations))
        contents = {f"id:{i:012d}": [store_row(i)] for i in ids}  # not timed: the sync's work
        before = peak_rss_mb()
        config = ScanConfig(roots=("/bench/photos",), db_path=str(db), backbone=MODEL.name,
                            rotations=rotations)
        start = time.perf_counter()
        usable = sorted(contents)
        floor = min(FLOOR_SCORE, config.threshold)
        floor_cosine = calibration.score_to_cosine(MODEL.name, floor)
        pairs, scores, method = library_pairs(
            store, MODEL.model_id, [contents[k][0].file_id for k in usable], MODEL.dim,
            config.rotations, floor_cosine, config.index, cache_dir(config, MODEL.model_id))
        indexed = time.perf_counter()
        pixel_sizes = PixelSizes(contents)
        graph, _ = similarity_graph(MODEL.name, usable, contents, pixel_sizes, pairs, scores,
                                    floor, (), store)
        groups = groups_at(graph, config.threshold)
        done = time.perf_counter()
    return {"index_s": indexed - start, "group_s": done - indexed, "method": method,
            "pairs": len(pairs), "groups": len(groups), "rss_before_mb": before,
            "peak_rss_mb": peak_rss_mb(), "pair_list": pairs.tolist()}


def store_row(file_id: int):  # noqa: ANN201
    from imgdedupe.core.storage.store import CachedFile

    return CachedFile(file_id, f"/bench/{file_id}.jpg", 1, 1, None, 4000, 3000, None, None)


def recall_at_10(db: Path, count: int, rotations: bool, queries: int = 200) -> float:
    """Annoy's 10 nearest (the cached forest) against exact full-dim search."""
    from imgdedupe.core.pairs.ann import StoreVectors, StreamedForest, chunks

    cache = db.with_suffix(".index") / MODEL.model_id.replace(":", "_")
    key = next(cache.glob("*.ann")).name[:-4]
    with Store(db) as store:
        ids = sorted(store.vector_ids(MODEL.model_id, rotations))
        source = StoreVectors(store, MODEL.model_id, ids, DIM, False)
        forest = StreamedForest(source, 128, 40, key, cache)
        assert forest.reused
        picks = np.sort(np.random.default_rng(5).choice(count, queries, replace=False))
        q = source.read(picks)[0].astype(np.float32)
        best = np.full((queries, 10), -2.0, np.float32)
        best_ix = np.zeros((queries, 10), np.int64)
        for start, upright, _ in chunks(source, 32768):
            sims = q @ upright.astype(np.float32).T
            for row, p in enumerate(picks):
                if start <= p < start + len(upright):
                    sims[row, p - start] = -2.0
            both = np.concatenate([best, sims], 1)
            both_ix = np.concatenate([best_ix, np.arange(start, start + len(upright))
                                      + np.zeros((queries, 1), np.int64)], 1)
            top = np.argsort(-both, axis=1)[:, :10]
            best = np.take_along_axis(both, top, 1)
            best_ix = np.take_along_axis(both_ix, top, 1)
        hits = 0
        for row, p in enumerate(picks.tolist()):
            found = [j for j in forest._annoy.get_nns_by_item(p, 11, search_k=-1) if j != p][:10]
            hits += len(set(found) & set(best_ix[row].tolist()))
        forest.close()
    return hits / (10 * queries)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vectors", type=int, default=100000)
    parser.add_argument("--no-rotations", dest="rotations", action="store_false")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the database in this folder (reused when present)")
    parser.add_argument("--fill-only", action="store_true",
                        help="only write the database (with --keep), measure later")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.rotations)))
        return
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="imgdedupe-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "cache.db"
    try:
        if not db.exists():
            start = time.perf_counter()
            fill(db, args.vectors, args.rotations)
            print(f"filled {args.vectors} rows in {time.perf_counter() - start:.1f} s "
                  f"({db.stat().st_size / 2**20:.0f} MiB)")
        if args.fill_only:
            return
        shutil.rmtree(db.with_suffix(".index"), ignore_errors=True)  # a cold index
        flags = [] if args.rotations else ["--no-rotations"]
        child = subprocess.run([sys.executable, __file__, "--measure", str(db), *flags],
                               capture_output=True, text=True, check=True)
        result = json.loads(child.stdout.strip().splitlines()[-1])
        found = {tuple(p) for p in result.pop("pair_list")}
        planted = planted_pairs(args.vectors, args.rotations)
        planted_found = sum(tuple(p) in found for p in planted.tolist()) / len(planted)
        total = result["index_s"] + result["group_s"]
        print(f"N = {args.vectors}, rotations {'on' if args.rotations else 'off'}, "
              f"method {result['method']}")
        print(f"index {result['index_s']:.1f} s + group {result['group_s']:.1f} s = "
              f"{total:.1f} s; peak RSS {result['peak_rss_mb']:.0f} MB "
              f"(before the stage: {result['rss_before_mb']:.0f} MB)")
        print(f"pairs >= floor: {result['pairs']}, groups at the default: {result['groups']}, "
              f"planted pairs found: {planted_found:.4f} of {len(planted)}")
        if result["method"] == "annoy":
            print(f"recall@10 (Annoy vs exact, 200 queries): "
                  f"{recall_at_10(db, args.vectors, args.rotations):.3f}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

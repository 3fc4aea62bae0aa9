"""Candidate indexes at scale: Annoy against FAISS (IVF-Flat, IVF-PQ, HNSW).

    python bench/bench_index_1m.py --vectors 1000000 [--methods annoy,ivf-flat,...]

What the pipeline indexes above the exact limit is not the 1280-d vectors
but their PCA projection (``pairs.search.DEFAULT_PCA_DIMS`` = 128, fitted
on ``ann.PCA_SAMPLE`` = 20,000 vectors, then unit-normalised): the
candidates come from that, and every candidate is then rescored exactly
from the full vectors (``ann.exact_scores``, the same for every index, so
not timed here; see bench_scale.py). 1M x 1280 float32 is 5 GB, so this
bench never holds the full vectors: it draws bench_scale's realistic
clustered vectors (same generator, same planted near-duplicates, no
rotations: the pipeline searches upright vectors only) a chunk at a time,
projects each chunk with a PCA fitted on the first 20,000 rows, and writes
the N x 128 float32 projections to a file. It also keeps the exact
full-dimensional cosine of each planted pair.

Each index then runs in a fresh child process that reads the projections
from that file a chunk at a time (never memory-mapped, so that the child's
peak RSS, VmHWM, is the index's own memory plus a chunk): build, then one
query per vector for its 24 neighbours (``DEFAULT_NEIGHBOURS``) on 2
threads, as the pipeline asks them. Planted recall: of the planted pairs
whose exact cosine is at or above the scan's floor (what a perfect search
keeps), the share among the index's candidates; exact rescoring keeps
exactly those, so it is the recall of the scan's pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_scale import Space, make_chunk, peak_rss_mb, planted_pairs  # noqa: E402

CHUNK = 37 * 101 * 8  # bench_scale's: planted copies never cross a chunk
PCA_DIMS = 128
NEIGHBOURS = 24
THREADS = 2
KEEP_ALIVE: list = []
METHODS = ("annoy", "ivf-flat", "ivf-pq", "hnsw")


def nlist_for(count: int) -> int:
    """IVF cells: the pipeline's (a power of two near 4 sqrt(N))."""
    from imgdedupe.core.pairs.faiss_index import cells_for

    return cells_for(count)


def prepare(work: Path, count: int, floor_cosine: float) -> None:
    from imgdedupe.core.pairs.ann import ArraySource, fit_pca, project

    space = Space(count)
    first, _ = make_chunk(space, 0, min(count, 20000), False)
    mean, components = fit_pca(ArraySource(first, None), PCA_DIMS)
    planted = planted_pairs(count, False)
    cosines = np.zeros(len(planted), np.float32)
    with open(work / "projected.f32", "wb") as out:
        for start in range(0, count, CHUNK):
            upright, _ = make_chunk(space, start, min(CHUNK, count - start), False)
            project(upright, mean, components).astype(np.float32).tofile(out)
            inside = (planted[:, 0] >= start) & (planted[:, 1] < start + len(upright))
            a = upright[planted[inside, 0] - start].astype(np.float32)
            b = upright[planted[inside, 1] - start].astype(np.float32)
            cosines[inside] = (a * b).sum(1)
    keep = cosines >= floor_cosine
    np.save(work / "planted.npy", planted[keep])
    print(f"planted pairs: {len(planted)}, at or above the floor cosine {floor_cosine:.3f}: "
          f"{int(keep.sum())} (cosines {cosines.min():.3f}-{cosines.max():.3f})")


def read_rows(path: Path, start: int, stop: int) -> np.ndarray:
    with open(path, "rb") as f:
        f.seek(start * PCA_DIMS * 4)
        return np.fromfile(f, np.float32, (stop - start) * PCA_DIMS).reshape(-1, PCA_DIMS)


def faiss_index(method: str, count: int):  # noqa: ANN201
    import faiss

    if method == "ivf-flat":  # exactly the pipeline's (pairs.faiss_index)
        from imgdedupe.core.pairs.faiss_index import TRAIN_ROUNDS, new_index

        quantizer, index = new_index(PCA_DIMS, nlist_for(count))
        KEEP_ALIVE.append(quantizer)
        return index, f"IVF{nlist_for(count)},Flat, {TRAIN_ROUNDS} k-means rounds"
    if method == "ivf-pq":
        spec = f"IVF{nlist_for(count)},PQ32"
    else:
        spec = "HNSW32"
    index = faiss.index_factory(PCA_DIMS, spec, faiss.METRIC_INNER_PRODUCT)
    return index, spec


def run_method(work: Path, method: str, count: int) -> dict:
    """Build, query and report one index (in a child process)."""
    path = work / "projected.f32"
    found: list[np.ndarray] = []
    k = NEIGHBOURS + 1
    before = peak_rss_mb()
    start, cpu_start = time.perf_counter(), time.process_time()
    if method == "annoy":
        from concurrent.futures import ThreadPoolExecutor

        from annoy import AnnoyIndex

        index = AnnoyIndex(PCA_DIMS, "angular")
        index.set_seed(7)
        index.on_disk_build(str(work / "bench.ann"))
        for first in range(0, count, 32768):
            for item, vector in enumerate(read_rows(path, first, min(count, first + 32768)),
                                          first):
                index.add_item(item, vector)
        index.build(40, n_jobs=1)
        built, cpu_built = time.perf_counter(), time.process_time()
        spec, size = "40 trees, search_k 16/neighbour", (work / "bench.ann").stat().st_size

        def block(lo: int) -> np.ndarray:
            hi = min(count, lo + 4096)
            rows = [index.get_nns_by_item(i, k, search_k=k * 16) for i in range(lo, hi)]
            width = max(map(len, rows))
            return np.array([r + [-1] * (width - len(r)) for r in rows])

        with ThreadPoolExecutor(THREADS) as pool:
            found = list(pool.map(block, range(0, count, 4096)))
    else:
        import faiss

        faiss.omp_set_num_threads(THREADS)
        index, spec = faiss_index(method, count)
        if method == "hnsw":
            index.hnsw.efConstruction = 40
        else:
            from imgdedupe.core.pairs.faiss_index import TRAIN_PER_CELL

            rng = np.random.default_rng(0)
            size = min(count, TRAIN_PER_CELL * nlist_for(count))
            sample = np.sort(rng.choice(count, size, False))
            # The sample's rows, picked from sequential chunks (a read per
            # row was 65k file opens, most of the 100k "training" time).
            index.train(np.concatenate([
                read_rows(path, first, min(count, first + 65536))[
                    sample[(sample >= first) & (sample < first + 65536)] - first]
                for first in range(0, count, 65536)]))
        trained = time.perf_counter()
        for first in range(0, count, 65536):
            index.add(read_rows(path, first, min(count, first + 65536)))
        built, cpu_built = time.perf_counter(), time.process_time()
        if method == "hnsw":
            index.hnsw.efSearch = 64
            spec += ", efConstruction 40, efSearch 64"
        else:
            from imgdedupe.core.pairs.faiss_index import NPROBE

            index.nprobe = NPROBE
            spec += f", nprobe {NPROBE}"
        size = len(faiss.serialize_index(index))
        # BENCH_SWEEP_ONLY=1: no full query pass, only the sweep's.
        for first in range(0, count if not os.environ.get("BENCH_SWEEP_ONLY") else 0, 65536):
            found.append(index.search(read_rows(path, first, min(count, first + 65536)), k)[1])
        if not found:
            found.append(np.full((1, k), -1))
    queried, cpu_queried = time.perf_counter(), time.process_time()
    rss = peak_rss_mb()
    neighbours = np.concatenate(found)
    owner = np.repeat(np.arange(len(neighbours)), neighbours.shape[1])
    other = neighbours.ravel()
    real = (other >= 0) & (other != owner)
    keys = np.unique(np.minimum(owner, other)[real] * count + np.maximum(owner, other)[real])
    planted = np.load(work / "planted.npy")
    hit = np.isin(planted[:, 0] * count + planted[:, 1], keys)
    sweep = []
    # The rows of the planted pairs only (a tenth of the library): a pair is
    # proposed when either photo's query finds the other, so their queries
    # alone give the planted recall, at a tenth of a full pass's time.
    ends = np.unique(planted.ravel())
    at = np.searchsorted(ends, planted)
    vectors = np.concatenate([
        read_rows(path, f, min(count, f + 65536))[ends[(ends >= f) & (ends < f + 65536)] - f]
        for f in range(0, count, 65536)])
    for nprobe in [int(p) for p in os.environ.get("BENCH_NPROBES", "").split(",") if p]:
        index.nprobe = nprobe
        begin = time.perf_counter()
        rows = index.search(vectors, k)[1]
        seconds = time.perf_counter() - begin
        lo, hi = planted[:, 0], planted[:, 1]
        found_pair = (rows[at[:, 0]] == hi[:, None]).any(1) | (rows[at[:, 1]] == lo[:, None]).any(1)
        sweep.append({"nprobe": nprobe, "query_s": seconds * count / len(ends),
                      "planted_recall": float(found_pair.mean())})
    if method != "annoy":
        spec += f"; training {trained - start:.1f} s of the build"
    return {"method": method, "spec": spec, "build_s": built - start,
            "query_s": queried - built, "build_cpu_s": cpu_built - cpu_start,
            "query_cpu_s": cpu_queried - cpu_built, "peak_rss_mb": rss, "rss_before_mb": before,
            "index_mb": size / 2**20, "candidates": int(len(keys)),
            "planted_recall": float(hit.mean()), "sweep": sweep}


def exact_check(work: Path, count: int, sample: int = 2000) -> float:
    """The share of ``sample`` planted pairs that an exact search of the
    projections (top 25, the photo itself included) proposes: whether a
    miss is the index's or the projection's and the 24 neighbours'."""
    planted = np.load(work / "planted.npy")
    rng = np.random.default_rng(0)
    pick = planted[np.sort(rng.choice(len(planted), min(sample, len(planted)), False))]
    rows = np.unique(pick.ravel())
    queries = np.concatenate([read_rows(work / "projected.f32", r, r + 1) for r in rows])
    k = NEIGHBOURS + 1
    best = np.full((len(rows), k), -9.0, np.float32)
    best_ix = np.zeros((len(rows), k), np.int64)
    for first in range(0, count, 100_000):
        block = read_rows(work / "projected.f32", first, min(count, first + 100_000))
        both = np.concatenate([best, queries @ block.T], 1)
        ix = np.concatenate([best_ix, np.broadcast_to(np.arange(first, first + len(block)),
                                                      (len(rows), len(block)))], 1)
        top = np.argpartition(-both, k, axis=1)[:, :k]
        best, best_ix = np.take_along_axis(both, top, 1), np.take_along_axis(ix, top, 1)
    at = np.searchsorted(rows, pick)
    hit = (best_ix[at[:, 0]] == pick[:, 1:2]).any(1) | (best_ix[at[:, 1]] == pick[:, :1]).any(1)
    return float(hit.mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vectors", type=int, default=1000000)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--keep", type=Path, default=None, help="work folder (reused)")
    parser.add_argument("--exact-check", action="store_true",
                        help="exact top-25 of 2,000 planted pairs' photos, no index")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = json.dumps(run_method(Path(args.child[0]), args.child[1], args.vectors))
        (Path(args.child[0]) / f"{args.child[1]}.json").write_text(result)  # kept
        print(result)
        return
    from imgdedupe.core.groups.graph import FLOOR_SCORE
    from imgdedupe.core.model import calibration

    floor = calibration.score_to_cosine("efficientnet-lite0", min(FLOOR_SCORE, 90))
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}, Python {platform.python_version()}, numpy {np.__version__}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="imgdedupe-index-"))
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "planted.npy").exists():
        start = time.perf_counter()
        prepare(work, args.vectors, floor)
        print(f"drew and projected {args.vectors} vectors in {time.perf_counter() - start:.0f} s")
    if args.exact_check:
        print(f"exact top-{NEIGHBOURS + 1} of the projections proposes "
              f"{exact_check(work, args.vectors):.4f} of 2,000 sampled planted pairs")
        return
    print("| N | index | build s (CPU s) | query s (CPU s) | index MB | peak RSS MB | "
          "candidates | planted recall |")
    for method in args.methods.split(","):
        child = subprocess.run([sys.executable, __file__, "--vectors", str(args.vectors),
                                "--child", str(work), method],
                               capture_output=True, text=True, check=True)
        r = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"| {args.vectors:,} | {r['method']} ({r['spec']}) | {r['build_s']:.1f} "
              f"({r.get('build_cpu_s', 0):.0f}) | {r['query_s']:.1f} "
              f"({r.get('query_cpu_s', 0):.0f}) | "
              f"{r['index_mb']:.0f} | {r['peak_rss_mb']:.0f} | "
              f"{r['candidates']:,} | {r['planted_recall']:.4f} |", flush=True)
        for other in r["sweep"]:  # BENCH_NPROBES=4,16: the same index, other probes
            # (query s: the planted rows' time, scaled to all N queries)
            print(f"|   | nprobe {other['nprobe']} | | {other['query_s']:.1f} | | | | "
                  f"{other['planted_recall']:.4f} |", flush=True)
        (work / "bench.ann").unlink(missing_ok=True)
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

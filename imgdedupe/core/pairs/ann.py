"""Approximate pair search for large libraries, streamed in chunks.

Above ``pairs.search.EXACT_LIMIT`` images the candidates come from PCA + an Annoy
forest and are rescored exactly. At a million photos the full vectors no
longer fit in memory (1M x 1280 x 4 bytes x 4 rotations = 20 GB as float32,
10 GB even as the cache's float16), so nothing here holds them all:

* the vectors are read from a ``VectorSource`` (the pipeline's reads the
  SQLite cache) a chunk at a time, for the PCA projection, for the queries
  and for the exact rescoring;
* PCA is fitted on a bounded sample (``PCA_SAMPLE``);
* the Annoy forest is built on disk (``on_disk_build``) and memory-mapped:
  its pages are the kernel's page cache, not the process's heap;
* the only full-dimensional array kept is a block of upright vectors as
  float32 (at most ``SCORE_BUDGET``, 2 GB), and only while pairs are
  rescored, after the forest is unmapped.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

PCA_SAMPLE = 20000  # PCA is fitted on a bounded sample: memory stays flat
SCORE_BUDGET = 2 << 30  # bytes of float32 upright vectors held for rescoring
READ_CHUNK = 4096  # images read from the source at once: ~40 MB with rotations
# Neighbours asked of a rotated query. A rotated vector matters only when
# another photo is a real rotated copy, which is then among its very nearest
# neighbours; asking for all 24 quadrupled the query time at 1M photos
# (Annoy's cost grows with k: search_k = trees x k).
ROTATED_NEIGHBOURS = 4
# Annoy inspects search_k items per query; its default, trees x k (1000 for
# 24 neighbours), took 130-180 us a query on the build machine, 40 s of a
# 100k-photo index. 16 per neighbour halves that; on bench_scale's planted
# near-duplicates, recall moved from 0.967 to 0.958 (docs/performance.md).
SEARCH_K_PER_NEIGHBOUR = 16
# Images per step of work that holds the GIL (a list conversion): small
# enough that the window's thread gets it back within a few milliseconds.
GIL_BLOCK = 256
# Annoy searches without the GIL: queries scale with cores (see candidate_keys).
QUERY_THREADS = max(1, min(4, os.cpu_count() or 1))


class VectorSource(Protocol):
    """The vectors of ``count`` images, in index order, read in pieces."""

    @property
    def count(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def rotations(self) -> bool: ...

    def read(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(upright (n, dim), rotated (n, 3, dim) or None) of the images at
        ``positions`` (sorted), float16 or float32."""
        ...


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of a 1-d integer array, by sorting. numpy 2's
    np.unique hashes integers instead: on 4M random int64 keys it took
    2.9 s and held the GIL for 370 ms at a stretch (freezing the window),
    where a sort (which releases the GIL) plus a mask takes 27 ms."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    first = np.empty(len(ordered), dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


@dataclass
class ArraySource:
    """A VectorSource over arrays already in memory (small libraries, tests)."""

    upright: np.ndarray
    rotated: np.ndarray | None

    @property
    def count(self) -> int:
        return len(self.upright)

    @property
    def dim(self) -> int:
        return int(self.upright.shape[1])

    @property
    def rotations(self) -> bool:
        return self.rotated is not None

    def read(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        rotated = None if self.rotated is None else self.rotated[positions]
        return self.upright[positions], rotated


class StoreVectors:
    """The cached vectors of ``ids``, read from the store a chunk at a time
    (a ``VectorSource``; ``store`` is a ``store.Store``). Loading them all at once, as float32, took
    20 GB for 1M photos with rotations."""

    def __init__(self, store: Any, model_id: str, ids: list[int], dim: int,
                 rotations: bool) -> None:
        self.store, self.model_id, self.ids = store, model_id, ids
        self.count, self.dim, self.rotations = len(ids), dim, rotations

    def read(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        wanted = [self.ids[p] for p in positions.tolist()]
        vectors = self.store.get_vectors(self.model_id, wanted, self.dim)
        # float16, as stored: exact in float32, and half the memory.
        upright = np.stack([vectors[i][0] for i in wanted])
        if not self.rotations:
            return upright, None
        return upright, np.stack([vectors[i][1] for i in wanted])


def chunks(source: VectorSource, size: int = READ_CHUNK
           ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """(first position, upright, rotated) of consecutive chunks, in order."""
    for start in range(0, source.count, size):
        upright, rotated = source.read(np.arange(start, min(start + size, source.count)))
        yield start, upright, rotated


def queries_of(upright: np.ndarray, rotated: np.ndarray | None) -> np.ndarray:
    """(n, Q, dim) float32: every query vector of every image, upright first."""
    upright = np.asarray(upright, dtype=np.float32)
    if rotated is None:
        return upright[:, None, :]
    return np.concatenate([upright[:, None, :], np.asarray(rotated, np.float32)], axis=1)


def save_pca(pca_file: Path, mean: np.ndarray, components: np.ndarray) -> None:
    """The projection beside its index (Annoy's or FAISS's), under a temp
    name then renamed: a crash never leaves a half-written one to trust."""
    tmp = pca_file.with_name(pca_file.name + ".tmp.npz")
    np.savez(tmp, mean=mean, components=components)
    tmp.replace(pca_file)


def load_pca(pca_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components) as save_pca wrote them."""
    with np.load(pca_file) as saved:
        return saved["mean"], saved["components"]


def fit_pca(source: VectorSource, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components (dims, dim)) of PCA on a bounded sample of ``source``."""
    rng = np.random.default_rng(0)
    positions = np.arange(source.count)
    if source.count > PCA_SAMPLE:
        positions = np.sort(rng.choice(source.count, PCA_SAMPLE, replace=False))
    sample = np.asarray(source.read(positions)[0], dtype=np.float32)
    # The top eigenvectors of the dim x dim covariance, by numpy's eigh
    # (it releases the GIL; scipy's held it for 260-630 ms, a freeze of
    # the window). This is what scikit-learn's
    # PCA(svd_solver="covariance_eigh") computes, and it was tried in its
    # place: as fast (0.56 s vs 0.58 s at 20,000 x 1280), as short a GIL
    # hold, the same subspace, but importing sklearn.decomposition keeps
    # ~97 MB more resident for the rest of the process and costs 1.1-1.6
    # s: the 100k index stage's peak RSS rose from 966 to 1054 MB in one
    # run (docs/performance.md, "PCA: scikit-learn or by hand").
    mean = sample.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred = sample - mean
    covariance = (centred.T @ centred).astype(np.float64)
    del centred
    _, vectors = np.linalg.eigh(covariance)
    vectors = vectors[:, -dims:]
    top = vectors[:, ::-1].T  # largest first
    # A fixed sign per component (largest entry positive), as SVD-based
    # PCA does, so the same vectors always give the same forest.
    signs = np.sign(top[np.arange(len(top)), np.abs(top).argmax(axis=1)])
    return mean, (top * signs[:, None]).astype(np.float32)


def project(vectors: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Unit-length PCA projections of ``vectors`` (..., dim) -> (..., dims)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    # As one 2-D product: numpy runs (n, 3, dim) @ (dim, k) as n tiny
    # products of 3 rows, which took 10 s of a 100k-photo index.
    flat = vectors.reshape(-1, vectors.shape[-1]) - mean
    projected = (flat @ components.T).reshape(*vectors.shape[:-1], -1)
    norms = np.linalg.norm(projected, axis=-1, keepdims=True)
    return projected / np.maximum(norms, 1e-12)


class StreamedForest:
    """PCA to ``dims`` and an Annoy forest of the projected upright vectors,
    cached in ``cache_dir`` under ``key`` (rebuilt when the key changes)."""

    def __init__(self, source: VectorSource, dims: int, trees: int, key: str,
                 cache_dir: Path | None) -> None:
        from annoy import AnnoyIndex

        self.dims = dims
        self.reused = False
        self._annoy = AnnoyIndex(dims, "angular")
        pca_file = ann_file = None
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            pca_file, ann_file = cache_dir / f"{key}.pca.npz", cache_dir / f"{key}.ann"
            if pca_file.exists() and ann_file.exists():
                self._load(pca_file, ann_file)
                return
        self.mean, self.components = self._fit_pca(source)
        self._build(source, trees, cache_dir, key, pca_file, ann_file)

    @classmethod
    def cached(cls, key: str, cache_dir: Path) -> StreamedForest | None:
        """The forest saved under ``key``, or None; never builds one."""
        pca_file, ann_file = cache_dir / f"{key}.pca.npz", cache_dir / f"{key}.ann"
        if not (pca_file.exists() and ann_file.exists()):
            return None
        forest = cls.__new__(cls)
        try:
            forest._load(pca_file, ann_file)
        except (OSError, ValueError, KeyError) as exc:
            log.debug("cannot load the forest %s: %s", ann_file, exc)
            return None
        return forest

    def _load(self, pca_file: Path, ann_file: Path) -> None:
        from annoy import AnnoyIndex

        self.mean, self.components = load_pca(pca_file)
        self.dims = len(self.components)
        self._annoy = AnnoyIndex(self.dims, "angular")
        if not self._annoy.load(str(ann_file)):  # memory-mapped, not read into RAM
            raise OSError(f"annoy could not load {ann_file}")
        self.reused = True

    def _fit_pca(self, source: VectorSource) -> tuple[np.ndarray, np.ndarray]:
        return fit_pca(source, self.dims)

    def _build(self, source: VectorSource, trees: int, cache_dir: Path | None, key: str,
               pca_file: Path | None, ann_file: Path | None) -> None:
        self._annoy.set_seed(7)  # deterministic forests, deterministic output
        tmp_ann = None
        if cache_dir is not None and ann_file is not None:
            remove_stale_indexes(cache_dir, key)
            # Built straight into a file that is then memory-mapped: an
            # in-memory build of 1M items holds the whole forest (~1 GB)
            # on the heap until it is saved.
            tmp_ann = ann_file.with_name(f"{ann_file.name}.{os.getpid()}.tmp")
            self._annoy.on_disk_build(str(tmp_ann))
        for start, upright, _ in chunks(source):
            for item, vector in enumerate(self.project(upright), start):
                self._annoy.add_item(item, vector)
        self._annoy.build(trees, n_jobs=1)
        if tmp_ann is None or ann_file is None or pca_file is None:
            return
        # Temp names and rename, so a crash never leaves a half-written
        # index that a later run would trust.
        self._annoy.unload()
        tmp_ann.replace(ann_file)
        save_pca(pca_file, self.mean, self.components)
        self._annoy.load(str(ann_file))

    def project(self, vectors: np.ndarray) -> np.ndarray:
        return project(vectors, self.mean, self.components)

    def neighbours_of(self, upright: np.ndarray, rotated: np.ndarray | None,
                      neighbours: int) -> list[np.ndarray]:
        """Per image, the forest items its upright and rotated vectors find:
        the queries ``candidate_keys`` makes, for images not in the forest."""
        k, k_rotated = query_sizes(neighbours)
        found = []
        for per_image in self.project(queries_of(upright, rotated)).tolist():
            items = self._annoy.get_nns_by_vector(per_image[0], k,
                                                  search_k=k * SEARCH_K_PER_NEIGHBOUR)
            for vector in per_image[1:]:
                items += self._annoy.get_nns_by_vector(
                    vector, k_rotated, search_k=k_rotated * SEARCH_K_PER_NEIGHBOUR)
            found.append(np.unique(np.asarray(items, dtype=np.int64)))
        return found

    def candidate_keys(self, source: VectorSource, neighbours: int) -> np.ndarray:
        """Sorted unique ``lo * count + hi`` of every candidate pair: the
        Annoy neighbours of each image's upright and rotated vectors.

        The queries run on QUERY_THREADS threads, a block of GIL_BLOCK
        images each: Annoy releases the GIL while it searches, which is
        most of a query's time (at 100k photos the queries were 17.5 s of
        34, on one core)."""
        n = source.count
        k, k_rotated = query_sizes(neighbours)
        found: list[np.ndarray] = []
        with ThreadPoolExecutor(max_workers=QUERY_THREADS) as pool:
            for start, upright, rotated in chunks(source):
                jobs = []
                for block in range(0, len(upright), GIL_BLOCK):
                    owners = range(start + block, start + min(block + GIL_BLOCK, len(upright)))
                    jobs.append(pool.submit(self._upright_queries, owners, k))
                    if rotated is not None:
                        jobs.append(pool.submit(self._rotated_queries, owners,
                                                rotated[block:block + GIL_BLOCK], k_rotated))
                owner_of: list[int] = []
                results: list[list[int]] = []
                for job in jobs:
                    owners_done, results_done = job.result()
                    owner_of += owners_done
                    results += results_done
                lengths = np.fromiter(map(len, results), np.int64, len(results))
                j = np.fromiter(itertools.chain.from_iterable(results), np.int64,
                                int(lengths.sum()))
                owner = np.repeat(np.asarray(owner_of, dtype=np.int64), lengths)
                keep = owner != j
                owner, j = owner[keep], j[keep]
                found.append(sorted_unique(np.minimum(owner, j) * n + np.maximum(owner, j)))
        if not found:
            return np.zeros(0, dtype=np.int64)
        return sorted_unique(np.concatenate(found))

    def _upright_queries(self, owners: range, k: int) -> tuple[list[int], list[list[int]]]:
        # The upright vector is the item itself: no projection, no
        # conversion of 128 floats to a Python list per query.
        search_k = k * SEARCH_K_PER_NEIGHBOUR
        return list(owners), [self._annoy.get_nns_by_item(i, k, search_k=search_k)
                              for i in owners]

    def _rotated_queries(self, owners: range, rotated: np.ndarray, k: int
                         ) -> tuple[list[int], list[list[int]]]:
        # Lists of floats: Annoy reads a numpy row one numpy scalar at a
        # time, 7 us of a 30 us query. A block at a time: tolist() holds
        # the GIL throughout, and over a whole chunk (1.5M floats) that
        # froze the window for ~140 ms.
        search_k = k * SEARCH_K_PER_NEIGHBOUR
        owner_of, results = [], []
        for i, per_image in zip(owners, self.project(rotated).tolist(), strict=True):
            for vector in per_image:
                results.append(self._annoy.get_nns_by_vector(vector, k, search_k=search_k))
                owner_of.append(i)
        return owner_of, results

    def close(self) -> None:
        self._annoy.unload()


def query_sizes(neighbours: int) -> tuple[int, int]:
    """How many items an upright and a rotated query ask for: the image
    itself comes back too, and rotated vectors ask for fewer."""
    k = neighbours + 1
    return k, min(k, ROTATED_NEIGHBOURS + 1)


def remove_stale_indexes(cache_dir: Path, key: str) -> None:
    """Other keys' index files, Annoy's and FAISS's (pairs.faiss_index):
    one library keeps one index, in its own cache folder."""
    for old in itertools.chain(cache_dir.glob("*.ann"), cache_dir.glob("*.ann.*.tmp"),
                               cache_dir.glob("*.pca.npz"), cache_dir.glob("*.faiss"),
                               cache_dir.glob("*.faiss.*.tmp")):
        if not old.name.startswith(key):
            old.unlink(missing_ok=True)


def exact_scores(source: VectorSource, pairs: np.ndarray,
                 budget: int = SCORE_BUDGET) -> np.ndarray:
    """The exact rotation-aware score of each (lo, hi) row of ``pairs``
    (sorted by lo, then hi): the best cosine of either image's upright or
    rotated vectors with the other's upright one.

    Every image's queries are read once per pass, in order, and scored
    against the upright vectors of its partners in one small matrix
    product. Gathering each pair's 4 x 1280 query floats instead, as the
    in-memory version did, moved ~40 KB per pair: hours for the ~50M
    candidates of 1M photos. The partners' upright vectors are held as
    float32 (numpy converts float16 at ~1.5 ns a number: converting each
    gathered row again cost more than the products), in blocks of at most
    ``budget`` bytes: one pass up to 200k photos, five at 1M.
    """
    n = source.count
    scores = np.full(len(pairs), -np.inf, dtype=np.float32)
    if len(pairs) == 0:
        return scores
    lo, hi = pairs[:, 0], pairs[:, 1]
    lo_start = np.searchsorted(lo, np.arange(n + 1))
    by_hi = np.argsort(hi, kind="stable").astype(pairs.dtype)
    hi_start = np.searchsorted(hi[by_hi], np.arange(n + 1))
    block = max(1, budget // (4 * source.dim))
    for first in range(0, n, block):
        last = min(n, first + block)
        partners_of = np.empty((last - first, source.dim), dtype=np.float32)
        for start, upright, _ in chunks(source):
            if start + len(upright) > first and start < last:
                a, b = max(first, start), min(last, start + len(upright))
                partners_of[a - first:b - first] = upright[a - start:b - start]
        for start, upright, rotated in chunks(source):
            stop = start + len(upright)
            # The chunk's directed edges, grouped by owner: pairs (a, hi)
            # are a contiguous run; pairs (lo, a) come from the by-hi order.
            forward = np.arange(lo_start[start], lo_start[stop])
            backward = by_hi[hi_start[start]:hi_start[stop]]
            rows = np.concatenate([forward, backward])
            owner = np.concatenate([lo[forward], hi[backward]])
            partner = np.concatenate([hi[forward], lo[backward]])
            keep = (partner >= first) & (partner < last)
            order = np.argsort(owner[keep], kind="stable")
            rows, owner, partner = rows[keep][order], owner[keep][order], partner[keep][order]
            bounds = np.searchsorted(owner, np.arange(start, stop + 1))
            best = np.empty(len(rows), dtype=np.float32)
            _score_owners(queries_of(upright, rotated), partners_of, partner - first, bounds,
                          best)
            np.maximum.at(scores, rows, best)
    return scores


def _score_owners(queries: np.ndarray, partners_of: np.ndarray, partner: np.ndarray,
                  bounds: np.ndarray, best: np.ndarray) -> None:
    """best[e] = max over q of queries[owner e, q] . partners_of[partner[e]],
    for the edges of each owner (edges bounds[a]:bounds[a + 1]).

    Batched: owners of similar degree are taken 64 at a time, their edges
    padded to the largest degree among them, and scored in one stacked
    matrix product. One Python-level product per owner cost ~50 us of
    overhead each: minutes at 1M photos."""
    degree = bounds[1:] - bounds[:-1]
    by_degree = np.argsort(degree, kind="stable")
    by_degree = by_degree[degree[by_degree] > 0]
    for g in range(0, len(by_degree), 64):
        owners = by_degree[g:g + 64]
        width = int(degree[owners].max())
        first_edge = bounds[owners][:, None]
        edges = first_edge + np.arange(width)
        real = np.arange(width) < degree[owners][:, None]
        edges = np.where(real, edges, first_edge)  # padding repeats a real edge
        products = np.matmul(partners_of[partner[edges]], queries[owners].transpose(0, 2, 1))
        best[edges[real]] = products.max(axis=2)[real]


def streamed_pairs(source: VectorSource, min_cosine: float, dims: int, trees: int,
                   neighbours: int, key: str, cache_dir: Path | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (lo < hi, sorted) whose exact score >= min_cosine, and the scores."""
    forest = StreamedForest(source, dims, trees, key, cache_dir)
    keys = forest.candidate_keys(source, neighbours)
    forest.close()  # unmapped before the upright vectors are loaded
    return rescored_pairs(source, keys, min_cosine)


def rescored_pairs(source: VectorSource, keys: np.ndarray, min_cosine: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The candidates ``keys`` (sorted ``lo * count + hi``) scored exactly:
    the pairs (lo < hi, sorted) at or above ``min_cosine``, and their scores.
    Every index's candidates go through here, so they score alike."""
    # int32 halves the ~50M candidate pairs of 1M photos (400 MB, not 800).
    small = np.int32 if source.count < 2**31 else np.int64
    pairs = np.stack([(keys // source.count).astype(small),
                      (keys % source.count).astype(small)], axis=1)
    del keys
    scores = exact_scores(source, pairs)
    keep = scores >= min_cosine
    return pairs[keep], scores[keep]

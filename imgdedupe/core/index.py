"""Candidate pairs of similar images: exact search or PCA + Annoy.

Scores always come from the full-dimensional vectors. PCA and Annoy only
propose candidates, so a threshold means the same thing whether a library
holds 50 photos (exact search) or 500,000 (approximate search).

Rotation: each image may carry the vectors of its 90/180/270-degree
rotations. A pair's score is the best cosine between either image's upright
vector and the other's upright or rotated ones, which matches photos whose
pixels were rotated without an EXIF tag.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Below this many images an exact blocked matrix product is both exact and
# fast: 5,000 images with rotations cost ~1.3e11 flops (~2 s on two cores,
# see bench/bench_index.py); above it Annoy's candidate search wins.
EXACT_LIMIT = 5000
DEFAULT_PCA_DIMS = 128
DEFAULT_TREES = 40
DEFAULT_NEIGHBOURS = 24
PCA_SAMPLE = 20000  # PCA is fitted on a bounded sample: memory stays flat
_BLOCK = 1024
_PAIR_CHUNK = 8192  # pairs scored at once: ~170 MB at 1280-d with rotations


@dataclass(frozen=True)
class IndexParams:
    exact_limit: int = EXACT_LIMIT
    pca_dims: int = DEFAULT_PCA_DIMS
    trees: int = DEFAULT_TREES
    neighbours: int = DEFAULT_NEIGHBOURS


def _as_queries(upright: np.ndarray, rotated: np.ndarray | None) -> np.ndarray:
    """(N, Q, D): every query vector of every image, upright first."""
    if rotated is None:
        return upright[:, None, :]
    return np.concatenate([upright[:, None, :], rotated], axis=1)


def pair_scores(upright: np.ndarray, rotated: np.ndarray | None,
                pairs: np.ndarray) -> np.ndarray:
    """Exact rotation-aware cosine for each (i, j) row of ``pairs``."""
    if len(pairs) == 0:
        return np.zeros(0, dtype=np.float32)
    queries = _as_queries(upright, rotated)
    out = np.empty(len(pairs), dtype=np.float32)
    # In chunks: gathering every pair's query vectors at once needs
    # pairs x 4 x dim floats, over 100 GB for 100k photos' candidates.
    for start in range(0, len(pairs), _PAIR_CHUNK):
        i, j = pairs[start:start + _PAIR_CHUNK, 0], pairs[start:start + _PAIR_CHUNK, 1]
        forward = np.einsum("nqd,nd->nq", queries[i], upright[j]).max(axis=1)
        backward = np.einsum("nqd,nd->nq", queries[j], upright[i]).max(axis=1)
        out[start:start + _PAIR_CHUNK] = np.maximum(forward, backward)
    return out


def exact_pairs(upright: np.ndarray, rotated: np.ndarray | None,
                min_cosine: float) -> tuple[np.ndarray, np.ndarray]:
    """All pairs i < j with score >= min_cosine, by blocked matrix products
    (never an N x N matrix in memory at once)."""
    n = len(upright)
    queries = _as_queries(upright, rotated)
    found_i: list[np.ndarray] = []
    found_j: list[np.ndarray] = []
    found_s: list[np.ndarray] = []
    for start in range(0, n, _BLOCK):
        block = queries[start:start + _BLOCK]  # (b, Q, D)
        b, q, d = block.shape
        sims = (block.reshape(b * q, d) @ upright.T).reshape(b, q, n).max(axis=1)
        rows, cols = np.nonzero(sims >= min_cosine)
        rows = rows + start
        keep = rows != cols
        found_i.append(rows[keep])
        found_j.append(cols[keep])
        found_s.append(sims[rows[keep] - start, cols[keep]])
    if not found_i:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32)
    i = np.concatenate(found_i)
    j = np.concatenate(found_j)
    s = np.concatenate(found_s)
    return _symmetric_max(i, j, s)


def _symmetric_max(i: np.ndarray, j: np.ndarray, s: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Fold (i, j) and (j, i) into one i < j pair keeping the best score."""
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    order = np.lexsort((-s, hi, lo))
    lo, hi, s = lo[order], hi[order], s[order]
    first = np.ones(len(lo), dtype=bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    pairs = np.stack([lo[first], hi[first]], axis=1).astype(np.int64)
    return pairs, s[first].astype(np.float32)


class ApproximateIndex:
    """PCA to ``pca_dims`` then an Annoy angular forest, cached on disk.

    The cache key is a digest of the vectors themselves, so the index is
    rebuilt exactly when the set of vectors changes.
    """

    def __init__(self, upright: np.ndarray, params: IndexParams,
                 cache_dir: Path | None = None) -> None:
        self.params = params
        self.dims = int(min(params.pca_dims, upright.shape[1], max(2, len(upright) - 1)))
        key = self._fingerprint(upright, params)
        self.reused = False
        pca_file = ann_file = None
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            pca_file = cache_dir / f"{key}.pca.npz"
            ann_file = cache_dir / f"{key}.ann"
        from annoy import AnnoyIndex

        self._annoy = AnnoyIndex(self.dims, "angular")
        if pca_file and ann_file and pca_file.exists() and ann_file.exists():
            saved = np.load(pca_file)
            self.mean, self.components = saved["mean"], saved["components"]
            self._annoy.load(str(ann_file))  # memory-mapped, not read into RAM
            self.reused = True
            return
        self.mean, self.components = self._fit_pca(upright)
        projected = self.project(upright)
        for item, vector in enumerate(projected):
            self._annoy.add_item(item, vector)
        self._annoy.set_seed(7)  # deterministic forests, deterministic output
        self._annoy.build(params.trees, n_jobs=1)
        if pca_file and ann_file:
            self._save(cache_dir, key, pca_file, ann_file)

    @staticmethod
    def _fingerprint(upright: np.ndarray, params: IndexParams) -> str:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr((upright.shape, params.pca_dims, params.trees)).encode())
        digest.update(np.ascontiguousarray(upright, dtype=np.float16).tobytes())
        return digest.hexdigest()

    def _fit_pca(self, upright: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.decomposition import PCA

        rng = np.random.default_rng(0)
        sample = upright
        if len(upright) > PCA_SAMPLE:
            sample = upright[np.sort(rng.choice(len(upright), PCA_SAMPLE, replace=False))]
        pca = PCA(n_components=self.dims, svd_solver="randomized", random_state=0)
        pca.fit(sample.astype(np.float32))
        return pca.mean_.astype(np.float32), pca.components_.astype(np.float32)

    def _save(self, cache_dir: Path, key: str, pca_file: Path, ann_file: Path) -> None:
        for old in cache_dir.glob("*.ann"):
            if old.stem != key:
                old.unlink(missing_ok=True)
        for old in cache_dir.glob("*.pca.npz"):
            if not old.name.startswith(key):
                old.unlink(missing_ok=True)
        # Write to temp names and rename, so a crash never leaves a
        # half-written index that a later run would trust.
        tmp_ann = ann_file.with_suffix(".ann.tmp")
        self._annoy.save(str(tmp_ann))
        tmp_ann.replace(ann_file)
        tmp_pca = pca_file.with_name(pca_file.name + ".tmp.npz")
        np.savez(tmp_pca, mean=self.mean, components=self.components)
        tmp_pca.replace(pca_file)
        self._annoy.unload()
        self._annoy.load(str(ann_file))

    def project(self, vectors: np.ndarray) -> np.ndarray:
        projected = (vectors.astype(np.float32) - self.mean) @ self.components.T
        norms = np.linalg.norm(projected, axis=-1, keepdims=True)
        return projected / np.maximum(norms, 1e-12)

    def neighbours(self, vector: np.ndarray, k: int) -> list[int]:
        return self._annoy.get_nns_by_vector(vector, k, search_k=-1)

    def candidate_pairs(self, upright: np.ndarray, rotated: np.ndarray | None) -> np.ndarray:
        k = self.params.neighbours + 1
        queries = self.project(_as_queries(upright, rotated))
        lo: list[int] = []
        hi: list[int] = []
        for i, per_image in enumerate(queries):
            for vector in per_image:
                for j in self.neighbours(vector, k):
                    if j != i:
                        lo.append(min(i, j))
                        hi.append(max(i, j))
        if not lo:
            return np.zeros((0, 2), dtype=np.int64)
        return np.unique(np.stack([lo, hi], axis=1), axis=0).astype(np.int64)


def similar_pairs(upright: np.ndarray, rotated: np.ndarray | None, min_cosine: float,
                  params: IndexParams = IndexParams(), cache_dir: Path | None = None
                  ) -> tuple[np.ndarray, np.ndarray, str]:
    """Pairs (i < j) whose exact score >= min_cosine, the scores, and the
    method used ("exact" or "annoy")."""
    upright = np.asarray(upright, dtype=np.float32)
    rotated = None if rotated is None else np.asarray(rotated, dtype=np.float32)
    if len(upright) < 2:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32), "exact"
    if len(upright) <= params.exact_limit:
        pairs, scores = exact_pairs(upright, rotated, min_cosine)
        return pairs, scores, "exact"
    index = ApproximateIndex(upright, params, cache_dir)
    candidates = index.candidate_pairs(upright, rotated)
    scores = pair_scores(upright, rotated, candidates)
    keep = scores >= min_cosine
    return candidates[keep], scores[keep], "annoy"


PAIRS_FILE = "pairs.npz"
_PAIRS_FORMAT = b"pairs-v1"


def similar_pairs_cached(identity: bytes, count: int,
                         load: Callable[[], tuple[np.ndarray, np.ndarray | None]],
                         min_cosine: float, params: IndexParams = IndexParams(),
                         cache_dir: Path | None = None
                         ) -> tuple[np.ndarray, np.ndarray, str]:
    """``similar_pairs`` of the ``count`` vectors that ``load`` returns,
    remembered in ``cache_dir`` so that a rescan loads no vector at all.

    ``identity`` must change whenever what ``load`` would return changes
    (the pipeline gives the store's vector version and the ids of the
    vectors, in order). Loading 100k vectors and querying Annoy with each
    costs seconds, where a rescan may take well under one. The pairs are
    kept down to the threshold they were found at, so a higher threshold
    reuses them (filtered: the same pairs, scores and order as a new
    search) and a lower one searches again.
    """
    empty = np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32)
    if count < 2:
        return (*empty, "exact")
    key = _pairs_key(identity, params, count)
    cached = _load_pairs(cache_dir, key, min_cosine) if cache_dir is not None else None
    if cached is not None:
        return cached
    upright, rotated = load()
    pairs, scores, method = similar_pairs(upright, rotated, min_cosine, params, cache_dir)
    if cache_dir is not None:
        _save_pairs(cache_dir, key, min_cosine, pairs, scores, method)
    return pairs, scores, method


def _pairs_key(identity: bytes, params: IndexParams, count: int) -> str:
    digest = hashlib.blake2b(_PAIRS_FORMAT, digest_size=16)
    digest.update(repr((params, count)).encode())
    digest.update(identity)
    return digest.hexdigest()


def _load_pairs(cache_dir: Path, key: str, min_cosine: float
                ) -> tuple[np.ndarray, np.ndarray, str] | None:
    try:
        with np.load(cache_dir / PAIRS_FILE) as saved:
            if str(saved["key"]) != key or float(saved["floor"]) > min_cosine:
                return None
            pairs, scores, method = saved["pairs"], saved["scores"], str(saved["method"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        # Absent or damaged: search again.
        log.debug("no reusable pairs in %s: %s", cache_dir, exc)
        return None
    keep = scores >= min_cosine
    return pairs[keep].astype(np.int64), scores[keep], method


def _save_pairs(cache_dir: Path, key: str, floor: float, pairs: np.ndarray,
                scores: np.ndarray, method: str) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Temp name and rename: a crash never leaves a half-written file.
    tmp = cache_dir / f"{PAIRS_FILE}.{os.getpid()}.tmp.npz"
    np.savez(tmp, key=np.str_(key), floor=np.float64(floor), method=np.str_(method),
             pairs=pairs.astype(np.int32), scores=scores.astype(np.float32))
    tmp.replace(cache_dir / PAIRS_FILE)

"""Candidate pairs of similar images: exact search, PCA + Annoy, or PCA + FAISS.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgdedupe.core.pairs.ann import (
    ArraySource,
    VectorSource,
    queries_of,
    rescored_pairs,
    streamed_pairs,
)
from imgdedupe.core.pairs.faiss_index import FaissCandidates, faiss_available

log = logging.getLogger(__name__)

# Below this many images an exact blocked matrix product is both exact and
# fast: 5,000 images with rotations cost ~1.3e11 flops (~2 s on two cores,
# see bench/bench_index.py); above it Annoy's candidate search wins.
EXACT_LIMIT = 5000
# From this many images FAISS (the optional extra imgdedupe[large]) proposes
# the candidates instead of Annoy, when it is installed. bench/bench_index_1m.py
# (docs/scale.md), same run, 2 cores: at 100k FAISS's build + queries took
# 26.7 s against Annoy's 35.2 s (13 against 15 CPU s) and proposed every
# planted near-duplicate (Annoy 0.992); below that both take seconds, and
# Annoy spares importing faiss. At 1M FAISS was 1.7x slower on 2 cores but
# proposed 0.965 of them (Annoy 0.930) from half the memory (498 MB, 961).
FAISS_FROM = 100_000
DEFAULT_PCA_DIMS = 128
DEFAULT_TREES = 40
DEFAULT_NEIGHBOURS = 24
# Bump when the pairs a search finds for the same vectors change (how
# candidates are proposed, how they are scored): every cache of pairs and
# forests, and every scan memo, is keyed by it, so an upgrade searches again.
SEARCH_VERSION = 2  # 2: upright vectors only; turned copies by hash (pairs.rotated)
_BLOCK = 1024
_PAIR_CHUNK = 8192  # pairs scored at once: ~170 MB at 1280-d with rotations


@dataclass(frozen=True)
class IndexParams:
    exact_limit: int = EXACT_LIMIT
    pca_dims: int = DEFAULT_PCA_DIMS
    trees: int = DEFAULT_TREES
    neighbours: int = DEFAULT_NEIGHBOURS
    faiss_from: int = FAISS_FROM


def search_method(count: int, params: IndexParams) -> str:
    """The search that ``count`` images get: "exact", "annoy" or "faiss".
    Part of the pair cache's identity: installing or removing faiss-cpu
    changes it, and pairs one index found never stand for another's."""
    if count <= params.exact_limit or params.exact_limit < 0 or count < 2:
        return "exact"
    if count >= params.faiss_from and faiss_available():
        return "faiss"
    return "annoy"


def faiss_missing(count: int, params: IndexParams) -> bool:
    """Whether ``count`` images would be searched by FAISS, were it installed."""
    return search_method(count, params) == "annoy" and count >= params.faiss_from


def pair_scores(upright: np.ndarray, rotated: np.ndarray | None,
                pairs: np.ndarray) -> np.ndarray:
    """Exact rotation-aware cosine for each (i, j) row of ``pairs``."""
    if len(pairs) == 0:
        return np.zeros(0, dtype=np.float32)
    queries = queries_of(upright, rotated)
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
    queries = queries_of(upright, rotated)
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


def _vectors_key(upright: np.ndarray, params: IndexParams) -> str:
    """A digest of the vectors themselves: a forest cached under it is
    rebuilt exactly when the set of vectors changes. (The pipeline keys its
    forest by the store's vector version instead, without hashing 2.5 GB.)"""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((upright.shape, params.pca_dims, params.trees)).encode())
    digest.update(np.ascontiguousarray(upright, dtype=np.float16).tobytes())
    return digest.hexdigest()


def _pca_dims(count: int, dim: int, params: IndexParams) -> int:
    return int(min(params.pca_dims, dim, max(2, count - 1)))


def similar_pairs(upright: np.ndarray, rotated: np.ndarray | None, min_cosine: float,
                  params: IndexParams = IndexParams(), cache_dir: Path | None = None
                  ) -> tuple[np.ndarray, np.ndarray, str]:
    """Pairs (i < j) whose exact score >= min_cosine, the scores, and the
    method used (``search_method``: "exact", "annoy" or "faiss")."""
    if len(upright) > params.exact_limit >= 0 and len(upright) >= 2:
        key = _vectors_key(upright, params)
        return similar_pairs_streamed(ArraySource(upright, rotated), min_cosine, params,
                                      cache_dir, key)
    upright = np.asarray(upright, dtype=np.float32)
    rotated = None if rotated is None else np.asarray(rotated, dtype=np.float32)
    if len(upright) < 2:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32), "exact"
    pairs, scores = exact_pairs(upright, rotated, min_cosine)
    return pairs, scores, "exact"


def similar_pairs_streamed(source: VectorSource, min_cosine: float, params: IndexParams,
                           cache_dir: Path | None, key: str
                           ) -> tuple[np.ndarray, np.ndarray, str]:
    """``similar_pairs`` of a large ``source``, a chunk in memory at a time
    (see ``ann``); the forest is cached in ``cache_dir`` under ``key``."""
    dims = _pca_dims(source.count, source.dim, params)
    if search_method(source.count, params) == "faiss":
        index = FaissCandidates(source, dims, key, cache_dir)
        keys = index.candidate_keys(source, params.neighbours)
        index.close()  # freed before the exact rescoring loads its vectors
        pairs, scores = rescored_pairs(source, keys, min_cosine)
        return pairs.astype(np.int64), scores, "faiss"
    pairs, scores = streamed_pairs(source, min_cosine, dims, params.trees, params.neighbours,
                                   key, cache_dir)
    return pairs.astype(np.int64), scores, "annoy"

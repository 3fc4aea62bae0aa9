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
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgdedupe.core.pairs.ann import (
    PCA_SAMPLE,
    ArraySource,
    VectorSource,
    queries_of,
    streamed_pairs,
)
from imgdedupe.core.storage.cachefile import save_npz

__all__ = ["PCA_SAMPLE", "IndexParams", "VectorSource", "exact_pairs",
           "pair_scores", "similar_pairs", "similar_pairs_cached"]

log = logging.getLogger(__name__)

# Below this many images an exact blocked matrix product is both exact and
# fast: 5,000 images with rotations cost ~1.3e11 flops (~2 s on two cores,
# see bench/bench_index.py); above it Annoy's candidate search wins.
EXACT_LIMIT = 5000
DEFAULT_PCA_DIMS = 128
DEFAULT_TREES = 40
DEFAULT_NEIGHBOURS = 24
_BLOCK = 1024
_PAIR_CHUNK = 8192  # pairs scored at once: ~170 MB at 1280-d with rotations


@dataclass(frozen=True)
class IndexParams:
    exact_limit: int = EXACT_LIMIT
    pca_dims: int = DEFAULT_PCA_DIMS
    trees: int = DEFAULT_TREES
    neighbours: int = DEFAULT_NEIGHBOURS


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
    method used ("exact" or "annoy")."""
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
    pairs, scores = streamed_pairs(source, min_cosine, dims, params.trees, params.neighbours,
                                   key, cache_dir)
    return pairs.astype(np.int64), scores, "annoy"


PAIRS_FILE = "pairs.npz"
_PAIRS_FORMAT = b"pairs-v2"


@dataclass(frozen=True)
class Lineage:
    """Where the vectors being searched come from, so that cached pairs can
    serve a later search instead of a new one over the whole library.

    *Fewer of the same vectors* (files deleted, moved to the trash, or a
    sub-folder scanned): the pairs among the ids that are left, re-numbered,
    are what searching them again finds (exactly, for the exact search;
    Annoy's candidates may differ a little). ``changes`` is the store's
    counter of vector inserts (+1), updates (+2) and deletions (+1) for the
    model, and ``rows`` how many vectors it holds: the counter grew by
    exactly the rows that went away only if every change since was a
    deletion (a inserts, u updates and d deletions give a + 2u + d =
    d - (a - d) only when a = u = 0).

    *The scan's own new vectors* (``fresh``: files added or changed and
    embedded by this scan, ``start``: the counter and rows when it began):
    when the pairs were cached exactly at ``start``, every vector other
    than the fresh ones is as it was, so only the fresh ones are searched,
    against the cached Annoy forest (see grown_pairs)."""

    base: str  # the database's epoch, the rotations flag, ...: must match
    changes: int
    rows: int
    ids: np.ndarray  # the file id of each searched vector, in index order
    start: tuple[int, int] | None = None
    fresh: np.ndarray | None = None


# How many vectors a grown search takes (fresh ones, plus earlier fresh ones
# that the cached forest lacks) before a full search is cheaper and better.
GROW_LIMIT = 2000


@dataclass(frozen=True)
class _Cached:
    pairs: np.ndarray
    scores: np.ndarray
    method: str
    renumbered: bool
    forest: tuple[str, np.ndarray] | None  # the Annoy forest's key and item ids


def similar_pairs_cached(identity: bytes, count: int,
                         load: Callable[[], tuple[np.ndarray, np.ndarray | None] | VectorSource],
                         min_cosine: float, params: IndexParams = IndexParams(),
                         cache_dir: Path | None = None, lineage: Lineage | None = None
                         ) -> tuple[np.ndarray, np.ndarray, str]:
    """``similar_pairs`` of the ``count`` vectors that ``load`` returns,
    remembered in ``cache_dir`` so that a rescan loads no vector at all.

    ``load`` returns the vectors as arrays, or a ``VectorSource`` that
    reads them in chunks (what the pipeline gives: above the exact limit
    they are never all in memory at once).

    ``identity`` must change whenever what ``load`` would return changes
    (the pipeline gives the store's vector version and the ids of the
    vectors, in order). Loading 100k vectors and querying Annoy with each
    costs seconds, where a rescan may take well under one. The pairs are
    kept down to the threshold they were found at, so a higher threshold
    reuses them (filtered: the same pairs, scores and order as a new
    search) and a lower one searches again. With a ``lineage``, pairs
    cached for other vectors of the same store may serve too (see Lineage).
    """
    empty = np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32)
    if count < 2:
        return (*empty, "exact")
    key = _pairs_key(identity, params, count)
    cached = _load_pairs(cache_dir, key, min_cosine, params, lineage) \
        if cache_dir is not None else None
    if cached is not None:
        if cache_dir is not None and lineage is not None and cached.renumbered:
            _save_pairs(cache_dir, key, min_cosine, cached.pairs, cached.scores, cached.method,
                        params, lineage, cached.forest)
        return cached.pairs, cached.scores, cached.method
    if cache_dir is not None and lineage is not None and lineage.fresh is not None:
        from imgdedupe.core.pairs.growth import grown_pairs  # noqa: PLC0415  (it imports this module)

        grown = grown_pairs(cache_dir, lineage, params, min_cosine, load)
        if grown is not None:
            _save_pairs(cache_dir, key, min_cosine, grown[0], grown[1], "annoy", params,
                        lineage, grown[2])
            return grown[0], grown[1], "annoy"
    loaded = load()
    forest: tuple[str, np.ndarray] | None = None
    if isinstance(loaded, tuple) and count > params.exact_limit:
        loaded = ArraySource(*loaded)  # keyed by the identity too, like the store's
    if isinstance(loaded, tuple):
        pairs, scores, method = similar_pairs(*loaded, min_cosine, params, cache_dir)
    elif count > params.exact_limit:
        # Streamed: at 1M photos the vectors are 10 GB even as float16. The
        # forest is keyed by the identity, which already changes with any
        # vector, rather than by a digest of every vector.
        forest_key = hashlib.blake2b(b"forest-v2" + key.encode(), digest_size=16).hexdigest()
        pairs, scores, method = similar_pairs_streamed(loaded, min_cosine, params, cache_dir,
                                                       forest_key)
        if lineage is not None:
            forest = (forest_key, lineage.ids)
    else:
        upright, rotated = loaded.read(np.arange(count))
        pairs, scores, method = similar_pairs(upright, rotated, min_cosine, params, cache_dir)
    if cache_dir is not None:
        _save_pairs(cache_dir, key, min_cosine, pairs, scores, method, params, lineage, forest)
    return pairs, scores, method


def _pairs_key(identity: bytes, params: IndexParams, count: int) -> str:
    digest = hashlib.blake2b(_PAIRS_FORMAT, digest_size=16)
    digest.update(repr((params, count)).encode())
    digest.update(identity)
    return digest.hexdigest()


def load_saved_pairs(cache_dir: Path) -> dict[str, np.ndarray] | None:
    """Every array of the pair cache, or None when it is absent or damaged."""
    try:
        with np.load(cache_dir / PAIRS_FILE) as saved:
            return {name: saved[name] for name in saved.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.debug("no reusable pairs in %s: %s", cache_dir, exc)
        return None


def saved_forest(saved: dict[str, np.ndarray]) -> tuple[str, np.ndarray] | None:
    if "forest_key" not in saved:
        return None
    return str(saved["forest_key"]), saved["forest_ids"]


def _load_pairs(cache_dir: Path, key: str, min_cosine: float, params: IndexParams,
                lineage: Lineage | None) -> _Cached | None:
    """The cached pairs at ``min_cosine``, re-numbered if they came from a
    search over more vectors (see Lineage)."""
    saved = load_saved_pairs(cache_dir)
    if saved is None or float(saved["floor"]) > min_cosine:
        return None
    try:
        pairs, scores, method = saved["pairs"], saved["scores"], str(saved["method"])
        if str(saved["key"]) == key:
            renumbered = False
        elif lineage is not None and _same_lineage(saved, lineage, params):
            pairs, scores = renumbered_pairs(pairs, scores, saved["ids"], lineage.ids)
            renumbered = True
        else:
            return None
    except KeyError as exc:  # a cache written without a lineage
        log.debug("no reusable pairs in %s: %s", cache_dir, exc)
        return None
    keep = scores >= min_cosine
    return _Cached(pairs[keep].astype(np.int64), scores[keep], method, renumbered,
                   saved_forest(saved))


def same_base(saved: dict[str, np.ndarray], lineage: Lineage, params: IndexParams) -> bool:
    return ("base" in saved and str(saved["base"]) == lineage.base
            and str(saved["params"]) == repr(params))


def _same_lineage(saved: dict[str, np.ndarray], lineage: Lineage, params: IndexParams) -> bool:
    if not same_base(saved, lineage, params):
        return False
    removed = int(saved["rows"]) - lineage.rows
    return (removed >= 0 and lineage.changes - int(saved["changes"]) == removed
            and bool(np.isin(lineage.ids, saved["ids"]).all()))


def renumbered_pairs(pairs: np.ndarray, scores: np.ndarray, old_ids: np.ndarray,
                     new_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of positions in ``old_ids`` as positions in ``new_ids`` (i < j,
    sorted); pairs with an id that is gone are dropped."""
    position = positions_of(old_ids, new_ids)
    mapped = position[pairs]
    kept = (mapped >= 0).all(axis=1)
    mapped, scores = mapped[kept], scores[kept]
    lo, hi = mapped.min(axis=1), mapped.max(axis=1)
    sort = np.lexsort((hi, lo))
    return np.stack([lo[sort], hi[sort]], axis=1), scores[sort]


def positions_of(ids: np.ndarray, in_ids: np.ndarray) -> np.ndarray:
    """The position of each of ``ids`` in ``in_ids``, -1 where it is not there."""
    position = np.full(len(ids), -1, dtype=np.int64)
    if len(in_ids) == 0 or len(ids) == 0:
        return position
    order = np.argsort(in_ids)
    found = np.minimum(np.searchsorted(in_ids, ids, sorter=order), len(in_ids) - 1)
    hit = in_ids[order[found]] == ids
    position[hit] = order[found[hit]]
    return position


def _save_pairs(cache_dir: Path, key: str, floor: float, pairs: np.ndarray,
                scores: np.ndarray, method: str, params: IndexParams,
                lineage: Lineage | None, forest: tuple[str, np.ndarray] | None = None) -> None:
    arrays = {"key": np.asarray(key), "floor": np.asarray(floor, dtype=np.float64),
              "method": np.asarray(method), "pairs": pairs.astype(np.int32),
              "scores": scores.astype(np.float32)}
    if lineage is not None:
        arrays.update(base=np.asarray(lineage.base), params=np.asarray(repr(params)),
                      changes=np.asarray(lineage.changes), rows=np.asarray(lineage.rows),
                      ids=np.asarray(lineage.ids, dtype=np.int64))
    if forest is not None:
        arrays.update(forest_key=np.asarray(forest[0]),
                      forest_ids=np.asarray(forest[1], dtype=np.int64))
    save_npz(cache_dir / PAIRS_FILE, arrays, "pair cache")

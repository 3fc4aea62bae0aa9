"""Cached pairs brought up to date with a scan's own new vectors.

A scan that embeds a few added or edited photos of a large library used to
search the whole library's pairs again (33-40 s at 100k photos, for one
changed file). The pairs among the other photos are the cached ones: only
the new vectors need searching. They are searched the way the full search
searches every photo (the Annoy neighbours of their upright and rotated
vectors, in the library's cached forest), against every vector that
forest lacks (added by earlier scans like this one) and against each
other; every candidate is scored exactly. A changed file's old pairs go
with its old vector.

What it misses, next to a full search: pairs that only an *old* photo's
own query would have proposed (the forest does not hold the new photo).
Scores are exact, so nothing below the threshold is ever added. Past
index.GROW_LIMIT vectors outside the forest, the full search runs again
and rebuilds the forest.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from imgdedupe.core.pairs.ann import ArraySource, StreamedForest, VectorSource
from imgdedupe.core.pairs.search import (
    GROW_LIMIT,
    IndexParams,
    Lineage,
    load_saved_pairs,
    pair_scores,
    positions_of,
    renumbered_pairs,
    same_base,
    saved_forest,
)

Grown = tuple[np.ndarray, np.ndarray, tuple[str, np.ndarray]]


def grown_pairs(cache_dir: Path, lineage: Lineage, params: IndexParams, min_cosine: float,
                load: Callable[[], tuple[np.ndarray, np.ndarray | None] | VectorSource]
                ) -> Grown | None:
    """(pairs, scores, the forest's key and item ids) over ``lineage.ids``,
    or None when the cache cannot serve (then search everything)."""
    if lineage.start is None or lineage.fresh is None:
        return None
    saved = load_saved_pairs(cache_dir)
    if saved is None:
        return None
    forest_info = saved_forest(saved)
    # The cached pairs must describe the store exactly as this scan found
    # it: then every vector that is not fresh is one they were searched with.
    if (forest_info is None or str(saved["method"]) != "annoy"
            or not same_base(saved, lineage, params) or float(saved["floor"]) > min_cosine
            or (int(saved["changes"]), int(saved["rows"])) != lineage.start):
        return None
    ids = lineage.ids
    is_fresh = np.isin(ids, lineage.fresh)
    if not np.isin(ids[~is_fresh], saved["ids"]).all():
        return None  # a vector the cached search never saw (another root, say)
    forest_key, forest_ids = forest_info
    fresh = np.flatnonzero(is_fresh)
    outside = np.flatnonzero(~is_fresh & (positions_of(ids, forest_ids) < 0))
    if len(fresh) + len(outside) > GROW_LIMIT:
        return None
    forest = StreamedForest.cached(forest_key, cache_dir)
    if forest is None:
        return None
    loaded = load()
    source = ArraySource(*loaded) if isinstance(loaded, tuple) else loaded

    kept, kept_scores = renumbered_pairs(saved["pairs"], saved["scores"], saved["ids"], ids)
    old = ~is_fresh[kept].any(axis=1) & (kept_scores >= min_cosine)
    kept, kept_scores = kept[old], kept_scores[old]
    new, new_scores = _fresh_pairs(forest, forest_ids, source, ids, fresh, outside, params,
                                   min_cosine)
    forest.close()
    pairs = np.concatenate([kept, new]).astype(np.int64)
    scores = np.concatenate([kept_scores, new_scores]).astype(np.float32)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return pairs[order], scores[order], forest_info


def _fresh_pairs(forest: StreamedForest, forest_ids: np.ndarray, source: VectorSource,
                 ids: np.ndarray, fresh: np.ndarray, outside: np.ndarray,
                 params: IndexParams, min_cosine: float) -> tuple[np.ndarray, np.ndarray]:
    empty = np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32)
    if len(fresh) == 0:
        return empty
    upright, rotated = source.read(fresh)
    fresh_set = np.zeros(len(ids), dtype=bool)
    fresh_set[fresh] = True
    candidates = []
    for f, items in zip(fresh.tolist(), forest.neighbours_of(upright, rotated,
                                                             params.neighbours), strict=True):
        partners = positions_of(forest_ids[items], ids)
        partners = partners[(partners >= 0) & ~fresh_set[np.maximum(partners, 0)]]
        partners = np.concatenate([partners, outside, fresh[fresh > f]])
        candidates.append(np.stack([np.full(len(partners), f), partners], axis=1))
    pairs = np.concatenate(candidates)
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    if len(pairs) == 0:
        return empty
    # Exact scores, from the few vectors involved.
    involved = np.unique(pairs)
    up, rot = source.read(involved)
    local = np.searchsorted(involved, pairs)
    scores = pair_scores(np.asarray(up, np.float32),
                         None if rot is None else np.asarray(rot, np.float32), local)
    keep = scores >= min_cosine
    return pairs[keep], scores[keep]

"""The pair cache: a scan's similar pairs, kept beside the database.

This module owns everything about cached pairs: what identifies them (the
store's vector version, the ids searched, the search's parameters and
algorithm version), loading and saving them, and serving a later search
from them instead of searching the whole library again:

* *unchanged vectors*: the pairs load as they are (a higher threshold
  filters them, a lower one searches again);
* *fewer of the same vectors* (files deleted or trashed, a sub-folder
  scanned): the cached pairs among what is left, re-numbered (Lineage);
* *a few added or changed photos*: only those are searched, in the
  library's cached Annoy forest, and the other pairs come from the cache
  (grown_pairs).

The scan asks ``library_pairs``; the search itself is ``pairs.search``.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgdedupe.core.pairs import search
from imgdedupe.core.pairs.ann import ArraySource, StoreVectors, StreamedForest, VectorSource
from imgdedupe.core.pairs.faiss_index import FaissCandidates
from imgdedupe.core.pairs.search import (
    IndexParams,
    pair_scores,
    similar_pairs,
    similar_pairs_streamed,
)
from imgdedupe.core.storage.cachefile import save_npz
from imgdedupe.core.storage.store import Store

log = logging.getLogger(__name__)

PAIRS_FILE = "pairs.npz"
_PAIRS_FORMAT = b"pairs-v2"  # the file's layout; search.SEARCH_VERSION its contents


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


def library_pairs(store: Store, model_id: str, ids: list[int], dim: int, rotations: bool,
                  min_cosine: float, params: IndexParams, cache_dir: Path,
                  start: tuple[int, int] | None = None, fresh: list[int] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, str]:
    """Similar pairs among the cached vectors of ``ids`` (file ids, in the
    index's order), their scores and the method, served from the cache in
    ``cache_dir`` whenever it can. ``start`` (the store's change counter
    and row count when the scan began) and ``fresh`` (the ids the scan
    embedded) let it serve a scan that added a few vectors."""
    # Read before the vectors: a write in between only makes the key stale.
    epoch, changes, rows = store.vector_counts(model_id)
    identity = (f"{epoch}:{changes}:{rotations}:".encode()
                + np.asarray(ids, dtype=np.int64).tobytes())
    # Files deleted (or trashed) since the pairs were cached leave the
    # other vectors as they were: their pairs are kept, not searched again.
    lineage = Lineage(f"{epoch}:{rotations}", changes, rows, np.asarray(ids, dtype=np.int64),
                      start, None if fresh is None else np.asarray(fresh, dtype=np.int64))
    source = StoreVectors(store, model_id, ids, dim, rotations)
    return similar_pairs_cached(identity, len(ids), lambda: source, min_cosine, params,
                                cache_dir, lineage)


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
        grown = grown_pairs(cache_dir, lineage, params, min_cosine, load)
        if grown is not None:
            method = search.search_method(count, params)  # the cached index's own
            _save_pairs(cache_dir, key, min_cosine, grown[0], grown[1], method, params,
                        lineage, grown[2])
            return grown[0], grown[1], method
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
    # The method too: the same vectors and parameters search with Annoy or
    # FAISS as faiss-cpu is installed or not, and they propose different pairs.
    method = search.search_method(count, params)
    digest.update(repr((search.SEARCH_VERSION, params, count, method)).encode())
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
    """Whether pairs saved for another set of vectors may serve ``lineage``:
    the same store, rotations, parameters and search algorithm."""
    return ("base" in saved and str(saved["base"]) == lineage.base
            and str(saved["params"]) == repr(params)
            and int(saved.get("search_version", -1)) == search.SEARCH_VERSION)


def _same_lineage(saved: dict[str, np.ndarray], lineage: Lineage, params: IndexParams) -> bool:
    if not same_base(saved, lineage, params):
        return False
    if not _serves(str(saved["method"]), search.search_method(len(lineage.ids), params)):
        return False
    removed = int(saved["rows"]) - lineage.rows
    return (removed >= 0 and lineage.changes - int(saved["changes"]) == removed
            and bool(np.isin(lineage.ids, saved["ids"]).all()))


def _serves(saved_method: str, method: str) -> bool:
    """Whether pairs one search found may stand for another's. Exact pairs
    are what every search approaches, and Annoy's served an exact search of
    fewer photos before FAISS existed; but Annoy's and FAISS's are two
    different approximations: a switch (faiss-cpu installed or removed)
    searches again."""
    return saved_method == method or "exact" in (saved_method, method)


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
                      search_version=np.asarray(search.SEARCH_VERSION),
                      changes=np.asarray(lineage.changes), rows=np.asarray(lineage.rows),
                      ids=np.asarray(lineage.ids, dtype=np.int64))
    if forest is not None:
        arrays.update(forest_key=np.asarray(forest[0]),
                      forest_ids=np.asarray(forest[1], dtype=np.int64))
    save_npz(cache_dir / PAIRS_FILE, arrays, "pair cache")


# -- growth: a scan's own new vectors, searched alone ---------------------
#
# Cached pairs brought up to date with a scan's own new vectors.
#
# A scan that embeds a few added or edited photos of a large library used to
# search the whole library's pairs again (33-40 s at 100k photos, for one
# changed file). The pairs among the other photos are the cached ones: only
# the new vectors need searching. They are searched the way the full search
# searches every photo (the Annoy neighbours of their upright and rotated
# vectors, in the library's cached forest), against every vector that
# forest lacks (added by earlier scans like this one) and against each
# other; every candidate is scored exactly. A changed file's old pairs go
# with its old vector.
#
# What it misses, next to a full search: pairs that only an *old* photo's
# own query would have proposed (the forest does not hold the new photo).
# Scores are exact, so nothing below the threshold is ever added. Past
# GROW_LIMIT vectors outside the forest, the full search runs again
# and rebuilds the forest.

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
    method = str(saved["method"])
    if (forest_info is None or method not in ("annoy", "faiss")
            or search.search_method(len(lineage.ids), params) != method
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
    forest: StreamedForest | FaissCandidates | None = (
        StreamedForest.cached(forest_key, cache_dir) if method == "annoy"
        else FaissCandidates.cached(forest_key, cache_dir))
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


def _fresh_pairs(forest: StreamedForest | FaissCandidates, forest_ids: np.ndarray,
                 source: VectorSource, ids: np.ndarray, fresh: np.ndarray, outside: np.ndarray,
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

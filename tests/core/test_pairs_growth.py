"""pairs.cache (growth): after a scan embeds a few added or changed photos,
only those are searched; the other pairs come from the cache."""

from __future__ import annotations

import numpy as np
from test_index_group import _clustered, _unit

from imgdedupe.core.pairs import cache as pair_cache
from imgdedupe.core.pairs.cache import Lineage, similar_pairs_cached
from imgdedupe.core.pairs.search import IndexParams, exact_pairs

PARAMS = IndexParams(exact_limit=0, pca_dims=16, trees=10)  # Annoy, as at 100k photos
MIN = 0.8


def _as_set(pairs: np.ndarray, ids: np.ndarray) -> set[tuple[int, int]]:
    """Pairs by file id, so searches over differently ordered ids compare."""
    return {tuple(sorted((int(ids[a]), int(ids[b])))) for a, b in pairs.tolist()}


def _loader(upright: np.ndarray, rotated: np.ndarray | None = None):  # noqa: ANN202
    calls: list[int] = []

    def load():  # noqa: ANN202
        calls.append(1)
        return upright, rotated

    return load, calls


def _library():  # noqa: ANN202
    vectors = _clustered(150, 3, 64, 0.3)  # 450 photos in near-duplicate triples
    ids = np.arange(1000, 1000 + len(vectors), dtype=np.int64)
    return vectors, ids


def test_added_and_changed_photos_are_searched_alone(tmp_path, monkeypatch):
    vectors, ids = _library()
    load, _ = _loader(vectors)
    similar_pairs_cached(b"before", len(vectors), load, MIN, PARAMS, tmp_path,
                         Lineage("e:True", 900, len(vectors), ids))
    [forest] = tmp_path.glob("*.ann")
    built = forest.stat().st_mtime_ns

    # The scan changes photo 4 (now a copy of 31's cluster), deletes 9 and
    # adds two photos: a near-copy of 100 and one of nothing.
    rng = np.random.default_rng(5)
    after = vectors.copy()
    after[4] = _unit(vectors[31] + 0.02 * rng.normal(size=64))
    new = np.stack([_unit(vectors[100] + 0.02 * rng.normal(size=64)),
                    _unit(rng.normal(size=64))])
    keep = np.ones(len(vectors), dtype=bool)
    keep[9] = False
    now_vectors = np.concatenate([after[keep], new])[::-1]  # any index order
    now_ids = np.concatenate([ids[keep], [5000, 5001]])[::-1]
    fresh = np.array([ids[4], 5000, 5001])
    searched_all = []
    real_streamed = pair_cache.StreamedForest.cached
    monkeypatch.setattr(pair_cache.StreamedForest, "cached",
                        lambda *a: searched_all.append(0) or real_streamed(*a))
    load_now, _ = _loader(now_vectors)
    grown = similar_pairs_cached(b"after", len(now_vectors), load_now, MIN, PARAMS, tmp_path,
                                 Lineage("e:True", 905, len(vectors) + 1, now_ids,
                                         start=(900, len(vectors)), fresh=fresh))
    assert searched_all == [0]  # the cached forest served: not rebuilt
    assert [f.stat().st_mtime_ns for f in tmp_path.glob("*.ann")] == [built]
    truth, truth_scores = exact_pairs(now_vectors, None, MIN)
    found = _as_set(grown[0], now_ids)
    assert found <= _as_set(truth, now_ids)  # exact scores: never a pair below
    assert found == _as_set(truth, now_ids)  # and here every pair is found
    assert (int(ids[4]), int(ids[31])) in found and (int(ids[3]), int(ids[4])) not in found
    assert (int(ids[100]), 5000) in found
    by_pair = dict(zip(map(tuple, grown[0].tolist()), grown[1].tolist(), strict=True))
    for (a, b), score in zip(truth.tolist(), truth_scores.tolist(), strict=True):
        assert abs(by_pair[(a, b)] - score) < 1e-5


def test_the_cache_serves_only_when_it_describes_the_store_as_the_scan_found_it(tmp_path):
    vectors, ids = _library()
    load, _ = _loader(vectors)
    similar_pairs_cached(b"before", len(vectors), load, MIN, PARAMS, tmp_path,
                         Lineage("e:True", 900, len(vectors), ids))
    more = np.concatenate([vectors, _unit(np.random.default_rng(2).normal(size=(1, 64)))])
    more_ids = np.concatenate([ids, [7000]])
    serves = []
    for start, base in (((900, len(vectors)), "e:True"),   # as cached: served
                        ((901, len(vectors)), "e:True"),   # changed since: not
                        ((900, len(vectors)), "x:True")):  # another database: not
        grown = pair_cache.grown_pairs(
            tmp_path, Lineage(base, 901, len(vectors) + 1, more_ids, start=start,
                              fresh=np.array([7000])), PARAMS, MIN, _loader(more)[0])
        serves.append(grown is not None)
    assert serves == [True, False, False]


def test_too_many_new_vectors_search_everything(tmp_path, monkeypatch):
    vectors, ids = _library()
    load, _ = _loader(vectors)
    similar_pairs_cached(b"before", len(vectors), load, MIN, PARAMS, tmp_path,
                         Lineage("e:True", 900, len(vectors), ids))
    monkeypatch.setattr(pair_cache, "GROW_LIMIT", 10)
    fresh = ids[:11]
    assert pair_cache.grown_pairs(
        tmp_path, Lineage("e:True", 922, len(vectors), ids, start=(900, len(vectors)),
                          fresh=fresh), PARAMS, MIN, load) is None

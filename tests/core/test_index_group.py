"""Candidate search, rotation-aware scores, grouping, keepers, calibration."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from imgdedupe.core.groups.keeper import suggest_keeper
from imgdedupe.core.groups.stars import greedy_star_groups
from imgdedupe.core.model import calibration
from imgdedupe.core.pairs.cache import PAIRS_FILE, Lineage, similar_pairs_cached
from imgdedupe.core.pairs.search import IndexParams, exact_pairs, similar_pairs
from imgdedupe.core.records import Member


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _clustered(n_clusters: int, per: int, dim: int, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    return _unit(np.repeat(centres, per, axis=0) + noise * rng.normal(size=(n_clusters * per, dim)))


def test_exact_pairs_match_brute_force():
    vectors = _clustered(30, 3, 64, 0.3)
    pairs, scores = exact_pairs(vectors, None, 0.8)
    sims = vectors @ vectors.T
    expected = {(i, j) for i in range(len(vectors)) for j in range(i + 1, len(vectors))
                if sims[i, j] >= 0.8}
    assert {tuple(p) for p in pairs.tolist()} == expected
    for (i, j), s in zip(pairs.tolist(), scores, strict=True):
        assert s == pytest.approx(sims[i, j], abs=1e-5)


def test_rotated_vectors_make_a_pair_that_upright_ones_miss():
    rng = np.random.default_rng(1)
    upright = _unit(rng.normal(size=(3, 32)))
    rotated = _unit(rng.normal(size=(3, 3, 32)))
    rotated[2, 0] = upright[0]  # image 2 turned 90 degrees looks like image 0
    pairs, _ = exact_pairs(upright, None, 0.95)
    assert len(pairs) == 0
    pairs, scores = exact_pairs(upright, rotated, 0.95)
    assert pairs.tolist() == [[0, 2]]
    assert scores[0] == pytest.approx(1.0, abs=1e-5)


def test_annoy_finds_what_exact_search_finds(tmp_path):
    vectors = _clustered(400, 3, 128, 0.25)  # 1,200 images in tight triples
    params = IndexParams(exact_limit=0, pca_dims=32, trees=20)
    exact, _ = exact_pairs(vectors, None, 0.8)
    approx, scores, method = similar_pairs(vectors, None, 0.8, params, tmp_path / "ix")
    assert method == "annoy"
    found = {tuple(p) for p in approx.tolist()}
    truth = {tuple(p) for p in exact.tolist()}
    assert found <= truth  # exact rescoring: never a pair below the threshold
    assert len(found & truth) >= 0.99 * len(truth)
    assert (scores >= 0.8).all()


def test_index_is_cached_and_rebuilt_only_when_vectors_change(tmp_path):
    vectors = _clustered(50, 4, 64, 0.2)
    params = IndexParams(exact_limit=0, pca_dims=16, trees=5)
    first = similar_pairs(vectors, None, 0.5, params, tmp_path)
    [forest] = tmp_path.glob("*.ann")
    built = forest.stat().st_mtime_ns
    again = similar_pairs(vectors, None, 0.5, params, tmp_path)
    assert again[0].tolist() == first[0].tolist() and again[2] == "annoy"
    assert list(tmp_path.glob("*.ann")) == [forest] and forest.stat().st_mtime_ns == built
    changed = vectors.copy()
    changed[0] = -changed[0]
    similar_pairs(changed, None, 0.5, params, tmp_path)
    [rebuilt] = tmp_path.glob("*.ann")  # stale indexes are removed
    assert rebuilt != forest


def test_grouping_does_not_chain_dissimilar_images():
    # A path 0-1-2-3-4: each only similar to its neighbours.
    pairs = np.array([[0, 1], [1, 2], [2, 3], [3, 4]])
    scores = np.full(4, 0.9, dtype=np.float32)
    groups = greedy_star_groups(5, pairs, scores, 0.8, tie_break=lambda n: (n,))
    linked = {tuple(sorted((a, b))) for a, b in pairs.tolist()}
    for reference, members in groups:
        for member, _ in members:
            assert tuple(sorted((reference, member))) in linked
    assert sum(1 + len(m) for _, m in groups) <= 5
    assert all(len(m) <= 2 for _, m in groups)


def test_grouping_is_deterministic_and_picks_the_hub_as_reference():
    pairs = np.array([[0, 3], [1, 3], [2, 3], [4, 5]])
    scores = np.array([0.9, 0.95, 0.85, 0.99], dtype=np.float32)
    first = greedy_star_groups(6, pairs, scores, 0.8, tie_break=lambda n: (n,))
    again = greedy_star_groups(6, pairs[::-1], scores[::-1], 0.8, tie_break=lambda n: (n,))
    assert first == again
    assert first[0][0] == 3
    assert [m for m, _ in first[0][1]] == [1, 0, 2]  # best score first


def test_keeper_prefers_resolution_then_size_then_age():
    def m(path, w, h, size, mtime):  # noqa: ANN001, ANN202
        return Member(path, 100.0, None, size, w, h, mtime)

    assert suggest_keeper([m("a", 100, 100, 5, 1), m("b", 200, 200, 1, 2)]) == "b"
    assert suggest_keeper([m("a", 100, 100, 5, 2), m("b", 100, 100, 9, 3)]) == "b"
    assert suggest_keeper([m("a", 100, 100, 5, 7), m("b", 100, 100, 5, 3)]) == "b"
    assert suggest_keeper([m("b", 100, 100, 5, 3), m("a", 100, 100, 5, 3)]) == "a"


@pytest.mark.parametrize("backbone", ["efficientnet-lite0", "resnet50"])
def test_calibration_is_monotonic_and_invertible(backbone):
    cosines = np.linspace(0, 1, 101)
    scores = calibration.cosine_to_score(backbone, cosines)
    assert (np.diff(scores) >= 0).all()
    assert scores[0] == 0 and scores[-1] == 100
    for score in (10.0, 50.0, 90.0, 99.0):
        cos = calibration.score_to_cosine(backbone, score)
        assert calibration.cosine_to_score(backbone, cos) == pytest.approx(score)
    with pytest.raises(ValueError):
        calibration.score_to_cosine(backbone, 120)


def _counting_loader(vectors: np.ndarray):  # noqa: ANN202
    calls = []

    def load():  # noqa: ANN202
        calls.append(1)
        return vectors, None

    return load, calls


@pytest.mark.parametrize("exact_limit", [10_000, 0])  # exact search, then Annoy
def test_cached_pairs_are_reused_filtered_and_invalidated(tmp_path, exact_limit):
    vectors = _clustered(60, 3, 64, 0.3)
    params = IndexParams(exact_limit=exact_limit, pca_dims=16, trees=5)
    load, calls = _counting_loader(vectors)
    first = similar_pairs_cached(b"v1", len(vectors), load, 0.8, params, tmp_path)
    again = similar_pairs_cached(b"v1", len(vectors), load, 0.8, params, tmp_path)
    assert len(calls) == 1  # the rescan loaded no vector
    for cached, fresh in zip(again, first, strict=True):
        np.testing.assert_array_equal(cached, fresh)
    assert again[0].dtype == np.int64

    # A higher threshold filters the cached pairs: exactly a new search.
    higher = similar_pairs_cached(b"v1", len(vectors), load, 0.9, params, tmp_path)
    assert len(calls) == 1
    fresh = similar_pairs(vectors, None, 0.9, params, tmp_path)
    for cached, new in zip(higher, fresh, strict=True):
        np.testing.assert_array_equal(cached, new)

    # A lower threshold, or other vectors, search again.
    similar_pairs_cached(b"v1", len(vectors), load, 0.7, params, tmp_path)
    assert len(calls) == 2
    similar_pairs_cached(b"v2", len(vectors), load, 0.7, params, tmp_path)
    assert len(calls) == 3
    similar_pairs_cached(b"v2", len(vectors), load, 0.7, params, tmp_path)
    assert len(calls) == 3


def test_damaged_pair_cache_is_searched_again(tmp_path):
    vectors = _clustered(20, 3, 32, 0.3)
    load, calls = _counting_loader(vectors)
    first = similar_pairs_cached(b"v", len(vectors), load, 0.8, IndexParams(), tmp_path)
    (tmp_path / PAIRS_FILE).write_bytes(b"not a zip file")
    again = similar_pairs_cached(b"v", len(vectors), load, 0.8, IndexParams(), tmp_path)
    assert len(calls) == 2
    np.testing.assert_array_equal(again[0], first[0])


def _plain_star_groups(pairs, scores, min_score, tie_break):  # noqa: ANN001, ANN202
    """The definition greedy_star_groups implements with a heap: take the
    best-ranked remaining node, with min() over all of them, every time."""
    neighbours: dict[int, dict[int, float]] = {}
    for (a, b), s in zip(pairs.tolist(), scores.tolist(), strict=True):
        if s >= min_score and a != b:
            neighbours.setdefault(a, {})[b] = s
            neighbours.setdefault(b, {})[a] = s
    remaining, groups = set(neighbours), []
    while remaining:
        def rank(node, remaining=remaining):  # noqa: ANN001, ANN202
            linked = [v for m, v in neighbours[node].items() if m in remaining]
            return (-len(linked), -round(sum(linked), 6), tie_break(node))

        reference = min(remaining, key=rank)
        members = sorted(((m, s) for m, s in neighbours[reference].items() if m in remaining),
                         key=lambda item: (-item[1], tie_break(item[0])))
        remaining -= {reference, *(m for m, _ in members)}
        if members:
            groups.append((reference, members))
        remaining = {r for r in remaining if any(m in remaining for m in neighbours[r])}
    return groups


def test_heap_grouping_equals_the_plain_definition():
    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(2, 30))
        pairs = rng.integers(0, n, size=(int(rng.integers(0, 3 * n)), 2))
        scores = np.round(rng.uniform(0.5, 1.0, size=len(pairs)), 2).astype(np.float32)
        order = rng.permutation(n)

        def tie_break(node, order=order):  # noqa: ANN001, ANN202
            return (int(order[node]),)

        assert greedy_star_groups(n, pairs, scores, 0.7, tie_break) == \
            _plain_star_groups(pairs, scores, 0.7, tie_break)


def test_a_pair_cache_that_cannot_be_written_is_skipped_not_fatal(tmp_path) -> None:  # noqa: ANN001
    from imgdedupe.core.pairs.cache import _save_pairs

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    # Must not raise: the pairs are only a cache.
    _save_pairs(blocker / "index", "key", 0.5, np.zeros((1, 2), np.int64),
                np.ones(1, np.float32), "exact", IndexParams(), None)
    stale = tmp_path / "cache"
    stale.mkdir()
    (stale / "pairs.npz.123.tmp.npz").write_bytes(b"half written")
    _save_pairs(stale, "key", 0.5, np.zeros((1, 2), np.int64), np.ones(1, np.float32), "exact",
                IndexParams(), None)
    assert [p.name for p in stale.iterdir()] == ["pairs.npz"]


@pytest.mark.parametrize("exact_limit", [10_000, 0])  # exact search, then Annoy
def test_pairs_of_fewer_vectors_come_from_the_cache(tmp_path, exact_limit):
    """Files deleted (or a sub-folder scanned): the pairs among the vectors
    left are the cached ones, re-numbered, without loading a vector."""
    vectors = _clustered(60, 3, 64, 0.3)
    ids = np.arange(1000, 1000 + len(vectors), dtype=np.int64)
    params = IndexParams(exact_limit=exact_limit, pca_dims=16, trees=5)
    load, calls = _counting_loader(vectors)
    lineage = Lineage("epoch:True", changes=500, rows=len(vectors), ids=ids)
    similar_pairs_cached(b"all", len(vectors), load, 0.8, params, tmp_path, lineage)
    assert len(calls) == 1

    keep = np.ones(len(vectors), dtype=bool)
    keep[[0, 7, 8, 100]] = False  # four deleted: the counter grew by four
    left = vectors[keep]
    fewer = Lineage("epoch:True", changes=504, rows=len(vectors) - 4, ids=ids[keep][::-1])
    load_left, calls_left = _counting_loader(left[::-1])
    reused = similar_pairs_cached(b"left", len(left), load_left, 0.85, params, tmp_path, fewer)
    assert calls_left == []
    searched = similar_pairs(left[::-1], None, 0.85, IndexParams(exact_limit=10_000))
    assert {tuple(p) for p in reused[0].tolist()} == {tuple(p) for p in searched[0].tolist()}
    np.testing.assert_allclose(np.sort(reused[1]), np.sort(searched[1]), rtol=1e-6)
    # ... and saved under the new key: found again directly.
    assert similar_pairs_cached(b"left", len(left), load_left, 0.85, params, tmp_path,
                                fewer)[0].tolist() == reused[0].tolist()
    assert calls_left == []

    # Anything but deletions since (an insert, an update), or another
    # database, searches again.
    for name, changes, rows, base in (("insert", 505, len(vectors) - 3, "epoch:True"),
                                      ("update", 506, len(vectors) - 4, "epoch:True"),
                                      ("rebuilt", 504, len(vectors) - 4, "other:True")):
        case = tmp_path / name
        case.mkdir()
        shutil.copy(tmp_path / PAIRS_FILE, case / PAIRS_FILE)  # the state after "left"
        load_again, calls_again = _counting_loader(left)
        similar_pairs_cached(name.encode(), len(left), load_again, 0.85, params, case,
                             Lineage(base, changes, rows, ids[keep]))
        assert len(calls_again) == 1, name


def test_a_new_search_version_searches_again(tmp_path, monkeypatch):
    """An upgrade that changes how pairs are found must not reuse pairs
    cached by the old search, even for the very same vectors, nor re-number
    them for fewer vectors."""
    from imgdedupe.core.pairs import search

    vectors = _clustered(40, 3, 32, 0.2)
    ids = np.arange(len(vectors), dtype=np.int64)
    calls: list[int] = []

    def load(upto: int = 0):  # noqa: ANN202
        calls.append(1)
        return vectors[upto:], None

    params = IndexParams(exact_limit=0, pca_dims=8, trees=5)  # the Annoy path, with a forest
    lineage = Lineage("epoch:True", changes=120, rows=len(vectors), ids=ids)
    first = similar_pairs_cached(b"v", len(vectors), load, 0.8, params, tmp_path, lineage)
    similar_pairs_cached(b"v", len(vectors), load, 0.8, params, tmp_path, lineage)
    assert len(calls) == 1  # the same search: served from the cache
    fewer = Lineage("epoch:True", changes=121, rows=len(vectors) - 1, ids=ids[1:])
    similar_pairs_cached(b"w", len(vectors) - 1, lambda: load(1), 0.8, params, tmp_path, fewer)
    assert len(calls) == 1  # one vector fewer: re-numbered from the cache

    similar_pairs_cached(b"v", len(vectors), load, 0.8, params, tmp_path, lineage)  # as before
    monkeypatch.setattr(search, "SEARCH_VERSION", search.SEARCH_VERSION + 1)
    similar_pairs_cached(b"w", len(vectors) - 1, lambda: load(1), 0.8, params, tmp_path, fewer)
    assert len(calls) == 3  # searched again: the old search's pairs are not re-numbered
    upgraded = similar_pairs_cached(b"v", len(vectors), load, 0.8, params, tmp_path, lineage)
    assert len(calls) == 4 and np.array_equal(upgraded[0], first[0])
    assert int(np.load(tmp_path / PAIRS_FILE)["search_version"]) == search.SEARCH_VERSION

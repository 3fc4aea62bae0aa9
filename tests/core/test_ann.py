"""The streamed large-library search gives what the in-memory one gives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgdedupe.core.pairs.ann import ArraySource, exact_scores, sorted_unique, streamed_pairs
from imgdedupe.core.pairs.search import IndexParams, exact_pairs, pair_scores, similar_pairs


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _vectors(n: int, dim: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    upright = _unit(np.repeat(rng.normal(size=(n // 3, dim)), 3, axis=0)
                    + 0.4 * rng.normal(size=(n // 3 * 3, dim)))
    rotated = _unit(rng.normal(size=(len(upright), 3, dim)))
    rotated[5, 1] = upright[40]  # image 5 turned looks like image 40
    return upright, rotated


@pytest.mark.parametrize("budget", [1 << 30, 4 * 48 * 7])  # one block; blocks of 7 images
def test_streamed_exact_scores_match_the_in_memory_ones(budget):
    upright, rotated = _vectors(300)
    rng = np.random.default_rng(2)
    pairs = np.unique(np.sort(rng.integers(0, 300, size=(3000, 2)), axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    source = ArraySource(upright, rotated)
    source_chunked = exact_scores(source, pairs.astype(np.int32), budget)
    np.testing.assert_allclose(source_chunked, pair_scores(upright, rotated, pairs), atol=1e-5)


def test_streamed_pairs_are_exactly_scored_and_find_rotated_copies(tmp_path):
    upright, rotated = _vectors(900)
    exact, exact_scores_ = exact_pairs(upright, rotated, 0.8)
    pairs, scores = streamed_pairs(ArraySource(upright, rotated), 0.8, 16, 10, 24, "k",
                                   tmp_path)
    truth = {tuple(p): s for p, s in zip(exact.tolist(), exact_scores_.tolist(), strict=True)}
    found = {tuple(p): s for p, s in zip(pairs.tolist(), scores.tolist(), strict=True)}
    assert set(found) <= set(truth)
    assert len(found) >= 0.98 * len(truth)
    assert (5, 40) in found
    for pair, score in found.items():
        assert score == pytest.approx(truth[pair], abs=1e-5)
    assert pairs.tolist() == sorted(pairs.tolist())


def test_float16_source_scores_like_the_cache_does(tmp_path):
    upright, rotated = _vectors(600)
    u16, r16 = upright.astype(np.float16), rotated.astype(np.float16)
    params = IndexParams(exact_limit=0, pca_dims=16, trees=10)
    a = similar_pairs(u16, r16, 0.8, params, tmp_path / "a")
    b = similar_pairs(u16.astype(np.float32), r16.astype(np.float32), 0.8, params,
                      tmp_path / "b")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], atol=1e-6)


@given(st.lists(st.integers(min_value=-(2**62), max_value=2**62), max_size=300))
def test_sorted_unique_is_np_unique(values):
    array = np.asarray(values, dtype=np.int64)
    np.testing.assert_array_equal(sorted_unique(array), np.unique(array))

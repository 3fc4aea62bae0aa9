"""The streamed large-library search gives what the in-memory one gives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgdedupe.core.pairs.ann import (
    ArraySource,
    StreamedForest,
    exact_scores,
    sorted_unique,
    streamed_pairs,
)
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


def _features(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors like a CNN's: a common mean, a decaying low-rank part, noise."""
    rng = np.random.default_rng(seed)
    mean = np.abs(rng.normal(size=dim))
    basis = np.linalg.qr(rng.normal(size=(dim, dim // 2)))[0].T
    latent = rng.normal(size=(n, dim // 2)) * (1.0 + np.arange(dim // 2)) ** -0.6
    return _unit(0.5 * mean / np.linalg.norm(mean) + 0.3 * latent @ basis
                 + 0.01 * rng.normal(size=(n, dim)))


def test_pca_is_the_exact_eigendecomposition_and_deterministic():
    sample = _features(2000, 96)
    forest = StreamedForest.__new__(StreamedForest)
    forest.dims = 24
    mean, components = forest._fit_pca(ArraySource(sample, None))
    assert mean.dtype == components.dtype == np.float32 and components.shape == (24, 96)
    x = sample.astype(np.float64)
    np.testing.assert_allclose(mean, x.mean(axis=0), atol=1e-6)
    _, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    exact = vectors[:, ::-1][:, :24].T
    # The same subspace (cosines of the principal angles), component by component.
    cosines = np.linalg.svd(components.astype(np.float64) @ exact.T, compute_uv=False)
    assert cosines.min() > 1 - 1e-6
    dots = np.abs(np.einsum("ij,ij->i", components.astype(np.float64), exact))
    assert dots.min() > 1 - 1e-4
    # Each component's largest entry is positive: a fixed sign, whatever
    # sign the eigensolver returned.
    rows = np.arange(24)
    assert (components[rows, np.abs(components).argmax(axis=1)] > 0).all()
    again = forest._fit_pca(ArraySource(sample.copy(), None))
    np.testing.assert_array_equal(again[0], mean)
    np.testing.assert_array_equal(again[1], components)


def _hand_pca(sample: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The hand-written fit of earlier versions, which wrote the caches
    users have on disk."""
    mean = sample.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred = sample - mean
    _, vectors = np.linalg.eigh((centred.T @ centred).astype(np.float64))
    top = vectors[:, -dims:][:, ::-1].T
    signs = np.sign(top[np.arange(len(top)), np.abs(top).argmax(axis=1)])
    return mean, (top * signs[:, None]).astype(np.float32)


def test_a_forest_cached_by_an_earlier_version_still_loads(tmp_path):
    upright, rotated = _vectors(300)
    source = ArraySource(upright, rotated)
    built = StreamedForest(source, 16, 5, "k", tmp_path)
    built.close()
    # What the hand-written PCA saved: the same arrays, under the same names.
    old_mean, old_components = _hand_pca(upright, 16)
    np.testing.assert_allclose(built.components, old_components, atol=1e-4)
    np.savez(tmp_path / "k.pca.npz", mean=old_mean, components=old_components)
    for forest in (StreamedForest.cached("k", tmp_path),
                   StreamedForest(source, 16, 5, "k", tmp_path)):
        assert forest is not None and forest.reused and forest.dims == 16
        np.testing.assert_array_equal(forest.components, old_components)
        np.testing.assert_array_equal(forest.mean, old_mean)
        found = forest.neighbours_of(upright[:3], rotated[:3], 5)
        assert all(i in items for i, items in enumerate(found))
        forest.close()


def test_the_same_vectors_build_the_same_forest(tmp_path):
    upright, rotated = _vectors(600)
    source = ArraySource(upright, rotated)
    keys = []
    for name in ("a", "b"):
        forest = StreamedForest(source, 16, 10, "k", tmp_path / name)
        keys.append(forest.candidate_keys(source, 10))
        forest.close()
    np.testing.assert_array_equal(keys[0], keys[1])
    assert (tmp_path / "a" / "k.ann").read_bytes() == (tmp_path / "b" / "k.ann").read_bytes()

"""The FAISS path (large libraries): the planted pairs, scored like the exact search."""

from __future__ import annotations

import numpy as np
import pytest

from imgdedupe.core.pairs import cache, search
from imgdedupe.core.pairs.ann import ArraySource
from imgdedupe.core.pairs.cache import similar_pairs_cached
from imgdedupe.core.pairs.search import IndexParams, exact_pairs, pair_scores, similar_pairs

pytest.importorskip("faiss", reason="faiss-cpu is in the test extra: install .[test]")

COUNT, DIM = 20_000, 256


def _library(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """COUNT unit vectors in scenes of ~40 (cosine ~0.33 within a scene, ~0
    across), every 10th photo a near copy of the one before it (cosine
    0.89-0.99); and those planted pairs."""
    rng = np.random.default_rng(seed)
    scenes = rng.normal(size=(COUNT // 40, DIM))
    vectors = 0.7 * scenes[rng.integers(0, len(scenes), COUNT)] + rng.normal(size=(COUNT, DIM))
    copies = np.arange(1, COUNT, 10)
    strength = rng.uniform(0.15, 0.5, size=(len(copies), 1))
    vectors[copies] = vectors[copies - 1] + strength * rng.normal(size=(len(copies), DIM)) \
        * np.linalg.norm(vectors[copies - 1], axis=1, keepdims=True) / np.sqrt(DIM)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), np.stack([copies - 1, copies], 1)


@pytest.mark.slow
def test_faiss_finds_the_planted_pairs_and_scores_them_like_the_exact_search(tmp_path):
    vectors, planted = _library()
    floor = 0.75
    truth, truth_scores = exact_pairs(vectors, None, floor)
    planted_cosines = (vectors[planted[:, 0]] * vectors[planted[:, 1]]).sum(1)
    assert planted_cosines.min() > floor and planted_cosines.max() < 0.995  # near, not equal
    params = IndexParams(exact_limit=1000, faiss_from=10_000)
    pairs, scores, method = similar_pairs(vectors, None, floor, params, tmp_path)
    assert method == "faiss"
    found = {tuple(p) for p in pairs.tolist()}
    assert {tuple(p) for p in planted.tolist()} <= found
    exact = dict(zip(map(tuple, truth.tolist()), truth_scores.tolist(), strict=True))
    assert found <= set(exact)  # rescored exactly: nothing under the floor
    assert len(found) >= 0.99 * len(exact)
    assert np.allclose(scores, [exact[p] for p in map(tuple, pairs.tolist())], atol=1e-5)
    assert np.allclose(scores, pair_scores(vectors, None, pairs), atol=1e-6)
    # Rotated queries too, as the Annoy forest asks them (on a part: time).
    part = vectors[:4000]
    rotated = np.stack([np.roll(part, 1, axis=1)] * 3, 1)
    turned, _, method = search.similar_pairs_streamed(
        ArraySource(part, rotated), floor, IndexParams(exact_limit=100, faiss_from=2000),
        None, "key")
    assert method == "faiss" and {tuple(p) for p in planted[:400].tolist()} <= set(
        map(tuple, turned.tolist()))


def test_without_faiss_large_libraries_keep_annoy(monkeypatch):
    params = IndexParams(exact_limit=10, faiss_from=100)
    assert search.search_method(100, params) == "faiss"
    assert not search.faiss_missing(100, params)
    monkeypatch.setattr(search, "faiss_available", lambda: False)
    assert search.search_method(100, params) == "annoy"
    assert search.faiss_missing(100, params) and not search.faiss_missing(99, params)
    assert search.search_method(10, params) == "exact"


def test_installing_faiss_never_replays_annoys_pairs(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(300, 32)).astype(np.float32)
    vectors[1::2] = vectors[::2] + 0.1 * rng.normal(size=(150, 32))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    params = IndexParams(exact_limit=50, faiss_from=200, pca_dims=16, trees=5)
    ids = np.arange(300, dtype=np.int64)
    lineage = cache.Lineage("epoch", 1, 300, ids)
    monkeypatch.setattr(search, "faiss_available", lambda: False)
    _, _, method = similar_pairs_cached(b"same", 300, lambda: (vectors, None), 0.8, params,
                                        tmp_path, lineage)
    assert method == "annoy"
    monkeypatch.undo()
    loads = []

    def load() -> tuple[np.ndarray, None]:
        loads.append(1)
        return vectors, None

    pairs, scores, method = similar_pairs_cached(b"same", 300, load, 0.8, params, tmp_path,
                                                 lineage)
    assert method == "faiss" and loads == [1]  # searched again, not served from the cache
    assert np.allclose(scores, pair_scores(vectors, None, pairs), atol=1e-6)
    again = similar_pairs_cached(b"same", 300, load, 0.8, params, tmp_path, lineage)
    assert again[2] == "faiss" and loads == [1]  # and now cached under FAISS


@pytest.mark.slow
def test_a_scan_through_faiss_groups_like_an_exact_one_and_says_when_faiss_is_missing(
        tmp_path, monkeypatch):
    import shutil
    from pathlib import Path

    from PIL import Image

    from imgdedupe.core.model.loading import load_backbone
    from imgdedupe.core.records import Notice
    from imgdedupe.core.scan.config import ScanConfig
    from imgdedupe.core.scan.events import Progress
    from imgdedupe.core.scan.pipeline import run_scan

    samples = Path(__file__).resolve().parents[2] / "resources" / "samples"
    library = tmp_path / "lib"
    library.mkdir()
    distinct = ["Holiday/IMG_0002.jpg", "Phone/PXL_20230814_093012.jpg",
                "Archive/cameraman_1988.jpg"]
    for n, photo in enumerate(samples / name for name in distinct):
        shutil.copyfile(photo, library / f"{n}.jpg")
        small = Image.open(photo)
        small.resize((small.width // 2, small.height // 2)).save(library / f"{n}_small.jpg",
                                                                  quality=70)
    backbone, _ = load_backbone("efficientnet-lite0", device="cpu")

    def scan(name: str, index: IndexParams) -> tuple[list, str]:
        config = ScanConfig(roots=(str(library),), db_path=str(tmp_path / f"{name}.db"),
                            index=index)
        events = list(run_scan(config, None, backbone=backbone))
        [method] = {e.message for e in events
                    if isinstance(e, Progress) and e.phase == "index" and e.message}
        notices = [e.code for e in events if isinstance(e, Notice)]
        return [events[-1].groups, notices], method

    large = IndexParams(exact_limit=0, faiss_from=2, pca_dims=8)
    (exact_groups, exact_notices), method = scan("exact", IndexParams())
    assert method == "exact" and exact_notices == [] and len(exact_groups) == 3
    (faiss_groups, notices), method = scan("faiss", large)
    assert method == "faiss" and notices == []
    assert faiss_groups == exact_groups
    monkeypatch.setattr(search, "faiss_available", lambda: False)
    # The same cache: neither the scan memo nor the pair cache replays FAISS's.
    (annoy_groups, notices), method = scan("faiss", large)
    assert method == "annoy" and notices == ["faiss_missing"]  # once, and Annoy goes on
    assert annoy_groups == exact_groups


def test_added_and_changed_photos_are_searched_alone_in_the_saved_faiss_index(tmp_path):
    """As with Annoy's forest (test_pairs_growth): a rescan that embedded a
    few photos searches only those, in the FAISS index the last full search
    saved, and finds every pair a full search would, scored exactly."""
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(150, 64))
    vectors = np.repeat(centres, 3, axis=0) + 0.3 * rng.normal(size=(450, 64))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    ids = np.arange(1000, 1450, dtype=np.int64)
    params = IndexParams(exact_limit=0, faiss_from=2, pca_dims=16)
    first = similar_pairs_cached(b"before", 450, lambda: (vectors, None), 0.8, params,
                                 tmp_path, cache.Lineage("e", 900, 450, ids))
    assert first[2] == "faiss"
    [index_file] = tmp_path.glob("*.faiss")
    built = index_file.stat().st_mtime_ns
    new = vectors[100] + 0.02 * rng.normal(size=64)
    now_vectors = np.concatenate([vectors, (new / np.linalg.norm(new))[None]]).astype(np.float32)
    now_ids = np.append(ids, 5000)
    pairs, scores, method = similar_pairs_cached(
        b"after", 451, lambda: (now_vectors, None), 0.8, params, tmp_path,
        cache.Lineage("e", 901, 451, now_ids, start=(900, 450), fresh=np.array([5000])))
    assert method == "faiss"
    assert [f.stat().st_mtime_ns for f in tmp_path.glob("*.faiss")] == [built]  # not rebuilt
    truth, truth_scores = exact_pairs(now_vectors, None, 0.8)
    assert {tuple(p) for p in pairs.tolist()} == {tuple(p) for p in truth.tolist()}
    assert (100, 450) in {tuple(p) for p in pairs.tolist()}
    assert np.allclose(scores, truth_scores, atol=1e-5)

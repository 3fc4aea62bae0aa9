"""End-to-end scans with the real offline backbone (EfficientNet-Lite0).

Near-duplicates are generated in tmp_path from the bundled CC0 sample
photos, so matching is judged on real photographic content.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from imgdedupe.core.errors import ScanCancelled
from imgdedupe.core.model.loading import load_backbone, resnet50_random
from imgdedupe.core.records import ErrorReason, Notice
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import ExactGroupsReady, Progress, ScanResult
from imgdedupe.core.scan.pipeline import run_scan
from imgdedupe.core.storage.store import Store

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def lite0():
    backbone, notices = load_backbone("efficientnet-lite0", device="cpu")
    assert notices == ()
    return backbone


def make_library(root: Path) -> dict[str, str]:
    """Six distinct photos plus near-duplicates of four of them."""
    j = root.joinpath
    (root / "camera").mkdir(parents=True)
    (root / "phone" / "sent").mkdir(parents=True)
    (root / "edits").mkdir()
    sources = {
        "rocket": SAMPLES / "Holiday" / "IMG_0001.jpg",
        "coffee": SAMPLES / "Holiday" / "IMG_0002.jpg",
        "hubble": SAMPLES / "Holiday" / "IMG_0003.jpg",
        "cat": SAMPLES / "Phone" / "PXL_20230814_093012.jpg",
        "astronaut": SAMPLES / "Archive" / "scan_0042.jpg",
        "cameraman": SAMPLES / "Archive" / "cameraman_1988.jpg",
    }
    paths: dict[str, str] = {}
    for name, src in sources.items():
        paths[name] = str(j("camera", f"{name}.jpg"))
        shutil.copyfile(src, paths[name])
    paths["rocket_copy"] = str(j("phone", "rocket (1).jpg"))
    shutil.copyfile(paths["rocket"], paths["rocket_copy"])
    coffee = Image.open(paths["coffee"])
    paths["coffee_small"] = str(j("phone", "sent", "coffee_small.jpg"))
    coffee.resize((coffee.width // 2, coffee.height // 2)).save(paths["coffee_small"], quality=70)
    cat = Image.open(paths["cat"])
    paths["cat_rot90"] = str(j("edits", "cat_sideways.jpg"))
    cat.transpose(Image.Transpose.ROTATE_90).save(paths["cat_rot90"], quality=90)
    paths["cat_exif"] = str(j("phone", "cat_exif.jpg"))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    cat.transpose(Image.Transpose.ROTATE_90).save(paths["cat_exif"], quality=90, exif=exif)
    astro = Image.open(paths["astronaut"])
    w, h = astro.size
    paths["astro_crop"] = str(j("edits", "astronaut_crop.png"))
    astro.crop((w // 20, h // 20, w - w // 20, h - h // 20)).save(paths["astro_crop"])
    paths["astro_grey"] = str(j("edits", "astronaut_bw.webp"))
    ImageOps.grayscale(astro).save(paths["astro_grey"], quality=85)
    return paths


def scan(config: ScanConfig, backbone=None, cancel=None) -> tuple[ScanResult, list]:  # noqa: ANN001
    events = list(run_scan(config, cancel, backbone=backbone))
    result = events[-1]
    assert isinstance(result, ScanResult)
    return result, events


def as_sets(result: ScanResult) -> set[frozenset[str]]:
    return {frozenset(m.path for m in g.members) for g in result.groups}


def test_finds_exactly_the_near_duplicate_groups(tmp_path, lite0):
    p = make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    result, events = scan(config, lite0)
    assert as_sets(result) == {
        frozenset({p["rocket"], p["rocket_copy"]}),
        frozenset({p["coffee"], p["coffee_small"]}),
        frozenset({p["cat"], p["cat_rot90"], p["cat_exif"]}),
        frozenset({p["astronaut"], p["astro_crop"], p["astro_grey"]}),
    }
    rocket = next(g for g in result.groups if p["rocket"] in {m.path for m in g.members})
    assert (rocket.kind, rocket.tier, rocket.reason) == ("exact", "exact", "same bytes")
    assert all(m.exact for m in rocket.members)
    coffee = next(g for g in result.groups if p["coffee"] in {m.path for m in g.members})
    assert coffee.keeper == p["coffee"]  # the full-size original, not the small copy
    assert not any(m.exact for m in coffee.members)
    for group in result.groups:
        assert group.members[0].similarity == 100.0
        assert all(90.0 <= m.similarity <= 100.0 for m in group.members)
        assert all(m.width and m.height for m in group.members)
    # Exact copies are announced before any image is decoded.
    kinds = [type(e) for e in events]
    first_embed = next(i for i, e in enumerate(events)
                       if isinstance(e, Progress) and e.phase == "embed")
    assert kinds.index(ExactGroupsReady) < first_embed
    exact_event = next(e for e in events if isinstance(e, ExactGroupsReady))
    assert {frozenset(m.path for m in g.members) for g in exact_event.groups} == \
        {frozenset({p["rocket"], p["rocket_copy"]})}
    assert result.stats.embedded == 11  # 12 files, one byte copy embedded once
    assert result.errors == ()


def _similarity(result: ScanResult, path: str) -> float:
    return next((m.similarity for g in result.groups for m in g.members if m.path == path), 0.0)


def test_rotation_matching_can_be_switched_off(tmp_path, lite0):
    p = make_library(tmp_path / "lib")
    base = dict(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    with_rotations, _ = scan(ScanConfig(**base), lite0)
    without, _ = scan(ScanConfig(**base, rotations=False), lite0)
    # EXIF orientation is applied on decode, so that copy needs no rotation.
    assert _similarity(without, p["cat_exif"]) >= 99.0
    # Pixels really rotated: a near-perfect match only with rotations on.
    assert _similarity(with_rotations, p["cat_rot90"]) >= 99.0
    assert _similarity(without, p["cat_rot90"]) < _similarity(with_rotations, p["cat_rot90"]) - 3


def test_rescan_uses_the_cache_and_follows_changes(tmp_path, lite0, photo_maker):
    p = make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    first, _ = scan(config, lite0)
    again, _ = scan(config, lite0)
    assert again.stats.embedded == 0
    assert again.stats.from_cache == first.stats.unique_contents
    assert again.groups == first.groups

    photo_maker(p["coffee_small"], 11)  # now a different picture under the same name
    os.remove(p["astro_grey"])
    changed, _ = scan(config, lite0)
    assert changed.stats.embedded == 1
    assert all(p["coffee_small"] not in s and p["astro_grey"] not in s
               for s in as_sets(changed))
    assert frozenset({p["astronaut"], p["astro_crop"]}) in as_sets(changed)


def test_bad_files_are_reported_and_the_scan_goes_on(photo_tree, tmp_path, lite0):
    before = {path: hashlib.sha256(Path(path).read_bytes()).hexdigest()
              for path in photo_tree.expected if os.path.getsize(path) < 10_000_000}
    config = ScanConfig(roots=(photo_tree.root,), db_path=str(tmp_path / "c.db"))
    result, _ = scan(config, lite0)
    reasons = {e.path: e.reason for e in result.errors}
    bad = photo_tree.bad
    assert reasons[bad["empty"]] == ErrorReason.EMPTY
    assert reasons[bad["truncated_jpeg"]] == ErrorReason.TRUNCATED
    assert reasons[bad["truncated_png"]] == ErrorReason.TRUNCATED
    assert reasons[bad["not_an_image"]] == ErrorReason.NOT_AN_IMAGE
    assert reasons[bad["bomb"]] == ErrorReason.TOO_LARGE
    assert all(e.detail for e in result.errors)
    grouped = {m.path for g in result.groups for m in g.members}
    assert photo_tree.exact_copy in grouped
    assert not grouped & set(bad.values())
    assert photo_tree.hidden_image not in grouped
    if photo_tree.non_utf8:
        assert result.stats.files_seen == len(photo_tree.expected)
    # A second scan reports the same bad files without decoding them again.
    again, _ = scan(config, lite0)
    assert {e.path: e.reason for e in again.errors} == reasons
    assert again.stats.embedded == 0
    after = {path: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in before}
    assert after == before, "a scan must never change a photo"


def test_file_deleted_between_walk_and_decode_is_reported(tmp_path, lite0, monkeypatch):
    p = make_library(tmp_path / "lib")
    from imgdedupe.core.images import decode_pool

    real = decode_pool.decode_for_network

    def vanish_then_decode(path: str):  # noqa: ANN202
        if path == p["hubble"] and os.path.exists(path):
            os.remove(path)
        return real(path)

    monkeypatch.setattr(decode_pool, "decode_for_network", vanish_then_decode)
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    result, _ = scan(config, lite0)
    assert [(e.path, e.reason) for e in result.errors] == [(p["hubble"], ErrorReason.VANISHED)]
    assert len(result.groups) == 4


def test_cancel_stops_the_scan_and_the_next_one_resumes(tmp_path, lite0):
    make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"),
                        batch_size=2)
    cancel = threading.Event()
    with pytest.raises(ScanCancelled):
        for event in run_scan(config, cancel, backbone=lite0):
            if isinstance(event, Progress) and event.phase == "embed" and event.done >= 2:
                cancel.set()
    resumed, _ = scan(config, lite0)
    assert resumed.stats.from_cache >= 2
    assert resumed.stats.embedded == resumed.stats.unique_contents - resumed.stats.from_cache
    assert len(resumed.groups) == 4


def test_output_order_is_deterministic(tmp_path, lite0):
    make_library(tmp_path / "lib")
    a, _ = scan(ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "a.db")),
                lite0)
    b, _ = scan(ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "b.db")),
                lite0)
    assert a.groups == b.groups


def test_resnet50_plumbing_with_random_weights(tmp_path):
    # Random weights give degenerate features: shapes and plumbing only.
    import numpy as np

    backbone = resnet50_random()
    vectors = backbone.embed(np.zeros((2, 224, 224, 3), dtype=np.uint8))
    assert vectors.shape == (2, 2048)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"),
                        rotations=False, backbone="resnet50")
    result, _ = scan(config, backbone)
    assert result.model_id.startswith("resnet50:random")
    assert result.stats.embedded == 11


def test_turning_where_the_model_runs_matches_turning_on_the_host(lite0):
    import numpy as np

    from imgdedupe.core.images.preprocess import decode_for_network, rotated_by

    batch = np.stack([decode_for_network(str(SAMPLES / "Phone" / "PXL_20230814_093012.jpg"))[0],
                      decode_for_network(str(SAMPLES / "Holiday" / "IMG_0001.jpg"))[0]])
    turned = lite0.embed_turns(batch, (0, 1, 2, 3))
    assert turned.shape == (4, 2, 1280)
    for quarter_turns in range(4):
        np.testing.assert_allclose(turned[quarter_turns],
                                   lite0.embed(rotated_by(batch, quarter_turns)), atol=1e-5)
    assert float(np.sum(turned[0, 0] * turned[1, 0])) < 0.99  # the turns really differ


def test_missing_resnet_weights_fall_back_visibly(tmp_path, monkeypatch):
    monkeypatch.delenv("IMGDEDUPE_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    backbone, notices = load_backbone("resnet50", device="cpu", bundled_dirs=[])
    assert backbone.info.name == "efficientnet-lite0"
    assert [n.code for n in notices] == ["backbone_fallback"]
    assert "--weights" in notices[0].message or "weights" in notices[0].message
    make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"),
                        bundled_weights_dirs=())
    events = list(run_scan(config))
    assert [e.code for e in events if isinstance(e, Notice)] == ["backbone_fallback"]
    assert events[-1].notices[0].code == "backbone_fallback"
    assert events[-1].backbone == "efficientnet-lite0"


def test_rescan_reuses_cached_pairs_and_loads_no_vector(tmp_path, lite0, monkeypatch,
                                                         photo_maker):
    p = make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    first, _ = scan(config, lite0)
    loads: list[int] = []
    real_get_vectors = Store.get_vectors

    def counting_get_vectors(self, model_id, file_ids, dim):  # noqa: ANN001, ANN202
        loads.append(len(file_ids))
        return real_get_vectors(self, model_id, file_ids, dim)

    monkeypatch.setattr(Store, "get_vectors", counting_get_vectors)
    again, _ = scan(config, lite0)
    assert loads == [] and again.groups == first.groups
    # A stricter threshold filters the cached pairs, exactly like a new search.
    strict, _ = scan(replace(config, threshold=97.0), lite0)
    assert loads == []
    shutil.rmtree(tmp_path / "c.index")
    searched, _ = scan(replace(config, threshold=97.0), lite0)
    assert loads == [first.stats.unique_contents] and searched.groups == strict.groups
    # A deleted file takes its vector with it, and only that: the pairs of
    # the others are the cached ones (no vector loaded), as a search finds.
    os.remove(p["astro_grey"])
    fewer, _ = scan(config, lite0)
    assert loads == [first.stats.unique_contents]
    shutil.rmtree(tmp_path / "c.index")
    fewer_searched, _ = scan(config, lite0)
    assert fewer.groups == fewer_searched.groups
    assert all(p["astro_grey"] not in s for s in as_sets(fewer))
    assert len(loads) == 2
    # A changed file changes the vectors: the pairs are searched again.
    photo_maker(p["coffee_small"], 11)
    changed, _ = scan(config, lite0)
    assert len(loads) == 3
    assert frozenset({p["coffee"], p["coffee_small"]}) not in as_sets(changed)
    assert frozenset({p["cat"], p["cat_rot90"], p["cat_exif"]}) in as_sets(changed)


def test_a_few_new_photos_are_searched_alone_in_a_large_library(tmp_path, lite0, photo_maker):
    """With the Annoy search (as above 5,000 photos), a rescan that embeds
    an added and a changed photo searches them in the library's cached
    forest (not rebuilt), and finds what a search of everything finds."""
    from imgdedupe.core.pairs.search import IndexParams

    p = make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"),
                        index=IndexParams(exact_limit=0, pca_dims=8, trees=10))
    scan(config, lite0)
    [forest] = (tmp_path / "c.index").glob("*/*.ann")
    built = forest.stat().st_mtime_ns
    photo_maker(p["coffee_small"], 11)  # changed: another picture under the same name
    Image.open(p["hubble"]).save(tmp_path / "lib" / "edits" / "hubble_q70.jpg", quality=70)
    grown, _ = scan(config, lite0)
    assert grown.stats.embedded == 2
    assert list((tmp_path / "c.index").glob("*/*.ann")) == [forest]
    assert forest.stat().st_mtime_ns == built  # searched in the cached forest
    shutil.rmtree(tmp_path / "c.index")
    searched, _ = scan(config, lite0)
    assert grown.groups == searched.groups
    assert frozenset({p["hubble"], str(tmp_path / "lib" / "edits" / "hubble_q70.jpg")}) \
        in as_sets(grown)
    assert frozenset({p["coffee"], p["coffee_small"]}) not in as_sets(grown)

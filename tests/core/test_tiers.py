"""Tiers end to end: only verified pairs group, similar shots apart, no
deletion suggested inside them, and verification cached like the vectors.

Photos are generated in tmp_path from the bundled CC0 samples; bursts are
two overlapping views of one sample with EXIF capture times.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from imgdedupe.cli import main as cli_main
from imgdedupe.core.actions.decisions import Decisions, Rule
from imgdedupe.core.groups.contents import ContentTable
from imgdedupe.core.groups.graph import SimilarityGraph, groups_at
from imgdedupe.core.images.capture_time import DATE_TIME_ORIGINAL, EXIF_IFD, SUBSEC_TIME_ORIGINAL
from imgdedupe.core.model.loading import load_backbone
from imgdedupe.core.scan import embed_step, verify_step
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import Progress, ScanResult
from imgdedupe.core.scan.pipeline import run_scan
from imgdedupe.core.verify.tiers import NEAR_DUPLICATE, NOT_SAME, SIMILAR_SHOT, UNVERIFIED
from imgdedupe.report import write_text

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


@pytest.fixture(scope="module")
def lite0():
    backbone, _ = load_backbone("efficientnet-lite0", device="cpu")
    return backbone


def _exif(stamp: str, subsec: str) -> Image.Exif:
    exif = Image.Exif()
    ifd = exif.get_ifd(EXIF_IFD)
    ifd[DATE_TIME_ORIGINAL] = stamp
    ifd[SUBSEC_TIME_ORIGINAL] = subsec
    return exif


def make_library(root: Path) -> dict[str, str]:
    """An edited copy of one photo, a two-frame burst of another (the same
    view a few pixels apart, 0.5 s apart), and an unrelated photo."""
    root.mkdir(parents=True)
    paths = {name: str(root / f"{name}.jpg") for name in
             ("coffee", "coffee_edit", "burst_1", "burst_2", "cat")}
    coffee = Image.open(SAMPLES / "Holiday" / "IMG_0002.jpg").convert("RGB")
    coffee.save(paths["coffee"], quality=92)
    w, h = coffee.size
    edit = ImageEnhance.Brightness(coffee.crop((w // 16, h // 16, w, h))).enhance(1.12)
    edit.resize((edit.width * 3 // 4, edit.height * 3 // 4)).save(paths["coffee_edit"],
                                                                  quality=80)
    rocket = Image.open(SAMPLES / "Holiday" / "IMG_0001.jpg").convert("RGB")
    w, h = rocket.size
    rocket.crop((0, 0, w - 24, h - 16)).save(
        paths["burst_1"], quality=92, exif=_exif("2024:07:14 10:21:33", "10"))
    rocket.crop((24, 16, w, h)).save(
        paths["burst_2"], quality=92, exif=_exif("2024:07:14 10:21:33", "60"))
    Image.open(SAMPLES / "Phone" / "PXL_20230814_093012.jpg").save(paths["cat"], quality=92)
    return paths


def scan(config: ScanConfig, backbone) -> ScanResult:  # noqa: ANN001
    *_, result = run_scan(config, backbone=backbone)
    assert isinstance(result, ScanResult)
    return result


def group_of(result: ScanResult, path: str):  # noqa: ANN201
    return next(g for g in result.groups if path in {m.path for m in g.members})


def test_copies_are_near_duplicates_and_a_burst_is_a_similar_shot(tmp_path, lite0):
    p = make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    result = scan(config, lite0)
    edit = group_of(result, p["coffee"])
    assert {m.path for m in edit.members} == {p["coffee"], p["coffee_edit"]}
    assert edit.tier == "near_duplicate"
    assert edit.reason.startswith("same picture: ") and "keypoints agree" in edit.reason
    burst = group_of(result, p["burst_1"])
    assert {m.path for m in burst.members} == {p["burst_1"], p["burst_2"]}
    assert burst.tier == "similar_shot"
    assert "0.5 s apart" in burst.reason
    assert not any(p["cat"] in {m.path for m in g.members} for g in result.groups)
    # Safety follows the tier: "Apply to all" marks the edited copy only.
    decisions = Decisions(result.groups)
    decisions.apply_rule_to_all(Rule.SUGGESTED)
    assert decisions.marked == {p["coffee_edit"]}


def test_a_copy_without_a_time_never_joins_two_moments_in_one_group(tmp_path, lite0):
    p = make_library(tmp_path / "lib")
    # The whole picture both burst frames were cut from, with no capture
    # time: a near-duplicate of each frame, which must not join the two.
    rocket = Image.open(SAMPLES / "Holiday" / "IMG_0001.jpg").convert("RGB")
    rocket.save(tmp_path / "lib" / "rocket_export.jpg", quality=90)
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    result = scan(config, lite0)
    export = str(tmp_path / "lib" / "rocket_export.jpg")
    near = [{m.path for m in g.members} for g in result.groups if g.tier == "near_duplicate"]
    assert any(export in members for members in near)  # it is a copy of a frame...
    assert not any({p["burst_1"], p["burst_2"]} <= members for members in near)  # ...of one
    shots = [{m.path for m in g.members} for g in result.groups if g.tier == "similar_shot"]
    assert any({p["burst_1"], p["burst_2"]} <= members for members in shots)


def test_the_report_shows_tiers_apart_and_no_keeper_in_similar_shots(tmp_path, lite0, capsys):
    p = make_library(tmp_path / "lib")
    db = str(tmp_path / "c.db")
    scan(ScanConfig(roots=(str(tmp_path / "lib"),), db_path=db,
                    backbone="efficientnet-lite0"), lite0)  # fills the cache
    out = tmp_path / "r.json"
    assert cli_main(["scan", str(tmp_path / "lib"), "--db", db, "--backbone",
                     "efficientnet-lite0", "--json", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    assert text.index("== Near-duplicates") < text.index("== Similar shots")
    report = json.loads(out.read_text())
    tiers = {g["tier"]: g for g in report["groups"]}
    assert set(tiers) == {"near_duplicate", "similar_shot"}
    assert tiers["similar_shot"]["keeper"] is None
    assert not any(m["keeper"] for m in tiers["similar_shot"]["members"])
    assert tiers["near_duplicate"]["keeper"] == p["coffee"]
    assert all(g["reason"] for g in report["groups"])
    assert report["stats"]["groups_by_tier"] == {"exact": 0, "near_duplicate": 1,
                                                 "similar_shot": 1}
    # --tiers chooses what is reported.
    assert cli_main(["scan", str(tmp_path / "lib"), "--db", db, "--backbone",
                     "efficientnet-lite0", "--json", str(out), "-q",
                     "--tiers", "similar_shot"]) == 0
    assert "== Near-duplicates" not in capsys.readouterr().out
    assert [g["tier"] for g in json.loads(out.read_text())["groups"]] == ["similar_shot"]
    with pytest.raises(SystemExit):
        cli_main(["scan", str(tmp_path / "lib"), "--tiers", "duplicates"])


def test_verification_is_cached_and_redone_only_for_new_pairs(tmp_path, lite0, monkeypatch):
    p = make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    calls: list[int] = []
    real = verify_step.compare

    def counting(*args):  # noqa: ANN002, ANN202
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(verify_step, "compare", counting)
    first = scan(config, lite0)
    assert calls  # the candidate pairs were verified
    # Unchanged: the memo answers; without it, every verdict comes from the cache.
    calls.clear()
    assert scan(config, lite0).groups == first.groups
    for memo in Path(config.db_path).with_suffix(".index").rglob("scan-memo.npz"):
        memo.unlink()
    events = list(run_scan(config, backbone=lite0))
    assert events[-1].groups == first.groups
    assert calls == []
    verify = [e for e in events if isinstance(e, Progress) and e.phase == "verify"]
    assert verify[-1].done == verify[-1].total >= 2  # the phase ends at its total
    # A new photo: the memo no longer fits, yet only pairs with it are verified.
    calls.clear()
    Image.open(p["coffee"]).rotate(90, expand=True).save(tmp_path / "lib" / "coffee_turned.jpg")
    second = scan(config, lite0)
    assert 1 <= len(calls) <= 2  # the new photo with each coffee, no old pair again
    assert {m.path for m in group_of(second, p["coffee"]).members} >= {p["coffee"],
                                                                        p["coffee_edit"]}
    assert group_of(second, p["burst_1"]).tier == group_of(first, p["burst_1"]).tier
    # A cache from before verification: vectors, no pictures. The photos in
    # candidate pairs are decoded once more, the verdicts are the same.
    with sqlite3.connect(config.db_path) as conn:
        conn.execute("DELETE FROM pictures")
        conn.execute("DELETE FROM pair_evidence")
    os.remove(tmp_path / "lib" / "coffee_turned.jpg")
    calls.clear()
    third = scan(config, lite0)
    assert calls
    assert [(g.tier, g.reason) for g in third.groups] == [(g.tier, g.reason)
                                                          for g in first.groups]
    with sqlite3.connect(config.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM pictures").fetchone()[0] >= 4


def test_a_file_changed_in_place_loses_its_picture_and_evidence(tmp_path, lite0):
    p = make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    scan(config, lite0)
    with sqlite3.connect(config.db_path) as conn:
        (file_id,) = conn.execute("SELECT id FROM files WHERE path = ?",
                                  (os.fsencode(p["coffee_edit"]),)).fetchone()
        assert conn.execute("SELECT count(*) FROM pair_evidence WHERE file_a = ? OR file_b = ?",
                            (file_id, file_id)).fetchone()[0] == 1
    Image.open(SAMPLES / "Holiday" / "IMG_0003.jpg").save(p["coffee_edit"])  # another photo
    result = scan(config, lite0)
    assert not any(p["coffee_edit"] in {m.path for m in g.members} for g in result.groups)
    with sqlite3.connect(config.db_path) as conn:
        rows = conn.execute("SELECT count(*) FROM pair_evidence WHERE file_a = ? OR file_b = ?",
                            (file_id, file_id)).fetchone()[0]
        assert rows == 0  # its old pair was dropped with its vector; no new pair to verify


def test_verification_reports_progress(tmp_path, lite0):
    make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    events = list(run_scan(config, backbone=lite0))
    verify = [e for e in events if isinstance(e, Progress) and e.phase == "verify"]
    assert verify and verify[-1].done == verify[-1].total >= 2
    assert "verify" in events[-1].stats.timings
    # The share of work done (features weigh more than pairs) only grows,
    # and the last block ends it, give or take photos whose pairs were
    # all spared (their features never made).
    shares = [e.share for e in verify[1:]]
    assert all(s is not None for s in shares)
    assert shares == sorted(shares) and 0.5 < shares[-1] <= 1.0


def test_the_embedding_samples_what_verification_features_cost_here(tmp_path, lite0,
                                                                     monkeypatch):
    """While the model runs, a photo's features are timed now and then, so
    the time left counts this machine's pace (the first sample, which
    starts OpenCV, is not counted)."""
    monkeypatch.setattr(embed_step, "FEATURE_SAMPLE_EVERY", 1)
    make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"),
                        batch_size=1)
    embed = [e for e in run_scan(config, backbone=lite0)
             if isinstance(e, Progress) and e.phase == "embed" and e.done]
    costs = [e.feature_cost_s for e in embed]
    assert costs[:2] == [None, None] and all(c is not None and 0 < c < 5 for c in costs[2:])
    assert len(costs) == 5


def test_the_share_of_verification_done_weighs_photos_and_pairs_by_their_measured_cost():
    clock = verify_step._WorkClock()
    share = verify_step._WorkShare()
    assert share.of(clock, photos_left=100, pairs_left=500) == 0.0  # nothing timed yet
    # 10 photos' features took 0.2 s and 20 pairs 0.02 s: a photo costs 20
    # pairs here, so 100 photos and 500 pairs left are 2.5 s of work.
    clock.features, clock.feature_seconds = 10, 0.2
    clock.pairs, clock.pair_seconds = 20, 0.02
    assert share.of(clock, 100, 500) == pytest.approx(0.22 / (0.22 + 2.0 + 0.5))
    # Pairs turn out dearer (the copies' pixel checks): more left than
    # thought, but the share shown does not go back.
    before = share.of(clock, 100, 500)
    clock.pairs, clock.pair_seconds = 21, 0.2
    assert share.of(clock, 100, 500) == before
    assert share.of(clock, 0, 0) == 1.0


def _graph(tiers: list[int], cosines: list[float]) -> SimilarityGraph:
    """Three contents in a chain of pairs 0-1, 1-2, 0-2 (digests "a", "b", "c")."""
    paths = ["/p/a.jpg", "/p/b.jpg", "/p/c.jpg"]
    table = ContentTable(paths, [10, 20, 30], [0, 0, 0], [0, 1, 2, 3], [100] * 3, [100] * 3,
                         ["a", "b", "c"])
    pairs = np.array([[0, 1], [1, 2], [0, 2]][:len(tiers)])
    return SimilarityGraph("efficientnet-lite0", table, pairs,
                           np.array(cosines, np.float32), np.array(tiers, np.int8),
                           tuple(f"reason {n}" for n in range(len(tiers))), np.full(3, np.nan))


def test_pairs_not_verified_as_the_same_never_group_however_similar():
    graph = _graph([NOT_SAME, UNVERIFIED, NOT_SAME], [0.99, 0.99, 0.99])
    assert groups_at(graph, 80) == ()


def test_a_similar_shot_of_copies_joins_them_all_in_a_similar_shot_group():
    # a and b are one picture; c is another shot of it.
    graph = _graph([NEAR_DUPLICATE, SIMILAR_SHOT, SIMILAR_SHOT], [0.95, 0.9, 0.91])
    near, shots = sorted(groups_at(graph, 80), key=lambda g: g.tier)
    assert near.tier == "near_duplicate" and near.reason == "reason 0"
    assert {m.path for m in near.members} == {"/p/a.jpg", "/p/b.jpg"}
    assert shots.tier == "similar_shot" and shots.reason.startswith("reason 2")  # the closer
    assert {m.path for m in shots.members} == {"/p/a.jpg", "/p/b.jpg", "/p/c.jpg"}
    graph = _graph([SIMILAR_SHOT, NOT_SAME], [0.95, 0.9])
    (group,) = groups_at(graph, 80)
    assert group.tier == "similar_shot" and not group.deletable


@pytest.mark.parametrize("tier", [NEAR_DUPLICATE, SIMILAR_SHOT])
def test_a_new_copy_of_two_photos_set_apart_joins_one_of_them_not_both(tier):
    """a and c were called "Not duplicates"; b, new, matches both. The group
    came back with a and c inside (the review issue): now b joins the more
    similar, c, and a stays out, in either tier."""
    graph = _graph([tier, tier, tier], [0.90, 0.95, 0.92])
    (group,) = groups_at(graph, 80, [frozenset({"a", "c"})])
    assert {m.path for m in group.members} == {"/p/b.jpg", "/p/c.jpg"}
    assert len(groups_at(graph, 80)) == 1 and len(groups_at(graph, 80)[0].members) == 3


def test_text_report_names_each_groups_reason(tmp_path, lite0):
    make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    result = scan(config, lite0)
    out = io.StringIO()
    write_text(result, out)
    for group in result.groups:
        assert group.reason in out.getvalue()


def test_pairs_are_verified_in_an_order_that_keeps_few_photos_in_memory():
    """A chain of photos 0-1-2-...-29, its pairs given shuffled: in the
    local order each photo's pairs come together, so at most a handful of
    photos' features are alive at once (in the order of similarity a photo
    lived from its first pair to its last: most of a library at once)."""
    from imgdedupe.core.scan.verify_step import local_order

    rng = np.random.default_rng(0)
    chain = np.array([[n, n + 1] for n in range(29)] + [[n, n + 2] for n in range(28)])
    pairs = chain[rng.permutation(len(chain))] + 1000  # file ids, not row numbers
    order = local_order(pairs)
    assert sorted(order) == list(range(len(pairs)))
    uses = [f for row in order for f in pairs[row]]
    last = {f: n for n, f in enumerate(uses)}
    alive, peak = set(), 0
    for n, f in enumerate(uses):
        alive.add(f)
        peak = max(peak, len(alive))
        if last[f] == n:
            alive.discard(f)
    assert peak <= 5
    assert local_order(np.zeros((0, 2), dtype=np.int64)) == []



def test_past_the_cap_the_photo_needed_last_is_let_go_and_the_verdicts_stay(
        tmp_path, lite0, monkeypatch):
    """A tangled library held thousands of photos' features at once; past
    MAX_HELD the photo needed last is let go and made again in its turn.
    Crops of three photos, verified two pairs a block with room for two
    photos: the same groups as with room for all, some features made twice."""
    root = tmp_path / "lib"
    root.mkdir()
    for name in ("Holiday/IMG_0001.jpg", "Holiday/IMG_0002.jpg", "Phone/PXL_20230814_093012.jpg"):
        photo = Image.open(SAMPLES / name).convert("RGB")
        w, h = photo.size
        for n, (left, top) in enumerate(((0, 0), (w // 10, 0), (0, h // 10), (w // 12, h // 12))):
            photo.crop((left, top, left + w * 8 // 10, top + h * 8 // 10)).save(
                root / f"{Path(name).stem}_{n}.jpg", quality=90)
    made: list[int] = []
    held_after: list[int] = []
    real_features, real_let_go = verify_step._Pictures.features, verify_step._Pictures.let_go

    def features(self, file):  # noqa: ANN001, ANN202
        made.append(file)
        return real_features(self, file)

    def let_go(self, limit, rank):  # noqa: ANN001, ANN202
        gone = real_let_go(self, limit, rank)
        held_after.append(len(self._features))
        return gone

    monkeypatch.setattr(verify_step._Pictures, "features", features)
    monkeypatch.setattr(verify_step._Pictures, "let_go", let_go)
    monkeypatch.setattr(verify_step, "BLOCK", 2)
    unbounded = scan(ScanConfig(roots=(str(root),), db_path=str(tmp_path / "a.db")), lite0)
    assert len(made) == len(set(made)) == 12  # room for all: each photo's features once
    made.clear()
    held_after.clear()
    monkeypatch.setattr(verify_step, "MAX_HELD", 2)
    bounded = scan(ScanConfig(roots=(str(root),), db_path=str(tmp_path / "b.db")), lite0)
    assert max(held_after) <= 2
    assert len(made) > len(set(made)) == 12  # some made again after being let go
    def shown(result: ScanResult) -> list:  # noqa: ANN202
        return sorted((g.tier, g.reason, sorted(m.path for m in g.members))
                      for g in result.groups)

    assert shown(bounded) == shown(unbounded)
    assert {g.tier for g in unbounded.groups} == {"near_duplicate"} and len(unbounded.groups) == 3

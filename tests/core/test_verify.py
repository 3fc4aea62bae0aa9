"""verify: evidence that two photos are the same picture, and its tier.

Real photos (the bundled samples) with generated edits: every edit of one
photo must be a near-duplicate, different photos must not be grouped at
any tier, and capture times that differ make a copy a similar shot.
"""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from imgdedupe.core.images.preprocess import (
    decode_for_network,
    picture_pixels,
    verification_picture,
)
from imgdedupe.core.verify.evidence import (
    MIN_MATCHES,
    RATIO,
    PairEvidence,
    _matches,
    _pixels_changed,
    compare,
)
from imgdedupe.core.verify.features import extract
from imgdedupe.core.verify.tiers import Verdict, judge

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
ROCKET = SAMPLES / "Holiday" / "IMG_0001.jpg"
COFFEE = SAMPLES / "Holiday" / "IMG_0002.jpg"
CAT = SAMPLES / "Phone" / "PXL_20230814_093012.jpg"
CAMERAMAN = SAMPLES / "Archive" / "cameraman_1988.jpg"
COSINE = 0.8  # a candidate's: verification decides, not the cosine


def _verdict(path_a: Path, path_b: Path, taken_a: float | None = None,
             taken_b: float | None = None) -> Verdict:
    """As the scan will: from the network input of each file."""
    greys = [picture_pixels(verification_picture(decode_for_network(str(p)).array))
             for p in (path_a, path_b)]
    a, b = (extract(g) for g in greys)
    return judge(compare(a, b, *greys), COSINE, taken_a, taken_b)


def _edited(source: Path, out: Path, edit: str) -> Path:
    with Image.open(source) as im:
        im = im.convert("RGB")
        w, h = im.size
        if edit == "resized_reencoded":
            im = im.resize((w // 2, h // 2), Image.Resampling.LANCZOS)
            im.save(out, quality=60)
            return out
        if edit == "cropped":
            im = im.crop((w // 6, h // 6, w - w // 8, h - h // 8))
        elif edit == "turned":
            im = im.transpose(Image.Transpose.ROTATE_90)
        elif edit == "brightened":
            im = ImageEnhance.Brightness(im).enhance(1.3)
        elif edit == "greyed":
            im = im.convert("L").convert("RGB")
        elif edit == "bordered":
            framed = Image.new("RGB", (w + w // 5, h + h // 5), (255, 255, 255))
            framed.paste(im, (w // 10, h // 10))
            im = framed
        im.save(out, quality=90)
    return out


@pytest.mark.parametrize("edit", ["resized_reencoded", "cropped", "turned", "brightened",
                                  "greyed", "bordered"])
@pytest.mark.parametrize("photo", [ROCKET, COFFEE, CAT])
def test_every_edit_of_a_photo_is_a_near_duplicate(tmp_path, photo, edit):
    verdict = _verdict(photo, _edited(photo, tmp_path / f"{edit}.jpg", edit))
    assert verdict.tier == "near_duplicate", verdict.reason
    assert verdict.reason.startswith("same picture: ")
    assert int(verdict.reason.split()[2]) >= 8  # "same picture: N keypoints agree..."


def test_the_reason_names_the_edit(tmp_path):
    cropped = _edited(COFFEE, tmp_path / "c.jpg", "cropped")
    assert "a crop or border" in _verdict(COFFEE, cropped).reason
    assert "quarter turn" in _verdict(CAT, _edited(CAT, tmp_path / "t.jpg", "turned")).reason


@pytest.mark.parametrize("pair", [(ROCKET, COFFEE), (CAT, CAMERAMAN), (COFFEE, CAT),
                                  (ROCKET, CAMERAMAN)])
def test_different_photos_are_not_grouped_at_any_tier(pair):
    verdict = _verdict(*pair)
    assert verdict.tier == "none", verdict.reason


def test_a_copy_taken_at_another_moment_is_a_similar_shot_at_most(tmp_path):
    copy = _edited(ROCKET, tmp_path / "copy.jpg", "brightened")
    assert _verdict(ROCKET, copy, 1000.0, 1000.0).tier == "near_duplicate"  # one moment
    burst = _verdict(ROCKET, copy, 1000.0, 1000.8)  # a tripod burst: different moments
    assert burst.tier == "similar_shot"
    assert burst.reason == "similar shot: the same view taken 0.8 s apart"
    assert _verdict(ROCKET, copy, None, 1000.0).tier == "near_duplicate"  # pixels decide


def test_photos_seconds_apart_with_a_high_cosine_are_a_similar_shot():
    # Two different pictures by their pixels, taken 3 s apart: a second take.
    verdict = _verdict(COFFEE, CAT, 50.0, 53.0)
    assert verdict == Verdict("similar_shot", "similar shot: taken 3.0 s apart")
    assert _verdict(COFFEE, CAT, 50.0, 500.0).tier == "none"  # minutes apart


def test_a_picture_without_keypoints_gives_no_evidence():
    flat = np.full((224, 224), 128, dtype=np.uint8)
    features = extract(flat)
    assert len(features) == 0
    verdict = judge(compare(features, features, flat, flat), 0.99)
    assert verdict.tier == "none"


def _grey(path: Path) -> np.ndarray:
    return picture_pixels(verification_picture(decode_for_network(str(path)).array))


@pytest.mark.parametrize("pair", [(ROCKET, "cropped"), (ROCKET, COFFEE), (CAT, "turned")])
def test_the_matcher_keeps_exactly_opencvs_ratio_test_matches_both_ways(tmp_path, pair):
    """The matrix-product matcher is an optimisation of OpenCV's brute-force
    k=2 matcher with Lowe's ratio test, run A to B and B to A: the same
    matches, not similar ones, and the same whichever photo comes first."""
    import cv2

    first, second = pair
    if isinstance(second, str):
        second = _edited(first, tmp_path / "edited.jpg", second)
    a, b = extract(_grey(first)), extract(_grey(second))

    def one_way(x, y):  # noqa: ANN001, ANN202
        return {(m.queryIdx, m.trainIdx) for m, n in cv2.BFMatcher(cv2.NORM_L2).knnMatch(
            x.vectors, y.vectors, k=2) if m.distance < RATIO * n.distance}

    expected = sorted(one_way(a, b) | {(q, t) for t, q in one_way(b, a)})
    found, swapped = _matches(a, b), _matches(b, a)
    if len(expected) < MIN_MATCHES:
        assert found is None and swapped is None
        return
    assert found is not None and swapped is not None

    def as_set(points_a, points_b):  # noqa: ANN001, ANN202
        return {tuple(row) for row in np.hstack([points_a, points_b]).tolist()}

    want = as_set(a.points[[q for q, _ in expected]], b.points[[t for _, t in expected]])
    assert len(found[0]) == len(expected)
    assert as_set(*found) == want
    assert as_set(swapped[1], swapped[0]) == want


@pytest.mark.parametrize("pair", [(ROCKET, "cropped"), (ROCKET, COFFEE), (CAT, "turned")])
def test_a_pairs_evidence_and_verdict_do_not_depend_on_which_photo_comes_first(tmp_path,
                                                                              pair):
    first, second = pair
    if isinstance(second, str):
        second = _edited(first, tmp_path / "edited.jpg", second)
    grey_a, grey_b = _grey(first), _grey(second)
    a, b = extract(grey_a), extract(grey_b)
    forward, backward = compare(a, b, grey_a, grey_b), compare(b, a, grey_b, grey_a)
    assert astuple(backward) == pytest.approx(astuple(forward.reversed()))
    assert judge(forward, 0.9).tier == judge(backward, 0.9).tier
    assert astuple(forward.reversed().reversed()) == pytest.approx(astuple(forward))


def test_reversed_evidence_is_the_inverse_fit():
    quarter = PairEvidence(30, 2.0, 0.5, 1.0, 90.0, 0.01, 0.9, 0.8, 0, 0.01)
    back = quarter.reversed()
    assert (back.s1, back.s2, back.determinant, back.turn) == (2.0, 0.5, 1.0, -90.0)
    assert back.inliers == 30 and back.changed == 0.01 and back.framing == 0.8
    mirrored = PairEvidence(30, 1.0, 1.0, -1.0, 30.0).reversed()
    assert mirrored.determinant == -1.0 and mirrored.turn == 150.0
    assert PairEvidence().reversed() == PairEvidence()


def test_the_pixel_check_fits_gain_and_offset_as_least_squares_does():
    """A brightness and contrast edit (gain 0.7, offset 40) leaves nothing
    changed (the closed-form fit finds what least squares finds); content
    moved over a quarter of the picture is found, in the whole-picture and
    in the per-block share alike."""
    grey = _grey(COFFEE).astype(np.float32)  # textured all over: a moved patch shows
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    edited = np.clip(grey * 0.7 + 40, 0, 255).astype(np.uint8)
    changed, covered, local = _pixels_changed(grey.astype(np.uint8), edited, identity)
    assert changed < 0.01 and local < 0.01 and covered > 0.9
    patched = edited.copy()
    patched[:112, :112] = np.roll(patched, (60, 90), axis=(0, 1))[:112, :112]  # moved content
    changed, _, local = _pixels_changed(grey.astype(np.uint8), patched, identity)
    assert 0.05 < changed < 0.3 and 0.05 < local < 0.3

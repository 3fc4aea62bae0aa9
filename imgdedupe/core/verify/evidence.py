"""What two pictures' keypoints and pixels say: one robust affine fit of
the matches, and how much of the overlap still differs after it.

A copy of a photo (re-encoded, resized, cropped, recoloured, turned, the
224 input squashed either way) is one affine transform of the original:
many matches agree with one fit, and once warped the pixels agree too,
after one gain and offset for brightness and contrast edits. Two photos of
the same kind (two watches, two faces) share few consistent matches, and
their pixels differ wherever the fit puts them together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgdedupe.core.verify.features import Features, opencv

RATIO = 0.8  # Lowe's ratio test
MIN_MATCHES = 6
# MAGSAC++ copes with the many wrong matches between two photos of a kind;
# 3 px on a 224 frame.
REPROJECTION_PX = 3.0
MAX_ITERATIONS = 2000
CONFIDENCE = 0.995
# The pixel check: grey levels still off by more than this after a gain and
# offset fit count as changed; the overlap's rim (interpolation) and fine
# noise (JPEG, resampling) do not.
CHANGED_GREY = 25
RIM_PX = 5
BLUR_SIGMA = 1.5


@dataclass(frozen=True)
class PairEvidence:
    """``inliers`` of the affine fit (0: none), the singular values ``s1 >=
    s2`` and determinant of its 2x2 part (negative: a mirrored copy),
    ``changed``: share of the overlap whose pixels differ, ``overlap``: share
    of the smaller picture the other covers, ``framing``: share of the
    larger one both show (below 1: a crop or a border), ``homography_inliers``: a
    perspective fit's, for another viewpoint of one scene; ``turn``: the
    fit's rotation in degrees (-180, 180]."""

    inliers: int = 0
    s1: float = 0.0
    s2: float = 0.0
    determinant: float = 0.0
    turn: float = 0.0
    changed: float = 1.0
    overlap: float = 0.0
    framing: float = 0.0
    homography_inliers: int = 0


def compare(a: Features, b: Features, grey_a: np.ndarray, grey_b: np.ndarray) -> PairEvidence:
    """The evidence for one candidate pair."""
    matched = _matches(a, b)
    if matched is None:
        return PairEvidence()
    points_a, points_b = matched
    cv = opencv()
    affine, inliers = cv.estimateAffine2D(
        points_a, points_b, method=cv.USAC_MAGSAC, ransacReprojThreshold=REPROJECTION_PX,
        maxIters=MAX_ITERATIONS, confidence=CONFIDENCE)
    homography, homography_inliers = cv.findHomography(
        points_a, points_b, cv.USAC_MAGSAC, REPROJECTION_PX, maxIters=MAX_ITERATIONS,
        confidence=CONFIDENCE)
    h_count = 0 if homography is None or homography_inliers is None \
        else int(homography_inliers.sum())
    if affine is None or inliers is None:
        return PairEvidence(homography_inliers=h_count)
    s1, s2 = (float(s) for s in np.linalg.svd(affine[:, :2], compute_uv=False))
    determinant = float(np.linalg.det(affine[:, :2]))
    (a, b), (c, d) = affine[:, :2].tolist()
    # The rotation part, also of a squashed picture's turn: a quarter turn
    # keeps a + d at 0 whatever the two pictures' aspect ratios.
    turn = float(np.degrees(np.arctan2(c - b, a + d)))
    changed, covered = _pixels_changed(grey_a, grey_b, affine)
    # A crop blown up to 224 covers little of the original, but the
    # original covers all of it: the smaller picture's share is covered x |det|.
    overlap = min(1.0, max(covered, covered * abs(determinant)))
    framing = min(1.0, covered, covered * abs(determinant))
    return PairEvidence(int(inliers.sum()), s1, s2, determinant, turn, changed, overlap,
                        framing, h_count)


def _matches(a: Features, b: Features) -> tuple[np.ndarray, np.ndarray] | None:
    if len(a) < 3 or len(b) < 3:
        return None
    cv = opencv()
    knn = cv.BFMatcher(cv.NORM_L2).knnMatch(a.descriptors.astype(np.float32),
                                            b.descriptors.astype(np.float32), k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(good) < MIN_MATCHES:
        return None
    return a.points[[m.queryIdx for m in good]], b.points[[m.trainIdx for m in good]]


def _pixels_changed(grey_a: np.ndarray, grey_b: np.ndarray, affine: np.ndarray
                    ) -> tuple[float, float]:
    """(share of A's overlap off by > CHANGED_GREY after a gain/offset fit,
    share of A that B covers), B warped onto A by the A -> B ``affine``."""
    cv = opencv()
    h, w = grey_a.shape
    flags = cv.INTER_LINEAR | cv.WARP_INVERSE_MAP
    warped = cv.warpAffine(grey_b.astype(np.float32), affine, (w, h), flags=flags,
                           borderMode=cv.BORDER_CONSTANT, borderValue=-1)
    mask = cv.warpAffine(np.ones_like(grey_b, np.float32), affine, (w, h),
                         flags=cv.INTER_NEAREST | cv.WARP_INVERSE_MAP) > 0.5
    mask = cv.erode(mask.astype(np.uint8), np.ones((RIM_PX, RIM_PX), np.uint8)) > 0
    if mask.sum() < 100:
        return 1.0, 0.0
    a = cv.GaussianBlur(grey_a.astype(np.float32), (0, 0), BLUR_SIGMA)[mask]
    b = cv.GaussianBlur(np.where(warped < 0, 0, warped), (0, 0), BLUR_SIGMA)[mask]
    design = np.stack([b, np.ones_like(b)], axis=1)
    gain_offset, *_ = np.linalg.lstsq(design, a, rcond=None)
    return float((np.abs(a - design @ gain_offset) > CHANGED_GREY).mean()), float(mask.mean())

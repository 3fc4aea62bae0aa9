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

from collections.abc import Callable
from dataclasses import astuple, dataclass, replace

import numpy as np

from imgdedupe.core.verify.features import Features, opencv

# Bump when the evidence of a pair changes (features, matching, fitting,
# the pixel check): stored evidence of another version is computed again.
EVIDENCE_VERSION = 6  # 2: the tonal check (local_changed); 3: SIFT at 160 px;
# 4: SIFT on the photo's own aspect ratio; 5: matches both ways, pixels
# compared in the less detailed picture's frame; 6: a pair compared in an
# order of its own content
RATIO = 0.8  # Lowe's ratio test
# Below this many matches no rule of verify.tiers can be met (the least
# asks for 8 inliers): no fit is tried.
MIN_MATCHES = 8
# The perspective fit only matters to verify.tiers at this many inliers
# (VIEWPOINT_INLIERS there); a pair with fewer matches cannot reach it,
# and is spared the second robust fit (most candidate pairs).
HOMOGRAPHY_FROM = 120
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
# The tonal check fits gain and offset per block of this side: a recoloured
# background, a vignette or a local colour grade is explained block by
# block, while a moved arm or another face is not.
BLOCK_PX = 28


@dataclass(frozen=True)
class PairEvidence:
    """``inliers`` of the affine fit (0: none), the singular values ``s1 >=
    s2`` and determinant of its 2x2 part (negative: a mirrored copy),
    ``changed``: share of the overlap whose pixels differ, ``overlap``: share
    of the smaller picture the other covers, ``framing``: share of the
    larger one both show (below 1: a crop or a border), ``homography_inliers``: a
    perspective fit's, for another viewpoint of one scene; ``turn``: the
    fit's rotation in degrees (-180, 180]; ``local_changed``: like
    ``changed`` after a gain and offset fit per 28-pixel block (tonal edits
    explained away, moved content not)."""

    inliers: int = 0
    s1: float = 0.0
    s2: float = 0.0
    determinant: float = 0.0
    turn: float = 0.0
    changed: float = 1.0
    overlap: float = 0.0
    framing: float = 0.0
    homography_inliers: int = 0
    local_changed: float = 1.0

    def reversed(self) -> PairEvidence:
        """The same evidence seen from the other photo: the inverse fit's
        singular values, determinant and turn; the rest is the pair's."""
        if self.s1 <= 0 or self.s2 <= 0 or not self.determinant:
            return self  # no fit: nothing here depends on the direction
        # The inverse of a 2x2 [[a, b], [c, d]] is [[d, -b], [-c, a]] / det:
        # its turn is minus this one, or 180 minus it for a mirrored fit.
        turn = -self.turn if self.determinant > 0 else 180.0 - self.turn
        turn = 180.0 - (180.0 - turn) % 360.0  # into (-180, 180]
        return replace(self, s1=1.0 / self.s2, s2=1.0 / self.s1,
                       determinant=1.0 / self.determinant, turn=turn)

    def to_bytes(self) -> bytes:
        """For the cache (storage.verification_rows)."""
        return np.asarray(astuple(self), dtype="<f8").tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> PairEvidence:
        v = np.frombuffer(blob, dtype="<f8").tolist()
        return cls(int(v[0]), v[1], v[2], v[3], v[4], v[5], v[6], v[7], int(v[8]), v[9])


Grey = np.ndarray | Callable[[], np.ndarray]


def compare(a: Features, b: Features, grey_a: Grey, grey_b: Grey) -> PairEvidence:
    """The evidence for one candidate pair, A -> B. A grey picture may be
    given as a function that makes it: only the pairs that pass the fit
    need pixels (13% of Caltech's), and a scan keeps thousands of photos'
    features, not their decoded pictures.

    The two are compared in an order of their own content, whichever was
    given first (the scan gives them in the order their files were found),
    so a verdict never depends on that order: even matched both ways and
    pixel-checked in one frame, a robust fit measured in one picture's
    pixels left 3 of 345 held-out copies with another verdict the other
    way round (docs/quality.md)."""
    if _content_order(b) < _content_order(a):
        return _compare(b, a, grey_b, grey_a).reversed()
    return _compare(a, b, grey_a, grey_b)


def _content_order(features: Features) -> tuple[int, bytes]:
    return len(features), features.vectors.tobytes()


def _compare(a: Features, b: Features, grey_a: Grey, grey_b: Grey) -> PairEvidence:
    matched = _matches(a, b)
    if matched is None:
        return PairEvidence()
    points_a, points_b = matched
    cv = opencv()
    affine, inliers = cv.estimateAffine2D(
        points_a, points_b, method=cv.USAC_MAGSAC, ransacReprojThreshold=REPROJECTION_PX,
        maxIters=MAX_ITERATIONS, confidence=CONFIDENCE)
    h_count = 0
    if len(points_a) >= HOMOGRAPHY_FROM:
        homography, homography_inliers = cv.findHomography(
            points_a, points_b, cv.USAC_MAGSAC, REPROJECTION_PX, maxIters=MAX_ITERATIONS,
            confidence=CONFIDENCE)
        if homography is not None and homography_inliers is not None:
            h_count = int(homography_inliers.sum())
    if affine is None or inliers is None:
        return PairEvidence(homography_inliers=h_count)
    s1, s2 = (float(s) for s in np.linalg.svd(affine[:, :2], compute_uv=False))
    determinant = float(np.linalg.det(affine[:, :2]))
    (a, b), (c, d) = affine[:, :2].tolist()
    # The rotation part, also of a squashed picture's turn: a quarter turn
    # keeps a + d at 0 whatever the two pictures' aspect ratios.
    turn = float(np.degrees(np.arctan2(c - b, a + d)))
    count = int(inliers.sum())
    if count < MIN_MATCHES:  # no rule of verify.tiers can be met: spare the pixel check
        return PairEvidence(count, s1, s2, determinant, turn, homography_inliers=h_count)
    # The pixels are compared in the frame of the picture that shows the
    # overlap in less detail, the other warped down onto it: warped up, a
    # small copy's blur counted as change, and the verdict depended on which
    # photo came first (docs/quality.md).
    if abs(determinant) < 1.0 - 1e-6 and abs(determinant) > 1e-6:
        changed, covered, local_changed = _pixels_changed(
            _grey(grey_b), _grey(grey_a), cv.invertAffineTransform(affine))
        scale = 1.0 / abs(determinant)  # the B -> A fit's
    else:
        changed, covered, local_changed = _pixels_changed(_grey(grey_a), _grey(grey_b), affine)
        scale = abs(determinant)
    # A crop blown up to 224 covers little of the original, but the
    # original covers all of it: the smaller picture's share is covered x |det|.
    overlap = min(1.0, max(covered, covered * scale))
    framing = min(1.0, covered, covered * scale)
    return PairEvidence(count, s1, s2, determinant, turn, changed, overlap, framing, h_count,
                        local_changed)


def _grey(picture: Grey) -> np.ndarray:
    return picture() if callable(picture) else picture


def _matches(a: Features, b: Features) -> tuple[np.ndarray, np.ndarray] | None:
    """Lowe's ratio test on the two nearest neighbours of each descriptor
    in the other picture, both ways: a match that passes either way is
    kept, once. One way only (A's descriptors looked up in B) made a pair's
    evidence depend on which photo came first, i.e. on the order files were
    found: 39 against 77 agreeing keypoints for one sepia copy, and 14 of
    345 held-out copies changed verdict when the pair was reversed
    (docs/quality.md). Distances by one matrix product, |a - b|^2 = |a|^2 +
    |b|^2 - 2ab; the same matches one way as OpenCV's brute-force matcher
    (tests/core/test_verify.py)."""
    if len(a) < 3 or len(b) < 3:
        return None
    distances = a.vectors.astype(np.float32) @ b.vectors.astype(np.float32).T
    distances *= -2.0  # in place: a pair's 300 x 300 temporaries cost more than the product
    distances += a.squared_norms[:, None]
    distances += b.squared_norms[None, :]
    np.maximum(distances, 0.0, out=distances)
    forward = _ratio_tested(distances)  # (A row, its B match)
    backward = _ratio_tested(distances.T)  # (B row, its A match)
    width = len(b)
    kept = np.unique(np.concatenate([forward[:, 0] * width + forward[:, 1],
                                     backward[:, 1] * width + backward[:, 0]]))
    if len(kept) < MIN_MATCHES:
        return None
    return a.points[kept // width], b.points[kept % width]


def _ratio_tested(distances: np.ndarray) -> np.ndarray:
    """(row, column) of each row's nearest column that passes the ratio
    test against its second nearest; ``distances`` squared. The matrix is
    changed in place and given back as it was."""
    rows = np.arange(distances.shape[0])
    nearest = distances.argmin(axis=1)
    first = distances[rows, nearest].copy()
    distances[rows, nearest] = np.inf
    second = distances.min(axis=1)
    distances[rows, nearest] = first
    # sqrt(first) < RATIO * sqrt(second), without the roots
    good = np.flatnonzero(first < (RATIO * RATIO) * second)
    return np.stack([good, nearest[good]], axis=1)


def _pixels_changed(grey_a: np.ndarray, grey_b: np.ndarray, affine: np.ndarray
                    ) -> tuple[float, float, float]:
    """(share of A's overlap off by > CHANGED_GREY after a gain/offset fit,
    share of A that B covers, the same share after a fit per block), B
    warped onto A by the A -> B ``affine``."""
    cv = opencv()
    h, w = grey_a.shape
    flags = cv.INTER_LINEAR | cv.WARP_INVERSE_MAP
    warped = cv.warpAffine(grey_b.astype(np.float32), affine, (w, h), flags=flags,
                           borderMode=cv.BORDER_CONSTANT, borderValue=-1)
    mask = cv.warpAffine(np.ones_like(grey_b, np.float32), affine, (w, h),
                         flags=cv.INTER_NEAREST | cv.WARP_INVERSE_MAP) > 0.5
    mask = cv.erode(mask.astype(np.uint8), np.ones((RIM_PX, RIM_PX), np.uint8)) > 0
    if mask.sum() < 100:
        return 1.0, 0.0, 1.0
    blurred_a = cv.GaussianBlur(grey_a.astype(np.float32), (0, 0), BLUR_SIGMA)
    blurred_b = cv.GaussianBlur(np.where(warped < 0, 0, warped), (0, 0), BLUR_SIGMA)
    a, b = blurred_a[mask].astype(np.float64), blurred_b[mask].astype(np.float64)
    # The least-squares gain and offset in closed form (a 2x2 system;
    # numpy's lstsq took 2 ms of a pair's 5).
    mean_a, mean_b = a.mean(), b.mean()
    var_b = float(np.mean(b * b) - mean_b * mean_b)
    gain = float(np.mean(a * b) - mean_a * mean_b) / var_b if var_b > 1e-9 else 0.0
    offset = mean_a - gain * mean_b
    changed = float((np.abs(a - gain * b - offset) > CHANGED_GREY).mean())
    return changed, float(mask.mean()), _blockwise_changed(blurred_a, blurred_b, mask)


def _blockwise_changed(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Share of the overlap off by > CHANGED_GREY after a least-squares
    gain and offset per BLOCK_PX block (a block's own fit, from its masked
    pixels' sums; a flat block keeps gain 1)."""
    h, w = a.shape
    rows, cols = h // BLOCK_PX, w // BLOCK_PX
    crop = (slice(0, rows * BLOCK_PX), slice(0, cols * BLOCK_PX))

    def blocks(x: np.ndarray) -> np.ndarray:
        return x[crop].reshape(rows, BLOCK_PX, cols, BLOCK_PX).swapaxes(1, 2).reshape(
            rows, cols, -1)

    weight = blocks(mask).astype(np.float32)
    pa, pb = blocks(a).astype(np.float32), blocks(b).astype(np.float32)
    xa, xb = pa * weight, pb * weight
    n = np.maximum(weight.sum(-1, dtype=np.float64), 1.0)
    mean_a, mean_b = xa.sum(-1, dtype=np.float64) / n, xb.sum(-1, dtype=np.float64) / n
    var_b = np.einsum("ijk,ijk->ij", xb, pb, dtype=np.float64) / n - mean_b ** 2
    cov = np.einsum("ijk,ijk->ij", xa, pb, dtype=np.float64) / n - mean_a * mean_b
    gain = np.where(var_b > 4.0, cov / np.maximum(var_b, 1e-9), 1.0)
    offset = mean_a - gain * mean_b
    residual = np.abs(pa - gain[..., None].astype(np.float32) * pb
                      - offset[..., None].astype(np.float32))
    off = (residual > CHANGED_GREY) & (weight > 0)
    return float(off.sum() / max(1.0, float(weight.sum())))

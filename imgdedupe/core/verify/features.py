"""SIFT keypoints of the picture the scan already decoded.

The verification picture is the grey version of the 224x224 network input:
the decode pool has it in hand, so nothing is decoded twice. SIFT beat ORB
and larger pictures on wrong links per pair found (docs/verification.md);
contrastThreshold 0.01, not OpenCV's 0.04, because a 224 picture is small
and flat studio shots (and a dark storm photo of the dev set) otherwise
give too few keypoints. OpenCV is imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

MAX_KEYPOINTS = 500
CONTRAST_THRESHOLD = 0.01
# SIFT runs on the picture shrunk to this side: SIFT doubles its input
# first, so at 224 it built a 448 pyramid and took 28 ms a photo (with
# ~430 keypoints); at 160, 12 ms and ~300 keypoints, which also halves
# the matching (docs/quality.md). Positions are given back at 224.
FEATURE_SIDE = 160
# The short side of a long strip's picture is not made smaller than this:
# SIFT finds next to nothing on fewer rows.
MIN_SIDE = 48


@dataclass(frozen=True)
class Features:
    """One picture's keypoints: ``points`` (n, 2) float32 pixel positions,
    ``vectors`` (n, 128) uint8 SIFT descriptors (SIFT's values fit a byte:
    a quarter of float32, and a scan holds thousands of photos' features at
    once) and their ``squared_norms`` (n,) float32, for the matcher."""

    points: np.ndarray
    vectors: np.ndarray
    squared_norms: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


@cache
def opencv() -> Any:
    """OpenCV, single-threaded: per-pair work is small, threads only contend."""
    import cv2

    cv2.setNumThreads(1)
    return cv2


def extract(grey: np.ndarray, aspect: float | None = None) -> Features:
    """SIFT keypoints and descriptors of a grey picture; positions in its
    own pixels. ``aspect``: the photo's width over height, when the picture
    is the network's squashed square: SIFT then sees the photo's own
    shape (long side FEATURE_SIDE), since its descriptors do not survive a
    stretch of 2-3x along one axis, which is what squashing does to a
    phone's 9:16 crop of a 4:3 photo (held-out edits: 11 of 15 such crops
    found on the squashed picture; docs/quality.md)."""
    cv = opencv()
    height, width = grey.shape
    side_x = side_y = FEATURE_SIDE
    if aspect and aspect > 0:
        if aspect >= 1.0:
            side_y = max(MIN_SIDE, round(FEATURE_SIDE / aspect))
        else:
            side_x = max(MIN_SIDE, round(FEATURE_SIDE * aspect))
    small = cv.resize(grey, (side_x, side_y), interpolation=cv.INTER_AREA)
    sift = cv.SIFT_create(nfeatures=MAX_KEYPOINTS, contrastThreshold=CONTRAST_THRESHOLD)
    keypoints, descriptors = sift.detectAndCompute(small, None)
    points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
    # Pixel centres: SIFT's (0, 0) is the first pixel's centre at both sizes.
    points = (points + 0.5) * np.array([width / side_x, height / side_y],
                                       dtype=np.float32) - 0.5
    if descriptors is None:
        descriptors = np.zeros((0, 128), dtype=np.float32)
    norms = np.einsum("ij,ij->i", descriptors, descriptors).astype(np.float32)
    return Features(points, np.clip(descriptors, 0, 255).astype(np.uint8), norms)

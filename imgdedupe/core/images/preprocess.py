"""File -> the exact pixels the network sees.

Runs in the decode pool, so the resize happens off the model's thread too.
The whole image is squeezed to 224x224 rather than centre-cropped: a crop
would hide the borders where crops, watermarks and letterboxing differ, and
both copies of a duplicate share their aspect ratio anyway.
"""

from __future__ import annotations

import numpy as np

from imgdedupe.core.images.decode import decode_image

INPUT_SIZE = 224  # the square every backbone takes (model.backbone)
# Draft-decode JPEGs to 1.5-2x the network input: enough pixels for an
# antialiased downscale, a fraction of the full decode cost. Not a flat 2x
# (448): a 4:3 photo's short side then misses libjpeg's 1/8 scale (12 MP ->
# 500x375) and decodes at 1/4 instead, which measured 15.4 vs 11.3 ms a
# photo; on a 2-core CPU that gap decides whether the model ever waits.
DECODE_TARGET = INPUT_SIZE * 3 // 2


def decode_for_network(path: str) -> tuple[np.ndarray, int, int]:
    """Return (224x224x3 uint8 array, original width, original height)."""
    decoded = decode_image(path, target=DECODE_TARGET, squash_to=(INPUT_SIZE, INPUT_SIZE))
    return np.asarray(decoded.image, dtype=np.uint8), decoded.width, decoded.height


def rotated_by(batch: np.ndarray, quarter_turns: int) -> np.ndarray:
    """(N, H, W, 3) turned by 90 degrees ``quarter_turns`` times, contiguous."""
    return np.ascontiguousarray(np.rot90(batch, quarter_turns, axes=(1, 2)))


def with_rotations(batch: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) -> (4N, H, W, 3): upright, then 90, 180, 270 degrees."""
    return np.concatenate([rotated_by(batch, k) for k in range(4)])

"""File -> the exact pixels the network sees.

Runs in the decode pool, so the resize happens off the model's thread too.
The whole image is squeezed to 224x224 rather than centre-cropped: a crop
would hide the borders where crops, watermarks and letterboxing differ, and
both copies of a duplicate share their aspect ratio anyway.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .decode import decode_image
from .embed import INPUT_SIZE

# Draft-decode JPEGs to about twice the network input: enough pixels for a
# good downscale, a fraction of the full decode cost.
DECODE_TARGET = 2 * INPUT_SIZE


def decode_for_network(path: str) -> tuple[np.ndarray, int, int]:
    """Return (224x224x3 uint8 array, original width, original height)."""
    decoded = decode_image(path, target=DECODE_TARGET)
    image = decoded.image.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR,
                                 reducing_gap=2.0)
    return np.asarray(image, dtype=np.uint8), decoded.width, decoded.height


def with_rotations(batch: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) -> (4N, H, W, 3): upright, then 90, 180, 270 degrees."""
    return np.concatenate([np.rot90(batch, k, axes=(1, 2)) for k in range(4)])

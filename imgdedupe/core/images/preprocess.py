"""File -> the exact pixels the network sees.

Runs in the decode pool, so the resize happens off the model's thread too.
The whole image is squeezed to 224x224 rather than centre-cropped: a crop
would hide the borders where crops, watermarks and letterboxing differ, and
both copies of a duplicate share their aspect ratio anyway.
"""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np
from PIL import Image

from imgdedupe.core.images.decode import decode_image

INPUT_SIZE = 224  # the square every backbone takes (model.backbone)
# Draft-decode JPEGs to 1.5-2x the network input: enough pixels for an
# antialiased downscale, a fraction of the full decode cost. Not a flat 2x
# (448): a 4:3 photo's short side then misses libjpeg's 1/8 scale (12 MP ->
# 500x375) and decodes at 1/4 instead, which measured 15.4 vs 11.3 ms a
# photo; on a 2-core CPU that gap decides whether the model ever waits.
DECODE_TARGET = INPUT_SIZE * 3 // 2


# The verification picture (verify.features) is stored as a JPEG of this
# quality: ~13 KB a photo, a quarter of a lossless PNG, and a first scan
# verifies from the same decoded JPEG a rescan reads, so both agree.
PICTURE_QUALITY = 95
# Bump when the stored verification picture changes: old ones are then
# made again from the file.
PICTURE_VERSION = 1
PICTURE_KEY = f"grey jpeg {PICTURE_VERSION}"  # as the cache stores it


class NetworkInput(NamedTuple):
    array: np.ndarray  # (224, 224, 3) uint8
    width: int  # the original's, after EXIF orientation
    height: int
    taken: float | None  # EXIF capture time, seconds (images.capture_time)


def decode_for_network(path: str) -> NetworkInput:
    """The exact pixels the network sees, the original's size and when
    the photo was taken."""
    decoded = decode_image(path, target=DECODE_TARGET, squash_to=(INPUT_SIZE, INPUT_SIZE))
    return NetworkInput(np.asarray(decoded.image, dtype=np.uint8), decoded.width,
                        decoded.height, decoded.taken)


def verification_picture(network_input: np.ndarray) -> bytes:
    """The grey network input as the JPEG that verification reads
    (picture_pixels): made from the picture already decoded, never from
    a second decode of the file."""
    grey = Image.fromarray(np.ascontiguousarray(network_input, dtype=np.uint8)).convert("L")
    out = io.BytesIO()
    grey.save(out, format="JPEG", quality=PICTURE_QUALITY)
    return out.getvalue()


def picture_pixels(picture: bytes) -> np.ndarray:
    """A stored verification picture as a (224, 224) uint8 array."""
    with Image.open(io.BytesIO(picture)) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8)


def rotated_by(batch: np.ndarray, quarter_turns: int) -> np.ndarray:
    """(N, H, W, 3) turned by 90 degrees ``quarter_turns`` times, contiguous."""
    return np.ascontiguousarray(np.rot90(batch, quarter_turns, axes=(1, 2)))


def with_rotations(batch: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) -> (4N, H, W, 3): upright, then 90, 180, 270 degrees."""
    return np.concatenate([rotated_by(batch, k) for k in range(4)])

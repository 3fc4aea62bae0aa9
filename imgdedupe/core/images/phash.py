"""Near-exact copies in seconds: a 64-bit perceptual hash (pHash).

The CNN takes tens of milliseconds a photo on a CPU; a library of 5,000
new photos keeps it busy for minutes. Re-encoded, resized or re-saved
copies (the bulk of real duplicates after byte copies) do not need it:
they keep the coarse structure of the picture, which a perceptual hash of
the network input the decode pool already made (224 x 224, no extra
decode) captures in ~0.1 ms. Photos whose hashes differ in at most
``MAX_DISTANCE`` of 64 bits are reported as near-exact copies while the
model still runs (groups.near_exact pairs and groups them); the final scan
result is still the CNN's.

The hash is the classic pHash: grey, 32 x 32 block means, 2-D DCT, the
8 x 8 lowest frequencies against their median. A rotated copy hashes like
the original turned the same way: quarter_turn_hashes gives all four.
"""

from __future__ import annotations

import numpy as np

HASH_BITS = 64


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    matrix[0] /= np.sqrt(2.0)
    return matrix.astype(np.float32)


_DCT32 = _dct_matrix(32)
_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def perceptual_hash(image: np.ndarray) -> int:
    """64-bit pHash of an (H, W, 3) uint8 image whose sides are multiples of
    32 (the 224 x 224 network input). Deterministic: pure numpy float32."""
    return _grey_hash(image.astype(np.float32) @ _GREY)


def quarter_turn_hashes(grey: np.ndarray) -> tuple[int, int, int, int]:
    """The pHash of a grey (H, W) picture turned 0, 1, 2 and 3 quarter
    turns: a copy turned by k quarter turns hashes (almost) like the
    original turned by k. What finds rotated copies (pairs.rotated) without
    running the network on four orientations."""
    grey = grey.astype(np.float32)
    hashes = tuple(_grey_hash(np.ascontiguousarray(np.rot90(grey, k))) for k in range(4))
    return hashes  # type: ignore[return-value]


def _grey_hash(grey: np.ndarray) -> int:
    h, w = grey.shape[:2]
    small = grey.reshape(32, h // 32, 32, w // 32).mean(axis=(1, 3))
    low = (_DCT32 @ small @ _DCT32.T)[:8, :8].ravel()
    bits = low > np.median(low)
    return int(np.packbits(bits).view(">u8")[0])


# Five bands of 13 bits (the last 12): two hashes within 4 bits agree
# exactly on at least one band (pigeonhole), so pairs within 4 bits are
# found by exact band lookups, never by comparing every hash with all others
# (groups.near_exact, pairs.rotated).
BANDS = tuple((shift, 13 if shift < 52 else 12) for shift in range(0, 64, 13))


def band_keys(value: int) -> list[int]:
    """``value``'s key in each of BANDS."""
    return [(value >> shift) & ((1 << width) - 1) for shift, width in BANDS]


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()

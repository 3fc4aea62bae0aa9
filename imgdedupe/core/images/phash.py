"""Near-exact copies in seconds: a 64-bit perceptual hash (pHash).

The CNN takes tens of milliseconds a photo on a CPU; a library of 5,000
new photos keeps it busy for minutes. Re-encoded, resized or re-saved
copies (the bulk of real duplicates after byte copies) do not need it:
they keep the coarse structure of the picture, which a perceptual hash of
the network input the decode pool already made (224 x 224, no extra
decode) captures in ~0.1 ms. Photos whose hashes differ in at most
``MAX_DISTANCE`` of 64 bits are reported as near-exact copies while the
model still runs; the final scan result is still the CNN's.

The hash is the classic pHash: grey, 32 x 32 block means, 2-D DCT, the
8 x 8 lowest frequencies against their median. Rotated copies hash
differently (the CNN's rotation matching finds those).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np

from imgdedupe.core.groups.graph import star_members
from imgdedupe.core.groups.keeper import suggest_keeper
from imgdedupe.core.groups.stars import greedy_star_groups
from imgdedupe.core.records import Group

HASH_BITS = 64
# Re-encoded and resized copies of the dev photos differ in 0-4 bits,
# distinct photos in ~32 (tests/core/test_phash.py). Five bands of 13 bits
# then find every pair within 4 bits by exact band lookups (pigeonhole: 4
# differing bits leave at least one of the 5 bands untouched), never by
# comparing each photo with all others.
MAX_DISTANCE = 4
_BANDS = tuple((shift, 13 if shift < 52 else 12) for shift in range(0, 64, 13))


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
    h, w = image.shape[:2]
    grey = image.astype(np.float32) @ _GREY
    small = grey.reshape(32, h // 32, 32, w // 32).mean(axis=(1, 3))
    low = (_DCT32 @ small @ _DCT32.T)[:8, :8].ravel()
    bits = low > np.median(low)
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class NearExactIndex:
    """Hashes added batch by batch; pairs within ``max_distance`` bits."""

    def __init__(self, max_distance: int = MAX_DISTANCE) -> None:
        if max_distance >= len(_BANDS):
            raise ValueError(f"band lookups find distances up to {len(_BANDS) - 1}")
        self.max_distance = max_distance
        self._hashes: dict[str, int] = {}
        self._first_with: dict[int, str] = {}  # hash value -> the first key that had it
        self._bands: list[defaultdict[int, list[str]]] = [defaultdict(list) for _ in _BANDS]
        self.pairs: dict[tuple[str, str], int] = {}  # (key, key) sorted -> distance

    def __len__(self) -> int:
        return len(self._hashes)

    def add(self, key: str, value: int) -> int:
        """Add one content's hash; return how many new pairs it made."""
        if key in self._hashes:
            return 0
        first = self._first_with.get(value)
        if first is not None:
            # The very same hash as an earlier photo: pair it with that one
            # alone, and keep it out of the bands. A folder of 2,000 blank
            # scans or burst frames otherwise made 2M pairs (each compared
            # on every add, and regrouped every second). The star grouping
            # still puts it in its twin's group: 0 bits from the twin, it is
            # exactly as far as the twin from every other photo.
            self._hashes[key] = value
            self.pairs[(min(key, first), max(key, first))] = 0
            return 1
        self._first_with[value] = key
        found = 0
        seen: set[str] = set()
        for (shift, width), band in zip(_BANDS, self._bands, strict=True):
            bucket = band[(value >> shift) & ((1 << width) - 1)]
            for other in bucket:
                if other in seen:
                    continue
                seen.add(other)
                distance = hamming(value, self._hashes[other])
                if distance <= self.max_distance:
                    self.pairs[(min(key, other), max(key, other))] = distance
                    found += 1
            bucket.append(key)
        self._hashes[key] = value
        return found

    def groups(self) -> list[tuple[str, list[tuple[str, int]]]]:
        """Star groups (reference, [(member, distance)]), as the CNN's groups
        are made, so no chain of small steps joins two different photos."""
        if not self.pairs:
            return []
        keys = sorted({k for pair in self.pairs for k in pair})
        node = {k: n for n, k in enumerate(keys)}
        pairs = np.array([(node[a], node[b]) for a, b in self.pairs], dtype=np.int64)
        # Closeness in (0, 1]: fewer differing bits ranks higher.
        closeness = np.array([1.0 - d / HASH_BITS for d in self.pairs.values()])
        stars = greedy_star_groups(len(keys), pairs, closeness, 0.0, lambda n: (keys[n],))
        return [(keys[ref], [(keys[m], round((1.0 - c) * HASH_BITS)) for m, c in members])
                for ref, members in stars]


def near_exact_groups(near: NearExactIndex, contents: dict[str, list[Any]],
                      dims: Mapping[str, tuple[int | None, int | None]]) -> tuple[Group, ...]:
    """Every near-exact group so far as records, byte copies included, in
    path order. ``contents``: content key -> its files (``store.CachedFile``,
    path order); ``dims``: content key -> pixel size."""
    groups = []
    for reference, linked in near.groups():
        members = star_members(
            (contents[key], 100.0 - 100.0 * distance / HASH_BITS, *dims[key])
            for key, distance in [(reference, 0), *linked])
        groups.append(Group("near-exact", members, suggest_keeper(members)))
    groups.sort(key=lambda g: g.members[0].path)
    return tuple(groups)

"""Near-exact copies while the model still runs: photos whose perceptual
hashes (images.phash) differ in at most ``MAX_DISTANCE`` of 64 bits.

Pairs are found by exact lookups in hash bands, never by comparing each
photo with all others, and grouped into stars like the CNN's groups, so
no chain of small steps joins two different photos.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from imgdedupe.core.groups.graph import star_members
from imgdedupe.core.groups.keeper import suggest_keeper
from imgdedupe.core.groups.stars import greedy_star_groups
from imgdedupe.core.images.phash import BANDS, HASH_BITS, band_keys, hamming
from imgdedupe.core.records import FileLike, Group

# Re-encoded and resized copies of the dev photos differ in 0-4 bits,
# distinct photos in ~32 (tests/core/test_phash.py). Five bands of 13 bits
# then find every pair within 4 bits by exact band lookups (pigeonhole: 4
# differing bits leave at least one of the 5 bands untouched), never by
# comparing each photo with all others.
MAX_DISTANCE = 4


class NearExactIndex:
    """Hashes added batch by batch; pairs within ``max_distance`` bits."""

    def __init__(self, max_distance: int = MAX_DISTANCE) -> None:
        if max_distance >= len(BANDS):
            raise ValueError(f"band lookups find distances up to {len(BANDS) - 1}")
        self.max_distance = max_distance
        self._hashes: dict[str, int] = {}
        self._first_with: dict[int, str] = {}  # hash value -> the first key that had it
        self._bands: list[defaultdict[int, list[str]]] = [defaultdict(list) for _ in BANDS]
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
        for band_key, band in zip(band_keys(value), self._bands, strict=True):
            bucket = band[band_key]
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


def near_exact_groups(near: NearExactIndex, contents: Mapping[str, Sequence[FileLike]],
                      pixel_sizes: Mapping[str, tuple[int | None, int | None]]
                      ) -> tuple[Group, ...]:
    """Every near-exact group so far as records, byte copies included, in
    path order. ``contents``: content key -> its files (path order);
    ``pixel_sizes``: content key -> (width, height)."""
    groups = []
    for reference, linked in near.groups():
        members = star_members(
            (contents[key], 100.0 - 100.0 * distance / HASH_BITS, *pixel_sizes[key])
            for key, distance in [(reference, 0), *linked])
        groups.append(Group("near-exact", members, suggest_keeper(members), "near_duplicate",
                            "same picture: the perceptual hashes agree"))
    groups.sort(key=lambda g: g.members[0].path)
    return tuple(groups)

"""Rotated copies from perceptual hashes, not from four forwards.

A copy turned by a quarter turn embeds far from its original, so the scan
used to run the network on every photo four times. A pHash of the picture
turned k quarter turns (images.phash.quarter_turn_hashes) is, for a copy
turned k times, within a few bits of the copy's upright hash. So each
photo's three turned hashes are looked up among all upright hashes: the
pairs found are candidates like the embedding's, and verification (SIFT
and one affine fit, which turns with the picture) decides their tier.
Costs 0.6 ms a photo once (stored beside the picture), against three
forwards; what it cannot find is a turned copy that was also cropped or
heavily edited (docs/performance.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from imgdedupe.core.images.phash import BANDS, HASH_BITS, band_keys, hamming, quarter_turn_hashes
from imgdedupe.core.images.preprocess import PICTURE_KEY, picture_pixels
from imgdedupe.core.storage.store import Store

# Turned copies of the dev set's photos differ from the turned original in
# 0-4 bits, distinct photos in ~32; images.phash.BANDS finds every pair
# within 4 bits by exact lookups.
MAX_DISTANCE = 4
# A bucket this full is a flat or repeated pattern (blank scans): its
# members are upright near-duplicates of each other, found by the embedding.
_CROWDED = 500

Hashes = tuple[int, int, int, int]

HASH_CHUNK = 512  # pictures read (13 KB each) and hashed at once


def hashes_of(store: Store, files: Sequence[int], workers: int) -> list[Hashes | None]:
    """Each file's quarter-turn hashes: stored, or made from its stored
    picture (in threads: numpy and the JPEG decoder release the GIL) and
    stored. None where the file has no picture."""
    stored = store.picture_hashes(PICTURE_KEY, list(files))
    missing = [f for f in files if f in stored and stored[f] is None]
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="hashes") as pool:
        # A chunk of pictures at a time: a first scan of 10,000 photos read
        # all their pictures at once, 130 MB held just before verification
        # (docs/performance.md).
        for start in range(0, len(missing), HASH_CHUNK):
            chunk = missing[start:start + HASH_CHUNK]
            pictures = store.pictures(PICTURE_KEY, chunk)

            def make(file: int, pictures: dict = pictures) -> bytes:
                turned = quarter_turn_hashes(picture_pixels(pictures[file][0]))
                return np.array(turned, dtype="<u8").tobytes()

            made = dict(zip(chunk, pool.map(make, chunk), strict=True))
            del pictures
            store.put_hashes(made.items())
            stored.update(made)
    out: list[Hashes | None] = []
    for file in files:
        blob = stored.get(file)
        out.append(None if blob is None else tuple(np.frombuffer(blob, "<u8").tolist()))
    return out


def rotated_pairs(hashes: Sequence[Hashes | None]) -> tuple[np.ndarray, np.ndarray]:
    """(pairs (M, 2) of indices i < j, their distance in bits): one photo
    turned by a quarter or half turn is within MAX_DISTANCE of the other."""
    bands: list[defaultdict[int, list[int]]] = [defaultdict(list) for _ in BANDS]
    for i, turned in enumerate(hashes):
        if turned is not None:
            for band_key, band in zip(band_keys(turned[0]), bands, strict=True):
                band[band_key].append(i)
    found: dict[tuple[int, int], int] = {}
    for i, turned in enumerate(hashes):
        if turned is None:
            continue
        for k in (1, 2, 3):
            value = turned[k]
            if hamming(value, turned[0]) <= MAX_DISTANCE:
                continue  # looks the same turned: the upright search finds its copies
            for band_key, band in zip(band_keys(value), bands, strict=True):
                bucket = band.get(band_key, ())
                if len(bucket) > _CROWDED:
                    continue
                for j in bucket:
                    other = hashes[j]
                    if j == i or other is None:
                        continue
                    distance = hamming(value, other[0])
                    if distance <= MAX_DISTANCE:
                        key = (min(i, j), max(i, j))
                        found[key] = min(distance, found.get(key, HASH_BITS))
    if not found:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    keys = sorted(found)
    return np.array(keys, dtype=np.int64), np.array([found[k] for k in keys], dtype=np.int64)


def merge_pairs(pairs: np.ndarray, scores: np.ndarray, extra: np.ndarray,
                extra_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs once (i < j), each with its highest score."""
    if not len(extra):
        return pairs, scores
    both = np.concatenate([np.asarray(pairs, dtype=np.int64).reshape(-1, 2), extra])
    values = np.concatenate([np.asarray(scores, dtype=np.float32),
                             np.asarray(extra_scores, dtype=np.float32)])
    order = np.lexsort((-values, both[:, 1], both[:, 0]))  # by pair, best score first
    both, values = both[order], values[order]
    first = np.ones(len(both), dtype=bool)
    first[1:] = np.any(both[1:] != both[:-1], axis=1)
    return both[first], values[first]

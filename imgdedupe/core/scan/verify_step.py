"""The scan's verification step: every candidate pair of the similarity
graph gets a tier (verify.tiers) before any group is made.

The embedding only proposes pairs. Each is checked on the two photos'
verification pictures (the grey network input, stored as the embedding
step decoded it: no file is decoded twice) with local features and one
robust fit (verify.evidence). Evidence is cached per pair of files under
the algorithm's version, so a rescan verifies only pairs it has not seen.
Features are made on demand, once per photo, for the photos in the pairs
left to check, on a thread per core (OpenCV releases the GIL), and
dropped after their last pair.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from imgdedupe.core.errors import DecodeError, raise_if_cancelled
from imgdedupe.core.groups.stars import Moments
from imgdedupe.core.images.preprocess import (
    PICTURE_KEY,
    PICTURE_VERSION,
    decode_for_network,
    picture_pixels,
    verification_picture,
)
from imgdedupe.core.scan.events import Progress
from imgdedupe.core.storage.store import CachedFile, Store
from imgdedupe.core.verify.evidence import EVIDENCE_VERSION, PairEvidence, compare
from imgdedupe.core.verify.features import Features, extract
from imgdedupe.core.verify.tiers import (
    NEAR_DUPLICATE,
    SAME_GROUP,
    TIER_CODES,
    UNVERIFIED,
    judge,
)

# What stored evidence depends on: the picture it was computed from and
# the algorithm that computed it.
EVIDENCE_KEY = f"picture {PICTURE_VERSION}, evidence {EVIDENCE_VERSION}"
class Verdicts(NamedTuple):
    tiers: np.ndarray  # (pairs,) int8: verify.tiers codes
    reasons: tuple[str, ...]  # (pairs,)
    moments: np.ndarray  # (nodes,) float64 capture times, NaN unknown


# CPU-seconds verification costs a photo of a cold scan (its SIFT features
# and its share of the pairs), for the status line's time left: 14.5 ms
# on Caltech (3,030 photos, 44 CPU-s), 17-18 ms on the dev set and on 12 MP
# photos (docs/quality.md), on the 2-core build machine. What is assumed
# until the scan has timed features on this machine (feature_cost_s).
CPU_SECONDS_PER_PHOTO = 0.016
# A photo of a library costs verification about this many times its own
# features: photos without a candidate cost none, and the pairs add ~40%
# to those with one. Measured (verification's wall time on one core over
# the photos scanned, against the mean features' CPU time): 1.12 on 2,000
# Caltech photos and 1.12 on 3,000 of the memory bench's library of copies.
COST_OVER_FEATURES = 1.1


def estimated_verify_s(photos: int, cores: int, feature_cost_s: float | None = None) -> float:
    """Seconds verification will take after ``photos`` photos were
    embedded, from one photo's features' measured cost when known."""
    per_photo = (CPU_SECONDS_PER_PHOTO if feature_cost_s is None
                 else feature_cost_s * COST_OVER_FEATURES)
    return photos * per_photo / max(1, cores)


def feature_cost_s(picture: bytes, aspect: float | None = None) -> float:
    """CPU-seconds this thread takes to make a stored picture's features,
    as verification will: a sample of this machine's pace. A fixed figure
    was 14-19% off as a shared machine's pace moved between runs, and a
    single probe at the start of a scan was noisier still
    (docs/performance.md)."""
    started = time.thread_time()
    extract(picture_pixels(picture), aspect)
    return time.thread_time() - started


# Photos whose features (and stored picture) are held at once, ~60-80 KB
# each. In the local order a photo is held from its first pair to its
# last; a tangled library (grids and crops of each other) held 3,700 of
# 10,000 at once, 290 MB. Past this many, the photo needed last is let go
# and made again when its turn comes (docs/performance.md).
MAX_HELD = 1000

BLOCK = 64  # pairs verified at once: enough for the threads, few enough that
# verdicts soon join copies and spare their other pairs (verify_pairs)

# Decoded pictures kept for the pixel check (50 KB each): a block of
# pairs touches at most twice as many photos, so this holds a whole
# block's (256 held 12.8 MB, for photos whose pairs were long done).
DECODED_KEPT = 2 * BLOCK


def verify_pairs(store: Store, pairs: np.ndarray, cosines: np.ndarray, nodes: Sequence[str],
                 files_of: Mapping[str, Sequence[CachedFile]], reps: Mapping[str, int],
                 workers: int, cancel: threading.Event | None,
                 pixel_sizes: Mapping[str, tuple[int | None, int | None]] | None = None
                 ) -> Generator[Progress, None, Verdicts]:
    """Yields Progress("verify", ...) events and returns the Verdicts: one
    verify.tiers code and one sentence per row of ``pairs``, which index
    ``nodes`` (content keys), and each node's capture time. ``reps``: the
    file whose vector (and picture) stands for each content;
    ``pixel_sizes``: each content's (width, height), for the features'
    aspect ratio (verify.features.extract).

    Pairs are taken in an order that keeps few photos' features in memory
    (local_order). A pair whose two photos are already joined by pairs
    verified as the same picture is not verified (SAME_GROUP): a copy of a
    copy is the same picture, whatever the two's cosine, and near-duplicate
    groups are whole connected components (groups.stars.linked_groups).
    Ten copies of one photo then cost 9 verifications, not 45. (Requiring
    the joining pairs to be at least as similar, as the order of similarity
    gave for free, verified 2x the pairs of a library of crops.)"""
    total = len(pairs)
    codes = np.full(total, UNVERIFIED, dtype=np.int8)
    reasons = ["not verified: a photo could not be read again"] * total
    yield Progress("verify", 0, total)
    if not total:
        return Verdicts(codes, (), np.full(len(nodes), np.nan))
    files = np.asarray([reps[key] for key in nodes], dtype=np.int64)[pairs]
    keys = [(min(a, b), max(a, b)) for a, b in files.tolist()]
    all_files = sorted({f for key in keys for f in key})
    known = store.evidence(EVIDENCE_KEY, all_files)
    evidence = {key: PairEvidence.from_bytes(known[key]) for key in keys if key in known}
    del known  # its bytes are in ``evidence`` now, which settle() empties as it goes
    taken = store.capture_times(all_files)
    uses = Counter(file for key in keys if key not in evidence for file in key)
    path_of = {c.file_id: c.path for key in nodes for c in files_of[key] if c.file_id in uses}
    aspect_of = {}
    for node in nodes:
        if pixel_sizes is None or reps[node] not in uses:
            continue
        try:  # [], not get(): a PixelSizes falls back to the cache's sizes
            width, height = pixel_sizes[node]
        except KeyError:
            continue
        if width and height:
            aspect_of[reps[node]] = width / height
    pictures = _Pictures(store, path_of, aspect_of)
    joined = Moments(lambda file: taken.get(file))
    done = 0
    # The work ahead: features of every photo in a pair to verify, and
    # those pairs. Pairs spared as already joined drop out of it.
    photos_to_make = len(uses)
    pairs_to_verify = sum(1 for key in keys if key not in evidence)
    spared = 0
    work_share = _WorkShare()

    def share() -> float:
        return work_share.of(pictures.clock, photos_to_make - pictures.clock.features,
                             pairs_to_verify - verified - spared)

    verified = 0

    def settle(row: int, found: PairEvidence | None = None) -> None:
        """Judge a pair by its evidence, ``found`` now or cached. The
        evidence is not kept: a 10,000-photo scan verifies ~70,000 pairs,
        ~30 MB of it that nothing reads again."""
        next_use.done(row)
        key = keys[row]
        found = found if found is not None else evidence.pop(key, None)
        if found is None:
            return
        verdict = judge(found, float(cosines[row]), taken.get(key[0]), taken.get(key[1]))
        codes[row], reasons[row] = TIER_CODES[verdict.tier], verdict.reason
        if codes[row] == NEAR_DUPLICATE:
            joined.join(*key)  # refused when it would join two moments

    def release(key: tuple[int, int], row: int) -> None:
        next_use.done(row)
        for file in key:
            uses[file] -= 1
            if not uses[file]:
                pictures.forget(file)

    def verify_block(block: list[int]) -> Generator[Progress, None, None]:
        """Verify the block's pairs in parallel, store and settle them."""
        nonlocal done, verified, photos_to_make
        pictures.prepare(file for r in block for file in keys[r])
        # Each new photo's features first, one thread a photo: in the local
        # order a block's pairs share photos, and two threads comparing
        # pairs would both make the same photo's features.
        list(pool.map(pictures.features, pictures.without_features(
            file for r in block for file in keys[r])))
        found = list(pool.map(pictures.compare, [keys[r] for r in block]))
        made = pictures.take_made()
        store.put_pictures(PICTURE_KEY, made)
        taken.update((file, when) for file, _, when in made)
        store.put_evidence(EVIDENCE_KEY, [(*keys[r], e.to_bytes()) for r, e
                                          in zip(block, found, strict=True) if e is not None])
        for r, found_evidence in zip(block, found, strict=True):
            settle(r, found_evidence)
            release(keys[r], r)
        # Too many held: more work ahead, since each photo let go is made again.
        photos_to_make += pictures.let_go(MAX_HELD, next_use.rank)
        done += len(block)
        verified += len(block)
        raise_if_cancelled(cancel)
        yield Progress("verify", done, total, share=share())

    # One BLAS thread each: the matcher's matrix products are small, and
    # OpenBLAS's spinning threads beside these cost 1.7x on two cores.
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="verify") as pool, \
            threadpool_limits(1, user_api="blas"):
        block: list[int] = []
        in_block: set[int] = set()  # the block's photos
        # A pair both of whose photos the block already holds waits for the
        # next block: the block's verdicts may join them (a block is
        # verified at once, so its own pairs cannot spare each other, and
        # in the local order a block is mostly a few photos' pairs).
        later: list[int] = []
        order = local_order(np.asarray(keys, dtype=np.int64).reshape(-1, 2))
        next_use = _NextUse(keys, order)
        pending = deque(order)
        while pending or block or later:
            if pending and len(block) < BLOCK:
                row = pending.popleft()
                key = keys[row]
                if key in evidence:
                    settle(row)
                    done += 1
                elif joined.joined(*key):
                    codes[row] = SAME_GROUP
                    reasons[row] = "the same picture as the rest of its group"
                    release(key, row)
                    done += 1
                    spared += 1
                elif key[0] in in_block and key[1] in in_block:
                    later.append(row)
                else:
                    block.append(row)
                    in_block.update(key)
                continue
            if block:
                yield from verify_block(block)
            block, in_block = [], set()
            pending.extendleft(reversed(later))
            later = []
    if verified == 0:  # every verdict came from the cache: say the phase is done
        yield Progress("verify", done, total, share=1.0)
    moments = np.array([np.nan if (t := taken.get(reps[key])) is None else t for key in nodes],
                       dtype=np.float64)
    return Verdicts(codes, tuple(reasons), moments)


def local_order(pairs: np.ndarray) -> list[int]:
    """The rows of ``pairs`` (two file ids each) in an order that keeps few
    photos' features in memory at once: the photos are numbered by reverse
    Cuthill-McKee (neighbours get near numbers) and each pair comes when its
    later photo does. A photo's features live from its first pair to its
    last; in the order of similarity that span covered most of a library
    (1,705 of Caltech's 2,335 photos at once, ~200 KB each: a 10,000-photo
    scan peaked at 3 GB), in this order 47."""
    if not len(pairs):
        return []
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    files, nodes = np.unique(pairs, return_inverse=True)
    nodes = nodes.reshape(-1, 2)
    size = len(files)
    graph = coo_matrix((np.ones(len(nodes), dtype=np.int8), (nodes[:, 0], nodes[:, 1])),
                       shape=(size, size)).tocsr()
    rank = np.empty(size, dtype=np.int64)
    rank[reverse_cuthill_mckee(graph + graph.T, symmetric_mode=True)] = np.arange(size)
    ranked = rank[nodes]
    return np.lexsort((ranked.min(axis=1), ranked.max(axis=1))).tolist()


class _NextUse:
    """When each photo is next needed: the rank, in the order the pairs
    are taken, of its first pair not yet done. The photo to let go when too
    many are held is the one needed last (as a cache that knows the
    future evicts), so few are made twice. Kept in flat arrays: ~70,000
    pairs as Python tuples and sets weighed ~20 MB."""

    def __init__(self, keys: Sequence[tuple[int, int]], order: Sequence[int]) -> None:
        ordered = np.asarray(order, dtype=np.int64)
        files = np.asarray(keys, dtype=np.int64).reshape(-1, 2)[ordered].reshape(-1)
        ranks = np.repeat(np.arange(len(ordered), dtype=np.int64), 2)
        by_file = np.argsort(files, kind="stable")  # each file's pairs by rank
        self._ranks = ranks[by_file]
        self._rows = ordered[self._ranks]
        found, starts = np.unique(files[by_file], return_index=True)
        self._slot = {int(f): n for n, f in enumerate(found.tolist())}
        self._first = starts.astype(np.int64)  # each file's first pair maybe still open
        self._end = np.append(starts[1:], len(by_file)).astype(np.int64)
        self._done = np.zeros(len(keys), dtype=bool)

    def done(self, row: int) -> None:
        self._done[row] = True

    def rank(self, file: int) -> float:
        slot = self._slot.get(file)
        if slot is None:
            return math.inf
        at, end = int(self._first[slot]), int(self._end[slot])
        while at < end and self._done[self._rows[at]]:
            at += 1
        self._first[slot] = at
        return float(self._ranks[at]) if at < end else math.inf


@dataclass
class _WorkClock:
    """CPU-seconds this scan's threads spent on features and on pairs."""

    features: int = 0
    feature_seconds: float = 0.0
    pairs: int = 0
    pair_seconds: float = 0.0


class _WorkShare:
    """The share of the verification's work done, in this machine's own
    measured seconds: the time spent so far over that plus the photos and
    pairs left at their mean cost so far. A fixed weight (a photo's features
    as 15 pairs) made the share lag the time taken by 0.05-0.07 a third of the way
    into a library of copies (whose pairs pass the fit and pay the pixel
    check), and the status line's pace 30-40% long (bench/eta_check.py).
    Never decreases, for the status line."""

    def __init__(self) -> None:
        self._last = 0.0

    def of(self, clock: _WorkClock, photos_left: int, pairs_left: int) -> float:
        spent = clock.feature_seconds + clock.pair_seconds
        if not (clock.features and clock.pairs and spent):
            return self._last
        per_photo = clock.feature_seconds / clock.features
        per_pair = clock.pair_seconds / clock.pairs
        left = max(0, photos_left) * per_photo + max(0, pairs_left) * per_pair
        self._last = max(self._last, spent / (spent + left))
        return self._last


class _Pictures:
    """Each file's verification picture and features, made once and
    shared by the threads. Pictures are read from the cache a block at a
    time (``prepare``, on the caller's thread: a Store is one thread's); one
    missing there (a vector cached by an older version) is made on a pool
    thread by decoding the file once more, and handed back by ``take_made``
    to be stored."""

    def __init__(self, store: Store, path_of: dict[int, str],
                 aspect_of: dict[int, float] | None = None) -> None:
        self._store = store
        self._path_of = path_of
        self._aspect_of = aspect_of or {}  # width / height of each file's photo
        self._stored: dict[int, bytes | None] = {}  # None: to be decoded again
        # Each photo's features and its picture as stored (a 13 KB JPEG,
        # decoded again only for a pair that passes the fit).
        self._features: dict[int, tuple[bytes, Features] | None] = {}
        self._made: list[tuple[int, bytes, float | None]] = []
        self._lock = threading.Lock()
        # How many features and pairs this scan made, and their CPU time: the
        # progress's share of work done.
        self.clock = _WorkClock()
        self._greys: OrderedDict[int, np.ndarray] = OrderedDict()

    def prepare(self, files: Iterable[int]) -> None:
        wanted = sorted({f for f in files if f not in self._stored})
        found = self._store.pictures(PICTURE_KEY, wanted)
        for file in wanted:
            self._stored[file] = found[file][0] if file in found else None

    def take_made(self) -> list[tuple[int, bytes, float | None]]:
        with self._lock:
            made, self._made = self._made, []
        return made

    def without_features(self, files: Iterable[int]) -> list[int]:
        with self._lock:
            return sorted({f for f in files if f not in self._features})

    def features(self, file: int) -> None:
        self._get(file)

    def _get(self, file: int) -> tuple[bytes, Features] | None:
        with self._lock:
            if file in self._features:
                return self._features[file]
            picture = self._stored.get(file)
        started = time.thread_time()
        if picture is None:
            picture = self._decode_again(file)
        ready = None
        if picture is not None:
            ready = (picture, extract(picture_pixels(picture), self._aspect_of.get(file)))
        with self._lock:  # another thread may have made it too: the same, harmless
            self.clock.features += 1
            self.clock.feature_seconds += time.thread_time() - started
            return self._features.setdefault(file, ready)

    def _decode_again(self, file: int) -> bytes | None:
        try:
            network_input = decode_for_network(self._path_of[file])
        except DecodeError:
            return None  # gone or broken since it was embedded: its pairs stay unverified
        picture = verification_picture(network_input.array)
        with self._lock:
            self._made.append((file, picture, network_input.taken))
        return picture

    def compare(self, key: tuple[int, int]) -> PairEvidence | None:
        a, b = self._get(key[0]), self._get(key[1])
        if a is None or b is None:
            return None
        started = time.thread_time()
        found = compare(a[1], b[1], partial(self._grey, key[0], a[0]),
                        partial(self._grey, key[1], b[0]))
        with self._lock:
            self.clock.pairs += 1
            self.clock.pair_seconds += time.thread_time() - started
        return found

    def _grey(self, file: int, picture: bytes) -> np.ndarray:
        """The decoded picture, from a small cache: in the local order a
        photo's pairs come together, and copies pass the fit pair after pair."""
        with self._lock:
            grey = self._greys.get(file)
            if grey is not None:
                self._greys.move_to_end(file)
                return grey
        grey = picture_pixels(picture)
        with self._lock:
            self._greys[file] = grey
            if len(self._greys) > DECODED_KEPT:
                self._greys.popitem(last=False)
        return grey

    def forget(self, file: int) -> None:
        with self._lock:
            self._features.pop(file, None)
            self._stored.pop(file, None)

    def let_go(self, limit: int, rank: Callable[[int], float]) -> int:
        """Past ``limit`` photos held, let go of those needed last (by
        ``rank``), down to 90% of it, so that this runs every few blocks, not
        every block; a photo let go is read and made again when needed.
        Returns how many were let go. Between blocks only: no thread is
        using them."""
        with self._lock:
            if len(self._features) <= limit:
                return 0
            held = [f for f, ready in self._features.items() if ready is not None]
            gone = heapq.nlargest(len(self._features) - int(0.9 * limit), held, key=rank)
            for file in gone:
                del self._features[file]
                self._stored.pop(file, None)
                self._greys.pop(file, None)
            return len(gone)

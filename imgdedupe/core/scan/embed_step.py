"""The scan's decode + embed step: what the cache lacks goes through the
decode pool and the model, a batch at a time, into the cache.

Split from pipeline.py, which drives the whole scan; this is its longest
step and the only one that runs the model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np

from imgdedupe.core.errors import DecodeError, cancelled, raise_if_cancelled
from imgdedupe.core.groups.contents import PixelSizes
from imgdedupe.core.groups.near_exact import NearExactIndex, near_exact_groups
from imgdedupe.core.images.decode_pool import DecodePool
from imgdedupe.core.images.preprocess import PICTURE_KEY
from imgdedupe.core.model.backbone import Backbone
from imgdedupe.core.records import FileError
from imgdedupe.core.scan.config import ScanConfig, workers
from imgdedupe.core.scan.events import NearExactGroupsReady, Progress
from imgdedupe.core.scan.verify_step import feature_cost_s
from imgdedupe.core.storage.store import CachedFile, Store

# How often the growing list of near-exact groups is sent while the model
# runs (see embed_pending).
NEAR_EXACT_EVERY_S = 1.0
# On a CPU, one photo in this many has its verification features timed
# while the model runs (~13 ms: 0.7% of a small photo's embedding on two
# cores), so the time left counts this machine's pace of verification.
# Not on a GPU, whose batches it would hold up ~10%; not before the 129th
# photo, so a small scan does not start OpenCV (0.1-0.3 s) for nothing.
FEATURE_SAMPLE_EVERY = 128


def embed_pending(config: ScanConfig, backbone: Backbone, pool: DecodePool, store: Store,
                  contents: dict[str, list[CachedFile]], pending: list[str],
                  reps: dict[str, int], pixel_sizes: PixelSizes,
                  errors: list[FileError],
                  cancel: threading.Event | None
                  ) -> Iterator[Progress | NearExactGroupsReady]:
    """Decode in ``pool`` (threads or processes), running ahead of the
    model; embed in batches, and write each batch to the cache before going
    on."""
    batch_size = config.batch_size or (128 if backbone.device.startswith("cuda") else 16)
    total = len(pending)
    yield Progress("embed", 0, total)
    if not total:
        return
    window = batch_size * 3  # decoded images waiting: the model never starves
    done = 0
    near = NearExactIndex()  # of what this scan decodes (the cache keeps no hash)
    found = 0
    shown_at = -NEAR_EXACT_EVERY_S
    submitted = 0
    sampling = not backbone.device.startswith("cuda")
    costs: list[float] = []  # sampled feature_cost_s, the first (OpenCV's start) left out

    def top_up() -> None:
        nonlocal submitted
        while submitted < total and submitted - done < window:
            key = pending[submitted]
            pool.submit(key, contents[key][0].path)
            submitted += 1

    top_up()
    for start in range(0, total, batch_size):
        batch_keys = pending[start:start + batch_size]
        images, ok_keys, pictures = [], [], []
        for key in batch_keys:
            try:
                decoded = pool.result(key)
            except DecodeError as exc:
                errors.extend(FileError(c.path, exc.reason, exc.detail) for c in contents[key])
                store.set_errors((c.file_id, exc.reason, exc.detail) for c in contents[key])
                continue
            images.append(decoded.array)
            ok_keys.append(key)
            pictures += [(c.file_id, decoded.picture, decoded.taken) for c in contents[key]]
            pixel_sizes[key] = (decoded.width, decoded.height)
            found += near.add(key, decoded.phash)
        done = start + len(batch_keys)
        top_up()
        # New near-exact copies: show them before the model runs. The list
        # is rebuilt whole, so at most once a second (and at the end): at a
        # GPU's pace, once per batch grew quadratic in a library of bursts.
        now = time.perf_counter()
        if found and (now - shown_at >= NEAR_EXACT_EVERY_S or done == total):
            found, shown_at = 0, now
            yield NearExactGroupsReady(near_exact_groups(near, contents, pixel_sizes), len(near))
        if images:
            # One upright forward a photo: turned copies are found from the
            # pictures' turned hashes (pairs.rotated), not three more forwards.
            raise_if_cancelled(cancel)
            # Score with what the cache holds (float16), so a first scan
            # and a rescan from the cache give identical numbers.
            upright = backbone.embed(np.stack(images)).astype(np.float16)
            store_batch(store, backbone.info.model_id, contents, ok_keys, upright, pictures,
                        reps, pixel_sizes)
        if sampling and pictures and start and start % FEATURE_SAMPLE_EVERY == 0:
            width, height = pixel_sizes[ok_keys[0]]
            costs.append(feature_cost_s(pictures[0][1], width / height if height else None))
        if cancelled(cancel):
            pool.cancel_pending()
            raise_if_cancelled(cancel)
        yield Progress("embed", done, total,
                       feature_cost_s=float(np.median(costs[1:])) if len(costs) > 1 else None)


def store_batch(store: Store, model_id: str, contents: dict[str, list[CachedFile]],
                keys: list[str], upright: np.ndarray,
                pictures: list[tuple[int, bytes, float | None]], reps: dict[str, int],
                pixel_sizes: PixelSizes) -> None:
    """Write one embedded batch: ``upright[n]`` (float16) is the vector of
    content ``keys[n]``, given to each of its files. The one way a scan
    stores vectors, local or on a cluster (scan.cluster), so the cache
    reads the same either way."""
    rows = []
    sizes = []
    for n, key in enumerate(keys):
        reps[key] = contents[key][0].file_id
        for c in contents[key]:
            rows.append((c.file_id, upright[n], None))
            sizes.append((c.file_id, *pixel_sizes[key]))
    # Sizes first: a crash between the two commits must not leave
    # vectors (never recomputed) beside unknown sizes (the keeper
    # rule and the report need them); sizes alone are only re-set.
    store.set_sizes(sizes)
    # Pictures before vectors too: a vector is never recomputed,
    # while a missing picture is only made again (scan.verify_step).
    store.put_pictures(PICTURE_KEY, pictures)
    store.put_vectors(model_id, rows)


def make_missing_pictures(config: ScanConfig, pool: DecodePool, store: Store,
                          contents: dict[str, list[CachedFile]], keys: list[str],
                          reps: dict[str, int], cancel: threading.Event | None
                          ) -> Iterator[Progress]:
    """The verification picture of each content in ``keys`` whose vector a
    version before pictures cached: decoded once (no model), so verification
    and the turned-copy search see every photo. A file that fails now keeps
    its vector and simply has no picture."""
    have = store.picture_hashes(PICTURE_KEY, [reps[k] for k in keys])
    missing = [k for k in keys if reps[k] not in have]
    if not missing:
        return
    window = 4 * workers(config)
    submitted = 0
    for done, key in enumerate(missing):
        while submitted < len(missing) and submitted - done < window:
            pool.submit(missing[submitted], _rep_path(contents, reps, missing[submitted]))
            submitted += 1
        try:
            decoded = pool.result(key)
        except DecodeError:
            continue
        store.put_pictures(PICTURE_KEY, [(c.file_id, decoded.picture, decoded.taken)
                                         for c in contents[key]])
        if cancelled(cancel):
            pool.cancel_pending()
            raise_if_cancelled(cancel)
        if done % 64 == 0:
            yield Progress("embed", done, len(missing), "preparing pictures of cached photos")


def _rep_path(contents: dict[str, list[CachedFile]], reps: dict[str, int], key: str) -> str:
    return next((c.path for c in contents[key] if c.file_id == reps[key]), contents[key][0].path)

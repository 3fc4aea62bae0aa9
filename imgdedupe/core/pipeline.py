"""The scan as a generator of events, cancellable at every yield.

    for event in run_scan(config, cancel):
        ...  # Progress, Notice, ExactGroupsReady, then one ScanResult

Phases: walk -> hash (exact copies) -> decode + embed (only what the cache
lacks, one image per distinct content) -> index -> group. The generator
yields often enough that a GUI worker can stop it within a second, and
every finished batch is already in the cache, so a cancelled scan resumes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import calibration
from .embed import Backbone, load_backbone
from .errors import DecodeError, ScanCancelled
from .group import greedy_star_groups
from .hashing import content_hash, sizes_shared
from .index import IndexParams, similar_pairs
from .preprocess import decode_for_network, with_rotations
from .records import (
    ExactGroupsReady,
    FileError,
    Group,
    ImageFile,
    Member,
    Notice,
    Progress,
    ScanResult,
    ScanStats,
)
from .select import keeper_order_key, suggest_keeper
from .store import CachedFile, Store
from .walk import walk

log = logging.getLogger(__name__)

Event = Progress | Notice | ExactGroupsReady | ScanResult


@dataclass(frozen=True)
class ScanConfig:
    roots: tuple[str, ...]
    db_path: str
    backbone: str = "resnet50"
    weights: str | None = None
    device: str = "auto"
    threshold: float = calibration.DEFAULT_THRESHOLD  # 0-100 user scale
    rotations: bool = True
    include_hidden: bool = False
    batch_size: int = 0  # 0: 16 on a CPU, 128 on a GPU
    decode_workers: int = 0  # 0: one per core
    allow_download: bool = False
    bundled_weights_dirs: tuple[str, ...] | None = None  # None: the app's resources/
    index: IndexParams = field(default_factory=IndexParams)


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._phase: str | None = None
        self._start = 0.0

    def start(self, phase: str) -> None:
        self.stop()
        self._phase, self._start = phase, time.perf_counter()

    def stop(self) -> None:
        if self._phase is not None:
            elapsed = time.perf_counter() - self._start
            self.timings[self._phase] = round(self.timings.get(self._phase, 0.0) + elapsed, 4)
            self._phase = None


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise ScanCancelled("scan cancelled; finished work is cached")


def run_scan(config: ScanConfig, cancel: threading.Event | None = None,
             backbone: Backbone | None = None) -> Iterator[Event]:
    """Scan ``config.roots``; see the module docstring. ``backbone`` lets a
    caller (tests, the GUI) reuse an already loaded model."""
    clock = _Clock()
    started = time.perf_counter()
    roots = tuple(os.path.abspath(r) for r in config.roots)
    store = Store(config.db_path)  # fails before any work on a bad --db
    try:
        yield from _scan(config, roots, store, clock, cancel, backbone)
    finally:
        store.close()
        clock.stop()
        log.debug("scan took %.2f s", time.perf_counter() - started)


def _scan(config: ScanConfig, roots: tuple[str, ...], store: Store, clock: _Clock,
          cancel: threading.Event | None, backbone: Backbone | None) -> Iterator[Event]:
    errors: list[FileError] = []
    notices: list[Notice] = []

    # 1. Walk.
    clock.start("walk")
    files: list[ImageFile] = []
    for item in walk(roots, include_hidden=config.include_hidden, cancel=cancel):
        if isinstance(item, FileError):
            errors.append(item)
        else:
            files.append(item)
        if len(files) % 500 == 0:
            _check(cancel)
            yield Progress("walk", len(files))
    _check(cancel)
    yield Progress("walk", len(files), len(files))
    cached = store.sync_files(files)
    store.purge_missing(roots, (f.path for f in files))

    # 2. Exact copies: hash only files whose size is shared.
    clock.start("hash")
    by_id = {c.file_id: c for c in cached}
    shared = sizes_shared((c.file_id, c.size) for c in cached)
    to_hash = [c for c in cached if c.file_id in shared and c.content_hash is None]
    hashes: dict[int, str] = {c.file_id: c.content_hash for c in cached if c.content_hash}
    gone: set[int] = set()
    with ThreadPoolExecutor(max_workers=_workers(config)) as pool:
        futures = [(c, pool.submit(content_hash, c.path)) for c in to_hash]
        for done, (c, future) in enumerate(futures, 1):
            try:
                hashes[c.file_id] = future.result()
            except DecodeError as exc:
                errors.append(FileError(c.path, exc.reason, exc.detail))
                gone.add(c.file_id)
            if done % 50 == 0:
                _check(cancel)
                yield Progress("hash", done, len(to_hash))
    store.set_hashes((i, h) for i, h in hashes.items()
                     if by_id[i].content_hash != h and i not in gone)
    live = [c for c in cached if c.file_id not in gone]
    contents: dict[str, list[CachedFile]] = defaultdict(list)
    for c in live:
        contents[hashes.get(c.file_id) or f"id:{c.file_id}"].append(c)
    for members in contents.values():
        members.sort(key=lambda c: c.path)
    known_dims = {k: next(((c.width, c.height) for c in files if c.width), (None, None))
                  for k, files in contents.items()}
    yield Progress("hash", len(to_hash), len(to_hash))
    yield ExactGroupsReady(tuple(_exact_groups(contents, known_dims)))

    # 3. Decode + embed what the cache lacks, once per distinct content.
    clock.start("load_model")
    if backbone is None:
        backbone, loaded_notices = load_backbone(
            config.backbone, weights=config.weights, device=config.device,
            allow_download=config.allow_download,
            bundled_dirs=None if config.bundled_weights_dirs is None
            else [Path(d) for d in config.bundled_weights_dirs])
        for notice in loaded_notices:
            notices.append(notice)
            yield notice
    info = backbone.info
    clock.start("embed")
    keys = sorted(contents)
    all_ids = [c.file_id for c in live]
    vectors = store.get_vectors(info.model_id, all_ids, info.dim)
    content_vectors: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    dims: dict[str, tuple[int | None, int | None]] = dict(known_dims)
    pending: list[str] = []
    for key in keys:
        group = contents[key]
        hit = next((vectors[c.file_id] for c in group if c.file_id in vectors
                    and (vectors[c.file_id][1] is not None or not config.rotations)), None)
        cached_error = next((c for c in group if c.error_reason), None)
        if hit is not None:
            content_vectors[key] = hit
        elif cached_error is not None:
            # Unchanged since it last failed: report it again, don't retry.
            errors.extend(FileError(c.path, cached_error.error_reason or "",
                                    cached_error.error_detail or "") for c in group)
        else:
            pending.append(key)
    stats_cached = len(content_vectors)
    yield from _embed_pending(config, backbone, store, contents, pending, content_vectors,
                              dims, errors, cancel)
    embedded = len(content_vectors) - stats_cached

    # 4. Index and 5. group.
    clock.start("index")
    usable = [k for k in keys if k in content_vectors]
    yield Progress("index", 0, len(usable))
    upright = np.stack([content_vectors[k][0] for k in usable]).astype(np.float32) \
        if usable else np.zeros((0, info.dim), np.float32)
    rotated = None
    if config.rotations and usable:
        rotated = np.stack([content_vectors[k][1] for k in usable]).astype(np.float32)
    min_cosine = calibration.score_to_cosine(info.name, config.threshold)
    cache_dir = Path(config.db_path).with_suffix(".index") / info.model_id.replace(":", "_")
    pairs, scores, method = similar_pairs(upright, rotated, min_cosine, config.index, cache_dir)
    _check(cancel)
    yield Progress("index", len(usable), len(usable), method)
    clock.start("group")
    groups = _similar_groups(info.name, usable, contents, dims, pairs, scores, min_cosine)
    grouped = {m.path for g in groups for m in g.members}
    groups += [g for g in _exact_groups(contents, dims) if g.members[0].path not in grouped]
    groups.sort(key=lambda g: (g.members[0].path, g.kind))
    clock.stop()
    yield Progress("done", 1, 1)
    errors.sort(key=lambda e: e.path)
    stats = ScanStats(
        files_seen=len(files),
        unique_contents=len(contents),
        embedded=embedded,
        from_cache=stats_cached,
        failed=len(errors),
        timings=dict(clock.timings),
    )
    yield ScanResult(tuple(groups), tuple(errors), stats, tuple(notices), info.name,
                     info.model_id, config.threshold)


def _workers(config: ScanConfig) -> int:
    return config.decode_workers or max(2, os.cpu_count() or 2)


def _embed_pending(config: ScanConfig, backbone: Backbone, store: Store,
                   contents: dict[str, list[CachedFile]], pending: list[str],
                   content_vectors: dict, dims: dict, errors: list[FileError],
                   cancel: threading.Event | None
                   ) -> Iterator[Progress]:
    """Decode in a thread pool that runs ahead of the model, embed in
    batches, and write each batch to the cache before going on."""
    batch_size = config.batch_size or (128 if backbone.device.startswith("cuda") else 16)
    total = len(pending)
    yield Progress("embed", 0, total)
    if not total:
        return
    window = batch_size * 3  # decoded images waiting: the model never starves
    done = 0
    with ThreadPoolExecutor(max_workers=_workers(config)) as pool:
        futures = {}
        submitted = 0

        def top_up() -> None:
            nonlocal submitted
            while submitted < total and submitted - done < window:
                key = pending[submitted]
                futures[key] = pool.submit(decode_for_network, contents[key][0].path)
                submitted += 1

        top_up()
        for start in range(0, total, batch_size):
            batch_keys = pending[start:start + batch_size]
            images, ok_keys = [], []
            for key in batch_keys:
                try:
                    array, width, height = futures.pop(key).result()
                except DecodeError as exc:
                    errors.extend(FileError(c.path, exc.reason, exc.detail) for c in contents[key])
                    store.set_errors((c.file_id, exc.reason, exc.detail) for c in contents[key])
                    continue
                images.append(array)
                ok_keys.append(key)
                dims[key] = (width, height)
            done = start + len(batch_keys)
            top_up()
            if images:
                batch = np.stack(images)
                if config.rotations:
                    queries = with_rotations(batch)  # (4N, ...) upright first
                    vectors = backbone.embed(queries).reshape(4, len(images), -1)
                    upright, rotated = vectors[0], vectors[1:].transpose(1, 0, 2)
                else:
                    upright, rotated = backbone.embed(batch), None
                # Score with what the cache holds (float16), so a first scan
                # and a rescan from the cache give identical numbers.
                upright = upright.astype(np.float16)
                rotated = None if rotated is None else rotated.astype(np.float16)
                rows = []
                sizes = []
                for n, key in enumerate(ok_keys):
                    rot = None if rotated is None else rotated[n]
                    content_vectors[key] = (upright[n], rot)
                    for c in contents[key]:
                        rows.append((c.file_id, upright[n], rot))
                        sizes.append((c.file_id, *dims[key]))
                store.put_vectors(backbone.info.model_id, rows)
                store.set_sizes(sizes)
            if cancel is not None and cancel.is_set():
                for future in futures.values():
                    future.cancel()
                _check(cancel)
            yield Progress("embed", done, total)


def _member(c: CachedFile, similarity: float, copy_set: int | None, dims: tuple) -> Member:
    return Member(c.path, round(float(similarity), 2), copy_set, c.size, dims[0], dims[1],
                  c.mtime_ns)


def _exact_groups(contents: dict[str, list[CachedFile]], dims: dict) -> list[Group]:
    """Byte-identical files; copies share their content's pixel size."""
    groups = []
    for key in sorted(contents):
        files = contents[key]
        if len(files) > 1:
            members = tuple(_member(c, 100.0, 0, dims.get(key, (None, None))) for c in files)
            groups.append(Group("exact", members, suggest_keeper(members)))
    return groups


def _similar_groups(backbone: str, usable: list[str], contents: dict[str, list[CachedFile]],
                    dims: dict, pairs: np.ndarray, scores: np.ndarray,
                    min_cosine: float) -> list[Group]:
    def tie_break(node: int) -> tuple:
        key = usable[node]
        first = contents[key][0]
        w, h = dims.get(key, (None, None))
        return keeper_order_key(Member(first.path, 0, None, first.size, w, h, first.mtime_ns))

    groups = []
    for reference, linked in greedy_star_groups(len(usable), pairs, scores, min_cosine,
                                                tie_break):
        members: list[Member] = []
        copy_sets = 0
        for node, cosine in [(reference, 1.0), *linked]:
            key = usable[node]
            files = contents[key]
            copy_set = None
            if len(files) > 1:
                copy_set, copy_sets = copy_sets, copy_sets + 1
            score = 100.0 if node == reference else float(
                calibration.cosine_to_score(backbone, cosine))
            members += [_member(c, score, copy_set, dims[key]) for c in files]
        members_t = tuple(members)
        groups.append(Group("similar", members_t, suggest_keeper(members_t)))
    return groups

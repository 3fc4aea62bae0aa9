"""The scan as a generator of events, cancellable at every yield.

    for event in run_scan(config, cancel):
        ...  # Progress, Notice, ExactGroupsReady, NearExactGroupsReady (during
             # the embedding, when near-exact copies appear), then one ScanResult

Phases: walk -> hash (exact copies) -> decode + embed (only what the cache
lacks, one image per distinct content) -> index -> group. The generator
yields often enough that a GUI worker can stop it within a second, and
every finished batch is already in the cache, so a cancelled scan resumes.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from operator import attrgetter
from pathlib import Path

import numpy as np

from imgdedupe.core.errors import DecodeError, ImgDedupeError, raise_if_cancelled
from imgdedupe.core.files.hashing import content_hash
from imgdedupe.core.files.walk import walk_batches
from imgdedupe.core.groups.graph import (
    FLOOR_SCORE,
    Content,
    ContentTable,
    FileInfo,
    SimilarityGraph,
    exact_groups,
    groups_at,
)
from imgdedupe.core.images.decode_pool import DecodePool, choose_processes
from imgdedupe.core.model import calibration
from imgdedupe.core.model.backbone import Backbone
from imgdedupe.core.model.loading import BackbonePlan, build_backbone, plan_backbone, resolve_device
from imgdedupe.core.model.registry import spec_of
from imgdedupe.core.pairs.ann import StoreVectors
from imgdedupe.core.pairs.search import IndexParams, Lineage, similar_pairs_cached
from imgdedupe.core.records import (
    ExactGroupsReady,
    FileError,
    Group,
    ImageFile,
    NearExactGroupsReady,
    Notice,
    Progress,
    ScanResult,
    ScanStats,
)
from imgdedupe.core.scan import memo as scan_memo
from imgdedupe.core.scan.embed_step import embed_pending
from imgdedupe.core.storage.dblock import ScanLock
from imgdedupe.core.storage.store import CachedFile, Store

log = logging.getLogger(__name__)

Event = Progress | Notice | ExactGroupsReady | NearExactGroupsReady | ScanResult


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
    decode_pool: str = "auto"  # threads, processes, or auto (decode_pool.choose_processes)
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


BackboneLoader = Callable[[BackbonePlan], Backbone]


def run_scan(config: ScanConfig, cancel: threading.Event | None = None,
             backbone: Backbone | None = None,
             load: BackboneLoader | None = None) -> Iterator[Event]:
    """Scan ``config.roots``; see the module docstring. ``backbone`` lets a
    caller (tests) reuse an already loaded model. ``load`` (the window's
    model cache) is asked for the planned model only if something must be
    embedded; by default the scan builds it (model.loading.build_backbone)."""
    clock = _Clock()
    started = time.perf_counter()
    roots = tuple(os.path.abspath(r) for r in config.roots)
    clock.start("open")
    store = Store(config.db_path)  # fails before any work on a bad --db
    try:
        lock = ScanLock(config.db_path)  # one scan per database: see core.dblock
    except BaseException:
        store.close()
        raise
    # The cyclic garbage collector is paused while the scan builds its
    # per-file records (5 or so per file, none in a cycle): each full
    # collection walks every live object, and 100k files trigger several,
    # 0.3 s of a 1.4 s rescan. It runs while images are embedded (_scan).
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        yield from _scan(config, roots, store, clock, cancel, backbone, load, gc_enabled)
    finally:
        if gc_enabled:
            gc.enable()
        store.close()
        lock.release()
        clock.stop()
        log.debug("scan took %.2f s", time.perf_counter() - started)


def _scan(config: ScanConfig, roots: tuple[str, ...], store: Store, clock: _Clock,
          cancel: threading.Event | None, backbone: Backbone | None,
          load: BackboneLoader | None, gc_enabled: bool) -> Iterator[Event]:
    errors: list[FileError] = []
    notices: list[Notice] = []

    # 1. Walk. What it found, with the model id and the settings, decides
    # whether the last scan's answer still holds (core.scan_memo).
    clock.start("walk")
    files = yield from _walk(config, roots, errors, cancel)
    clock.start("plan")
    if backbone is None:
        if config.device == "cuda":
            resolve_device("cuda")  # asked for and missing: say so, memo or not
        plan = plan_backbone(
            config.backbone, weights=config.weights, device=config.device,
            allow_download=config.allow_download,
            bundled_dirs=None if config.bundled_weights_dirs is None
            else [Path(d) for d in config.bundled_weights_dirs], digests=store)
        name, model_id = plan.name, plan.model_id
        for notice in plan.notices:
            notices.append(notice)
            yield notice
    else:
        name, model_id = backbone.info.name, backbone.info.model_id
    memo_path = _cache_dir(config, model_id) / scan_memo.FILE_NAME
    tree = scan_memo.tree_digest(files, errors)
    marks = tuple(store.ignore_marks().values())
    settings = _memo_settings(config, roots, name)
    memo = scan_memo.load(memo_path, scan_memo.memo_key(
        tree, settings, model_id, store.vector_version(model_id), marks))
    if memo is not None:
        yield from _replay(memo, config, notices, name, model_id, clock)
        return

    # 2. Bring the cache's rows up to date, and find exact copies: hash
    # only files whose size is shared.
    clock.start("sync")
    # The store's vectors before this scan changes any: if the pair cache
    # describes exactly this, only the vectors this scan adds need searching.
    start = store.vector_counts(model_id)[1:]
    cached = store.sync_tree(roots, files)
    clock.start("hash")
    unsettled = len(errors)
    contents = yield from _hash_contents(config, store, cached, errors, cancel)
    settled = len(errors) == unsettled  # an unreadable file may be readable next time
    dims = _PixelSizes(contents)
    yield ExactGroupsReady(tuple(_exact_groups(contents, dims)))

    # 3. Decode + embed what the cache lacks, once per distinct content.
    # The decode pool starts before the model is built or loaded, so its
    # worker processes (on a GPU) start while the model loads; its kind is
    # chosen by how many images need decoding, not by the library's size.
    clock.start("embed")
    # Which file's cached vector stands for each content. Only ids are read
    # here: the vectors themselves are loaded only if the pairs must be
    # searched again (see _pairs).
    reps, pending = _cached_contents(contents, store.vector_ids(model_id, config.rotations),
                                     errors)
    from_cache = len(reps)
    if pending:
        if gc_enabled:
            gc.enable()  # hours of decoding and embedding: collect as usual
        clock.start("load_model")
        device = backbone.device if backbone is not None else resolve_device(config.device)
        pool = DecodePool(choose_processes(config.decode_pool, device, len(pending)),
                          _workers(config))
        pool.warm_up()
        try:
            if backbone is None:
                yield Progress("embed", 0, len(pending), "loading the model")
                backbone = load(plan) if load is not None else build_backbone(plan, config.device)
                if backbone.info.model_id != plan.model_id:  # never mix two models' vectors
                    raise ImgDedupeError(f"the model loaded ({backbone.info.model_id}) is not "
                                         f"the one planned ({plan.model_id})")
            clock.start("embed")
            yield from embed_pending(config, backbone, pool, store, contents, pending, reps,
                                     dims, errors, cancel)
        finally:
            pool.close()
        gc.disable()
    embedded = len(reps) - from_cache

    # 4. Index and 5. group. Pairs are scored down to the slider's floor,
    # so the window can regroup at any threshold from the graph alone.
    clock.start("index")
    usable = sorted(reps)  # the index's order: by content
    yield Progress("index", 0, len(usable))
    floor = min(FLOOR_SCORE, config.threshold)
    floor_cosine = calibration.score_to_cosine(name, floor)
    dim = backbone.info.dim if backbone is not None else spec_of(name).dim
    fresh = [reps[k] for k in pending if k in reps]  # embedded by this scan
    pairs, scores, method = _pairs(config, store, [reps[k] for k in usable], floor_cosine,
                                   model_id, dim, start, fresh)
    raise_if_cancelled(cancel)
    yield Progress("index", len(usable), len(usable), method)
    clock.start("group")
    graph, hashed = _graph(name, usable, contents, dims, pairs, scores, floor, marks, store)
    groups = groups_at(graph, config.threshold, marks)
    clock.stop()
    yield Progress("done", 1, 1)
    errors.sort(key=lambda e: e.path)
    if settled and hashed:
        scan_memo.save(memo_path, scan_memo.memo_key(
            tree, settings, model_id, store.vector_version(model_id), marks),
            # The exact groups as a rescan would announce them: with the
            # pixel sizes this scan decoded.
            scan_memo.Memo(groups, tuple(_exact_groups(contents, dims)), tuple(errors),
                           len(files), len(contents), len(reps), graph, marks))
    stats = ScanStats(
        files_seen=len(files),
        unique_contents=len(contents),
        embedded=embedded,
        from_cache=from_cache,
        failed=len(errors),
        timings=dict(clock.timings),
    )
    yield ScanResult(groups, tuple(errors), stats, tuple(notices), name, model_id,
                     config.threshold, graph, marks)


def _memo_settings(config: ScanConfig, roots: tuple[str, ...], name: str) -> dict:
    """The settings a scan's answer depends on (see core.scan_memo)."""
    floor = min(FLOOR_SCORE, config.threshold)
    return {
        "roots": roots,
        "include_hidden": config.include_hidden,
        "threshold": config.threshold,
        "rotations": config.rotations,
        "index": asdict(config.index),
        "cosines": [calibration.score_to_cosine(name, score)
                    for score in (config.threshold, floor)],
    }


def _replay(memo: scan_memo.Memo, config: ScanConfig, notices: list[Notice], name: str,
            model_id: str, clock: _Clock) -> Iterator[Event]:
    """The events of a scan whose answer the memo holds."""
    yield ExactGroupsReady(memo.exact_groups)
    clock.stop()
    yield Progress("done", 1, 1)
    stats = ScanStats(files_seen=memo.files_seen, unique_contents=memo.unique_contents,
                      embedded=0, from_cache=memo.from_cache, failed=len(memo.errors),
                      timings=dict(clock.timings))
    yield ScanResult(memo.groups, memo.errors, stats, tuple(notices), name, model_id,
                     config.threshold, memo.graph, memo.ignored)


def _walk(config: ScanConfig, roots: tuple[str, ...], errors: list[FileError],
          cancel: threading.Event | None) -> Generator[Progress, None, list[ImageFile]]:
    files: list[ImageFile] = []
    reported = 0
    for batch in walk_batches(roots, include_hidden=config.include_hidden, cancel=cancel):
        problems = [item for item in batch if isinstance(item, FileError)]
        if problems:
            errors += problems
            batch = [item for item in batch if not isinstance(item, FileError)]
        files += batch  # type: ignore[arg-type]  # errors were taken out above
        if len(files) - reported >= 500:
            reported = len(files)
            raise_if_cancelled(cancel)
            yield Progress("walk", len(files))
    raise_if_cancelled(cancel)
    yield Progress("walk", len(files), len(files))
    return files


def _hash_contents(config: ScanConfig, store: Store, cached: list[CachedFile],
                   errors: list[FileError], cancel: threading.Event | None
                   ) -> Generator[Progress, None, dict[str, list[CachedFile]]]:
    """Hash what needs it; return the files by content (path order within)."""
    shared = Counter(c.size for c in cached)
    to_hash = [c for c in cached if c.content_hash is None and shared[c.size] > 1]
    hashes: dict[int, str] = {}
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
                raise_if_cancelled(cancel)
                yield Progress("hash", done, len(to_hash))
    store.set_hashes(hashes.items())
    contents: dict[str, list[CachedFile]] = defaultdict(list)
    for c in cached:
        if c.file_id not in gone:
            key = hashes.get(c.file_id) or c.content_hash or f"id:{c.file_id}"
            contents[key].append(c)
    for members in contents.values():
        if len(members) > 1:
            members.sort(key=_path_of)
    yield Progress("hash", len(to_hash), len(to_hash))
    return contents


_path_of = attrgetter("path")


class _PixelSizes(dict):
    """Content key -> (width, height): as decoded by this scan, else as the
    cache knows it. Looked up on demand: a rescan needs the sizes of the
    grouped files only, not of all 100k."""

    def __init__(self, contents: dict[str, list[CachedFile]]) -> None:
        super().__init__()
        self._contents = contents

    def __missing__(self, key: str) -> tuple[int | None, int | None]:
        # Copies share their content's pixel size; any member may know it.
        for c in self._contents[key]:
            if c.width:
                return c.width, c.height
        return None, None


def _cached_contents(contents: dict[str, list[CachedFile]], with_vectors: set[int],
                     errors: list[FileError]) -> tuple[dict[str, int], list[str]]:
    """The representative file of each content with a cached vector, and
    the contents still to embed, sorted. Unchanged files that failed before
    are reported again, not retried."""
    reps: dict[str, int] = {}
    pending: list[str] = []
    # In walk (= memory) order, not sorted: the phase took 0.17 s sorted,
    # 0.05 s so, for 100k contents (cache misses).
    for key, group in contents.items():
        if group[0].file_id in with_vectors:  # the common case, without a call
            reps[key] = group[0].file_id
            continue
        rep = _first_with_vector(group, with_vectors)
        if rep is not None:
            reps[key] = rep
            continue
        bad = next((c for c in group if c.error_reason), None)
        if bad is not None:
            errors.extend(FileError(c.path, bad.error_reason or "", bad.error_detail or "")
                          for c in group)
        else:
            pending.append(key)
    # By file name, then content: copies usually keep their name (a backup
    # folder, "IMG_0042 (1).jpg", an export), so they are decoded, hashed
    # and reported as near-exact copies within seconds of each other rather
    # than minutes apart. The order changes nothing else: every content is
    # embedded either way.
    pending.sort(key=lambda key: (_stem(contents[key][0].path), key))
    return reps, pending


def _stem(path: str) -> str:
    """'IMG_0042' for '/a/IMG_0042 (1).JPG' or '/b/IMG_0042-edited.jpg'."""
    name = os.path.splitext(os.path.basename(path))[0].lower()
    return name.split(" (")[0].split("-edited")[0]


def _first_with_vector(group: list[CachedFile], with_vectors: set[int]) -> int | None:
    for c in group:
        if c.file_id in with_vectors:
            return c.file_id
    return None


def _pairs(config: ScanConfig, store: Store, ids: list[int], min_cosine: float,
           model_id: str, dim: int, start: tuple[int, int] | None = None,
           fresh: list[int] | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Similar pairs among the vectors of ``ids`` (file ids). They are
    cached beside the index, keyed by the store's vector version and the
    ids: when no vector changed, a rescan loads none. ``start`` (the
    store's counts when the scan began) and ``fresh`` (the ids it embedded)
    let the cache serve a scan that added a few vectors (core.pairs_growth)."""
    # Read before the vectors: a write in between only makes the key stale.
    epoch, changes, rows = store.vector_counts(model_id)
    identity = (f"{epoch}:{changes}:{config.rotations}:".encode()
                + np.asarray(ids, dtype=np.int64).tobytes())
    # Files deleted (or trashed) since the pairs were cached leave the
    # other vectors as they were: their pairs are kept, not searched again.
    lineage = Lineage(f"{epoch}:{config.rotations}", changes, rows,
                      np.asarray(ids, dtype=np.int64), start,
                      None if fresh is None else np.asarray(fresh, dtype=np.int64))
    source = StoreVectors(store, model_id, ids, dim, config.rotations)
    return similar_pairs_cached(identity, len(ids), lambda: source, min_cosine, config.index,
                                _cache_dir(config, model_id), lineage)


def _cache_dir(config: ScanConfig, model_id: str) -> Path:
    """Where the index, the pair cache and the scan memo of a model live."""
    return Path(config.db_path).with_suffix(".index") / model_id.replace(":", "_")


def _workers(config: ScanConfig) -> int:
    return config.decode_workers or max(2, os.cpu_count() or 2)


def _content(key: str, files: list[CachedFile], dims: dict,
             digest: str | None = None) -> Content:
    width, height = dims[key]
    return Content(tuple(FileInfo(c.path, c.size, c.mtime_ns) for c in files), width, height,
                   digest or (None if key.startswith("id:") else key))


def _exact_groups(contents: dict[str, list[CachedFile]], dims: dict) -> list[Group]:
    return exact_groups(_content(k, f, dims) for k, f in contents.items() if len(f) > 1)


def _graph(backbone: str, usable: list[str], contents: dict[str, list[CachedFile]],
           dims: dict, pairs: np.ndarray, scores: np.ndarray, floor: float,
           marks: tuple[frozenset[str], ...], store: Store) -> tuple[SimilarityGraph, bool]:
    """The graph of the contents that can group at any threshold >= floor:
    those in a scored pair, and byte copies. The other 99% of a library
    never group, and are left out (at 100k files, building them cost more
    than the rest of a rescan's grouping)."""
    # Which contents are in a pair, by a mask: np.unique (which numpy 2
    # does by hashing) took 149 ms over 2M pairs, holding the GIL.
    in_pair = np.zeros(len(usable), dtype=bool)
    in_pair[pairs.ravel()] = True
    keys = sorted({usable[i] for i in np.flatnonzero(in_pair).tolist()}
                  | {k for k, f in contents.items() if len(f) > 1})
    node_of = {k: n for n, k in enumerate(keys)}
    remap = np.array([node_of.get(k, -1) for k in usable], dtype=np.int64)
    digests, hashed = _digests_for_marks(keys, contents, store) if marks else ({}, True)
    nodes = _content_table(keys, contents, dims, digests)
    graph_pairs = remap[pairs] if len(pairs) else np.zeros((0, 2), dtype=np.int64)
    graph = SimilarityGraph(backbone, nodes, graph_pairs, np.asarray(scores, np.float32), floor)
    return graph, hashed


def _content_table(keys: list[str], contents: dict[str, list[CachedFile]], dims: dict,
                   digests: dict[str, str]) -> ContentTable:
    """The graph's nodes by column: no object per file (see ContentTable)."""
    paths: list[str] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    starts = [0]
    widths: list[int | None] = []
    heights: list[int | None] = []
    decoded = dims.get  # sizes this scan decoded; dims[key] falls back to the cache
    for key in keys:
        files = contents[key]
        if len(files) == 1:  # the common case, without a call per file
            c = files[0]
            paths.append(c.path)
            sizes.append(c.size)
            mtimes.append(c.mtime_ns)
            width, height = decoded(key) or (c.width, c.height)
        else:
            paths += [c.path for c in files]
            sizes += [c.size for c in files]
            mtimes += [c.mtime_ns for c in files]
            width, height = dims[key]
        starts.append(len(paths))
        widths.append(width)
        heights.append(height)
    known = [digests.get(key) or (None if key.startswith("id:") else key) for key in keys]
    return ContentTable(paths, sizes, mtimes, starts, widths, heights, known)


def _digests_for_marks(keys: list[str], contents: dict[str, list[CachedFile]],
                       store: Store) -> tuple[dict[str, str], bool]:
    """Content hashes of the paired files that have none yet, and whether
    every one could be read. A "Not duplicates" mark is keyed by content,
    and a renamed or moved file is a new row without a hash; only paired
    files are hashed, not the library."""
    digests: dict[str, str] = {}
    rows: list[tuple[int, str]] = []
    complete = True
    for key in keys:
        if key.startswith("id:"):
            files = contents[key]
            try:
                digests[key] = content_hash(files[0].path)
            except DecodeError:
                complete = False
                continue  # unreadable now: no mark can apply to it
            rows += [(c.file_id, digests[key]) for c in files]
    store.set_hashes(rows)
    return digests, complete

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

import ctypes
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from imgdedupe.core.errors import ImgDedupeError, raise_if_cancelled
from imgdedupe.core.files.companions import with_companions
from imgdedupe.core.groups.contents import PixelSizes
from imgdedupe.core.groups.graph import FLOOR_SCORE, across_only, groups_at, spans_roots
from imgdedupe.core.groups.keeper_rules import KeeperChain, choose_keepers
from imgdedupe.core.groups.orientation import graph_turned_copies
from imgdedupe.core.images.decode_pool import DecodePool, choose_processes
from imgdedupe.core.images.photo_facts import FactsCache
from imgdedupe.core.model import calibration
from imgdedupe.core.model.backbone import Backbone
from imgdedupe.core.model.loading import BackbonePlan, build_backbone, plan_backbone, resolve_device
from imgdedupe.core.model.registry import spec_of
from imgdedupe.core.pairs.cache import library_pairs
from imgdedupe.core.pairs.rotated import hashes_of, merge_pairs, rotated_pairs
from imgdedupe.core.pairs.search import faiss_missing
from imgdedupe.core.records import Companion, FileError, Group, Notice
from imgdedupe.core.scan import memo as scan_memo
from imgdedupe.core.scan.config import ScanConfig, cache_dir, memo_settings, workers
from imgdedupe.core.scan.embed_step import embed_pending, make_missing_pictures
from imgdedupe.core.scan.events import (
    Event,
    ExactGroupsReady,
    NearExactGroupsReady,
    Progress,
    ScanResult,
    ScanStats,
)
from imgdedupe.core.scan.grouping import exact_copy_groups, similarity_graph
from imgdedupe.core.scan.library import (
    cached_contents,
    hash_contents,
    set_companions_apart,
    walk_files,
)
from imgdedupe.core.scan.verify_step import verify_pairs
from imgdedupe.core.storage.dblock import ScanLock
from imgdedupe.core.storage.store import Store

log = logging.getLogger(__name__)

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
        lock = ScanLock(config.db_path)  # one scan per database: see storage.dblock
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
        # closing(): a caller that stops early closes _scan (its decode pool)
        # before the store and the lock below.
        with closing(_scan(config, roots, store, clock, cancel, backbone, load,
                           gc_enabled)) as events:
            facts = FactsCache()  # one read per file for the whole scan's events
            for event in events:
                yield _with_keepers(event, config.keep_rules, facts)
    finally:
        if gc_enabled:
            gc.enable()
        store.close()
        lock.release()
        clock.stop()
        log.debug("scan took %.2f s", time.perf_counter() - started)


def _scan(config: ScanConfig, roots: tuple[str, ...], store: Store, clock: _Clock,
          cancel: threading.Event | None, backbone: Backbone | None,
          load: BackboneLoader | None, gc_enabled: bool) -> Generator[Event, None, None]:
    errors: list[FileError] = []
    notices: list[Notice] = []
    if config.across and len(roots) < 2:
        # One folder has no "across": every pair lies inside it, so nothing groups.
        notices.append(Notice("across_one_folder", "Compare across folders only needs two "
                                                   "folders or more: with one, nothing is "
                                                   "grouped."))
        yield notices[-1]

    # 1. Walk. What it found, with the model id and the settings, decides
    # whether the last scan's answer still holds (scan.memo).
    clock.start("walk")
    files = yield from walk_files(config, roots, errors, cancel)
    files, companions = set_companions_apart(files)
    of_photo = companions.of_photo
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
    memo_path = cache_dir(config, model_id) / scan_memo.FILE_NAME
    tree = scan_memo.tree_digest(files, errors)
    ignore_marks = tuple(store.ignore_marks().values())
    settings = memo_settings(config, roots, name)
    memo = scan_memo.load(memo_path, scan_memo.memo_key(
        tree, settings, model_id, store.vector_version(model_id), ignore_marks))
    if memo is not None:
        yield from _replay(memo, config, notices, name, model_id, clock, of_photo)
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
    contents = yield from hash_contents(config, store, cached, errors, cancel)
    settled = len(errors) == unsettled  # an unreadable file may be readable next time
    pixel_sizes = PixelSizes(contents)
    early_exact = _across(config, roots, exact_copy_groups(contents, pixel_sizes))
    yield ExactGroupsReady(with_companions(early_exact, of_photo))

    # 3. Decode + embed what the cache lacks, once per distinct content.
    # The decode pool starts before the model is built or loaded, so its
    # worker processes (on a GPU) start while the model loads; its kind is
    # chosen by how many images need decoding, not by the library's size.
    clock.start("embed")
    # Which file's cached vector stands for each content. Only ids are read
    # here: the vectors themselves are loaded only if the pairs must be
    # searched again (pairs.cache).
    # Upright vectors only: turned copies come from the pictures' hashes.
    reps, pending = cached_contents(contents, store.vector_ids(model_id, False), errors)
    from_cache = len(reps)
    if pending and config.cluster is not None:
        if gc_enabled:
            gc.enable()
        if backbone is not None:
            raise ImgDedupeError("a cluster scan builds its model on the cluster's nodes")
        # Imported here: Ray is an optional extra, needed only for --cluster.
        from imgdedupe.core.scan.cluster import embed_on_cluster

        for event in _with_companions(embed_on_cluster(
                config, plan, store, contents, pending, reps, pixel_sizes, errors, cancel),
                of_photo):
            if isinstance(event, NearExactGroupsReady):
                event = replace(event, groups=_across(config, roots, event.groups))
            yield event
        gc.disable()
    elif pending:
        if gc_enabled:
            gc.enable()  # hours of decoding and embedding: collect as usual
        clock.start("load_model")
        device = backbone.device if backbone is not None else resolve_device(config.device)
        pool = DecodePool(choose_processes(config.decode_pool, device, len(pending)),
                          workers(config), cancel=cancel)
        pool.warm_up()
        try:
            if backbone is None:
                yield Progress("embed", 0, len(pending), "loading the model")
                backbone = load(plan) if load is not None else build_backbone(plan, config.device)
                if backbone.info.model_id != plan.model_id:  # never mix two models' vectors
                    raise ImgDedupeError(f"the model loaded ({backbone.info.model_id}) is not "
                                         f"the one planned ({plan.model_id})")
            clock.start("embed")
            for event in _with_companions(embed_pending(
                    config, backbone, pool, store, contents, pending, reps, pixel_sizes,
                    errors, cancel), of_photo):
                if isinstance(event, NearExactGroupsReady):  # early: across folders too
                    event = replace(event, groups=_across(config, roots, event.groups))
                yield event
        finally:
            pool.close()
        gc.disable()
        return_freed_memory()
    embedded = len(reps) - from_cache
    usable = sorted(reps)  # the index's order: by content
    if from_cache:
        # Photos a version before pictures embedded: decoded once more.
        with DecodePool(False, workers(config), cancel=cancel) as pool:
            yield from make_missing_pictures(config, pool, store, contents, usable, reps, cancel)

    # 4. Index, 5. verify and 6. group. Pairs are scored down to the slider's floor,
    # so the window can regroup at any threshold from the graph alone.
    clock.start("index")
    yield Progress("index", 0, len(usable))
    floor = min(FLOOR_SCORE, config.threshold)
    floor_cosine = calibration.score_to_cosine(name, floor)
    dim = backbone.info.dim if backbone is not None else spec_of(name).dim
    fresh = [reps[k] for k in pending if k in reps]  # embedded by this scan
    if faiss_missing(len(usable), config.index):
        notice = Notice("faiss_missing", f"{len(usable):,} photos: the index is Annoy's; "
                        "install imgdedupe[large] (faiss-cpu) for FAISS, faster and "
                        "leaner at this size (docs/scale.md)")
        notices.append(notice)
        yield notice
    pairs, scores, method = library_pairs(store, model_id, [reps[k] for k in usable], dim,
                                          False, floor_cosine, config.index,
                                          cache_dir(config, model_id), start, fresh)
    if config.rotations:
        turned, distances = rotated_pairs(hashes_of(store, [reps[k] for k in usable],
                                                    workers(config)))
        # A turned copy's similarity is its hashes' closeness, on the same scale.
        closeness = calibration.score_to_cosine_array(name, 100.0 - 100.0 * distances / 64)
        pairs, scores = merge_pairs(pairs, scores, turned, closeness)
    raise_if_cancelled(cancel)
    yield Progress("index", len(usable), len(usable), method)
    # 5. Verify: the embedding proposes, local features decide the tier.
    clock.start("verify")
    verdicts = yield from verify_pairs(store, pairs, scores, usable, contents, reps,
                                       workers(config), cancel, pixel_sizes)
    clock.start("group")
    graph, hashed = similarity_graph(name, usable, contents, pixel_sizes, pairs, scores,
                                     verdicts, floor, ignore_marks, store)
    graph = replace(graph, companions=of_photo)
    if config.across:
        graph = across_only(graph, roots)
    groups = groups_at(graph, config.threshold, ignore_marks)
    clock.stop()
    yield Progress("done", 1, 1)
    errors.sort(key=lambda e: e.path)
    if settled and hashed:
        scan_memo.save(memo_path, scan_memo.memo_key(
            tree, settings, model_id, store.vector_version(model_id), ignore_marks),
            # The exact groups as a rescan would announce them: with the
            # pixel sizes this scan decoded.
            scan_memo.Memo(groups, _across(config, roots, exact_copy_groups(contents,
                                                                             pixel_sizes)),
                           tuple(errors), len(files), len(contents), len(reps), graph,
                           ignore_marks))
    stats = ScanStats(
        files_seen=len(files),
        unique_contents=len(contents),
        embedded=embedded,
        from_cache=from_cache,
        failed=len(errors),
        timings=dict(clock.timings),
    )
    yield ScanResult(groups, tuple(errors), stats, tuple(notices), name, model_id,
                     config.threshold, graph, ignore_marks)


def _with_keepers(event: Event, chain: KeeperChain, facts: FactsCache) -> Event:
    """Every group a scan announces, with the keeper ``chain`` chooses and
    why. After the memo: a replay's groups are chosen again, so a new chain
    needs no rescan."""
    if isinstance(event, ScanResult):
        started = time.perf_counter()
        turned = graph_turned_copies(event.graph, event.groups)
        groups = choose_keepers(event.groups, chain, facts, turned)
        # Reading EXIF for the groups' members is the scan's last cost: shown.
        timings = {**event.stats.timings, "keepers": round(time.perf_counter() - started, 4)}
        return replace(event, groups=groups, stats=replace(event.stats, timings=timings))
    if isinstance(event, (ExactGroupsReady, NearExactGroupsReady)):
        return replace(event, groups=choose_keepers(event.groups, chain, facts))
    return event


def _with_companions(events: Iterator[Progress | NearExactGroupsReady],
                     of_photo: Mapping[str, tuple[Companion, ...]]
                     ) -> Iterator[Progress | NearExactGroupsReady]:
    """``events`` with the companions given to the near-exact groups' members."""
    for event in events:
        if isinstance(event, NearExactGroupsReady) and of_photo:
            event = replace(event, groups=with_companions(event.groups, of_photo))
        yield event


def _across(config: ScanConfig, roots: tuple[str, ...], groups: list[Group] | tuple[Group, ...]
            ) -> tuple[Group, ...]:
    """Early groups as "compare across folders only" shows them: those
    whose photos lie under two roots or more (the final groups are
    filtered on the graph: groups.graph.across_only)."""
    if not config.across:
        return tuple(groups)
    return tuple(g for g in groups if spans_roots((m.path for m in g.members), roots))


def _replay(memo: scan_memo.Memo, config: ScanConfig, notices: list[Notice], name: str,
            model_id: str, clock: _Clock,
            of_photo: Mapping[str, tuple[Companion, ...]]) -> Iterator[Event]:
    """The events of a scan whose answer the memo holds, with the
    companions found now (a sidecar added since is not in the memo's key)."""
    yield ExactGroupsReady(with_companions(memo.exact_groups, of_photo))
    clock.stop()
    yield Progress("done", 1, 1)
    stats = ScanStats(files_seen=memo.files_seen, unique_contents=memo.unique_contents,
                      embedded=0, from_cache=memo.from_cache, failed=len(memo.errors),
                      timings=dict(clock.timings))
    graph = replace(memo.graph, companions=of_photo)
    yield ScanResult(with_companions(memo.groups, of_photo), memo.errors, stats,
                     tuple(notices), name, model_id, config.threshold, graph, memo.ignore_marks)


def return_freed_memory() -> None:
    """Give the heap the embedding freed back to the system. glibc keeps
    each decode thread's freed memory in that thread's arena for reuse;
    verification's threads then grow arenas of their own on top of it
    (docs/performance.md: a 10,000-photo scan's peak). Linux only; a
    no-op where glibc's malloc_trim is missing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass

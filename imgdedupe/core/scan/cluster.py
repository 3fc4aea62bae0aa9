"""The embedding step on a Ray cluster (``imgdedupe scan --cluster ADDRESS``).

The walk, the hashing plan and the cache stay where the command runs; only
decoding and the model move. The contents still to embed go to the
cluster as a Ray Data dataset of paths (storage every node sees: a NAS
mount), one block per batch. Decode and perceptual hash run in CPU tasks
(scan.cluster_work.decode_batch); the embedding runs in actors holding
the single-machine backbone (one per GPU, else one per few CPUs). Results
stream back a batch at a time and this process, the one writer, stores
them with the local step's own ``store_batch``: the cache, the memo, the
tiers and the window cannot tell a clustered scan from a local one.

Ray retries a task or restarts an actor whose worker or node died, so a
node lost mid-run costs its in-flight batches, which run again elsewhere;
every batch already back is in the cache. Cancel stops taking batches
within POLL_S and leaves (a cluster started here is shut down).

Through Ray Client (``ray://``) this process has no Ray worker of its own,
and Ray Data's executor needs one: the pipeline then runs in an actor on
the cluster (PipelineHost) and its batches come back through the client.

Imported only for --cluster: ``ray`` is the optional extra
``imgdedupe[cluster]``, absent from the desktop installers.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from imgdedupe.core.errors import ImgDedupeError, raise_if_cancelled
from imgdedupe.core.groups.contents import PixelSizes
from imgdedupe.core.groups.near_exact import NearExactIndex, near_exact_groups
from imgdedupe.core.model.loading import BackbonePlan
from imgdedupe.core.records import FileError
from imgdedupe.core.scan.cluster_work import EmbedActor, decode_batch
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.embed_step import NEAR_EXACT_EVERY_S, store_batch
from imgdedupe.core.scan.events import NearExactGroupsReady, Progress
from imgdedupe.core.storage.store import CachedFile, Store

log = logging.getLogger(__name__)

# How often a wait for the next batch looks at the cancel event (the
# README promises a cancel within a second).
POLL_S = 0.05
# CPUs one embedding actor takes on a cluster without GPUs: torch's
# convolutions scale well to about four threads, and more actors keep the
# cluster's CPUs busy between batches.
CPUS_PER_ACTOR = 4
DECODE_TASK_MEMORY = 512 * 2**20
DECODE_RETRIES = 3
# How long a ray:// address may take to accept a connection. Ray Client
# itself tries for 30 s (three attempts, 5 + 10 + 15 s; its only bound,
# RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S, is read when Ray is imported
# and ray.init takes no retry count), so a wrong address is checked
# here first and fails in seconds.
CONNECT_PROBE_S = 5.0
RAY_CLIENT_PORT = 10001  # Ray's default, when the address names none
# Connections tried when the head says it could not start this client's
# server (_init_retrying), and what Ray Client then says.
CLIENT_ATTEMPTS = 3
CLIENT_SERVER_FAILED = ("Starting Ray client server failed", "Initialization failure from server")


class ClusterError(ImgDedupeError):
    """The cluster could not be reached, or lacks Ray or imgdedupe."""


@dataclass(frozen=True)
class Layout:
    """How the embedding runs on the cluster, chosen from its resources."""

    actors: int
    device: str  # "cuda": one GPU an actor; "cpu": cpus_per_actor each
    cpus_per_actor: float
    batch_size: int


def layout_for(resources: dict[str, float], batch_size: int = 0) -> Layout:
    """One actor per GPU; without GPUs, one per CPUS_PER_ACTOR CPUs, with
    a quarter of the CPUs (at least one) left to the decode tasks."""
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    if gpus:
        return Layout(gpus, "cuda", 1, batch_size or 128)
    reserve = max(1, cpus // 4)
    per_actor = max(1, min(CPUS_PER_ACTOR, cpus - reserve))
    actors = max(1, (cpus - reserve) // per_actor)
    return Layout(actors, "cpu", per_actor, batch_size or 16)


def connect(address: str) -> bool:
    """Join the cluster at ``address`` (``ray://host:port``, or ``auto``:
    the Ray cluster running on this machine, else a new one started here).
    Whether this call connected (and so must disconnect); a process
    already connected (a test, a notebook) keeps its own connection."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterError("--cluster needs Ray: pip install 'imgdedupe[cluster]'") from exc
    if ray.is_initialized():
        return False
    if address.startswith("ray://"):
        _probe(address)
    try:
        if address == "auto":
            try:
                ray.init(address="auto", log_to_driver=False)
            except ConnectionError:
                log.info("no Ray cluster runs here: starting one on this machine")
                ray.init(log_to_driver=False)
        else:
            _init_retrying(ray, address)
    except Exception as exc:  # Ray raises many kinds; the user needs the address
        hint = ""
        if address.startswith("ray://") and os.environ.get("RAY_AUTH_MODE") != "token":
            # What a cluster with token authentication answers a client
            # without the token: Ray Client reports only a timeout.
            hint = (" (if the cluster uses token authentication, set RAY_AUTH_MODE=token"
                    " and its token in RAY_AUTH_TOKEN or ~/.ray/auth_token)")
        raise ClusterError(f"could not join the Ray cluster at {address!r}: {exc}{hint}") from exc
    return True


def _init_retrying(ray: Any, address: str) -> None:  # noqa: ANN401 (the ray module)
    """ray.init, again when the head failed to start this client's server:
    a Ray Client head's proxy starts one server process per client, and
    here that process died at birth (a zombie, or never answering) in 3 of
    15 connections to a healthy head (tests/core/test_cluster.py); a new
    connection gets a new one."""
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            ray.init(address=address, log_to_driver=False)
            return
        except Exception as exc:
            if attempt == CLIENT_ATTEMPTS or not any(
                    sign in str(exc) for sign in CLIENT_SERVER_FAILED):
                raise
            log.warning("the Ray head could not start a client server (%s): trying again",
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            with suppress(Exception):
                ray.shutdown()


def _probe(address: str) -> None:
    """Raise a ClusterError within CONNECT_PROBE_S when nothing accepts a
    connection at a ray:// address (see CONNECT_PROBE_S)."""
    try:
        parts = urlsplit(address)
        host, port = parts.hostname or "", parts.port or RAY_CLIENT_PORT
    except ValueError as exc:  # a port that is no number
        raise ClusterError(f"could not join the Ray cluster at {address!r}: {exc}") from exc
    try:
        socket.create_connection((host, port), timeout=CONNECT_PROBE_S).close()
    except OSError as exc:
        raise ClusterError(f"could not join the Ray cluster at {address!r}: nothing answers "
                           f"at {host}:{port} ({exc})") from exc


def embed_on_cluster(config: ScanConfig, plan: BackbonePlan, store: Store,
                     contents: dict[str, list[CachedFile]], pending: list[str],
                     reps: dict[str, int], pixel_sizes: PixelSizes,
                     errors: list[FileError], cancel: threading.Event | None
                     ) -> Iterator[Progress | NearExactGroupsReady]:
    """scan.embed_step.embed_pending's events and cache writes, with the
    decoding and the model on the cluster at ``config.cluster``."""
    total = len(pending)
    yield Progress("embed", 0, total, f"joining the Ray cluster at {config.cluster}")
    if not total:
        return
    assert config.cluster is not None
    owned = connect(config.cluster)
    stop = threading.Event()
    try:
        import ray

        layout = layout_for(ray.cluster_resources(), config.batch_size)
        log.info("cluster: %d %s embedding actor(s), batches of %d", layout.actors,
                 layout.device, layout.batch_size)
        paths = [contents[k][0].path for k in pending]
        # Through ray:// the pipeline runs in an actor (the module's doc).
        hosted = ray.util.client.ray.is_connected()
        results = partial(_hosted_results if hosted else _results, plan, layout, pending, paths)
        batches = _stream(results, stop)
        yield Progress("embed", 0, total, f"{layout.actors} embedding actor(s) starting")
        yield from _store_results(config, plan, store, contents, batches, total, reps,
                                  pixel_sizes, errors, cancel)
    finally:
        stop.set()
        if owned:
            import ray

            ray.shutdown()  # also stops the tasks and actors still running


def _dataset(plan: BackbonePlan, layout: Layout, keys: list[str], paths: list[str]):  # noqa: ANN202
    """The pipeline: paths -> decode tasks -> embedding actors. One block a
    batch, so a retry redoes one batch, and each forward sees the same
    photos as the local step's (its vectors are the local ones)."""
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the scan reports its own progress
    items = [{"key": k, "path": p} for k, p in zip(keys, paths, strict=True)]
    blocks = math.ceil(len(items) / layout.batch_size)
    files = ray.data.from_items(items, override_num_blocks=blocks)
    # Decoding in tasks of their own, not fused into the actors: an actor
    # would decode and embed in turn, and its CPUs or GPU wait on the
    # decode. The memory each reserves also keeps a node from running more
    # decodes than it holds (a 50 Mpx photo decodes through ~300 MB).
    decoded = files.map_batches(decode_batch, batch_size=layout.batch_size,
                                batch_format="numpy", num_cpus=1, memory=DECODE_TASK_MEMORY,
                                ray_remote_args_fn=_decode_task_options)
    return decoded.map_batches(
        EmbedActor, batch_size=layout.batch_size, batch_format="numpy",
        fn_constructor_kwargs={"plan": plan, "device": layout.device,
                               "threads": int(layout.cpus_per_actor)},
        # An actor whose worker or node dies is started again and its
        # batch retried: Ray Data's default for actors (max_restarts and
        # max_task_retries -1), as for its tasks.
        compute=ray.data.ActorPoolStrategy(size=layout.actors),
        num_gpus=1 if layout.device == "cuda" else 0,
        num_cpus=layout.cpus_per_actor if layout.device == "cpu" else 1)


def _results(plan: BackbonePlan, layout: Layout, keys: list[str], paths: list[str]
             ) -> Iterator[dict]:
    """The pipeline's result batches, one per block, as they complete."""
    ds = _dataset(plan, layout, keys, paths)
    return iter(ds.iter_batches(batch_size=None, batch_format="numpy"))


class PipelineHost:
    """Runs the pipeline on the cluster for a Ray Client driver, whose
    process has no Ray worker for Ray Data's executor (Ray 2.60 fails with
    "'Worker' object has no attribute 'core_worker'"). The executor runs
    on in this actor's threads between calls, as it would locally."""

    def __init__(self, plan: BackbonePlan, layout: Layout, keys: list[str],
                 paths: list[str]) -> None:
        self.batches = _results(plan, layout, keys, paths)

    def next_batch(self) -> dict | None:
        """The next result batch; None once all are out."""
        return next(self.batches, None)


def _hosted_results(plan: BackbonePlan, layout: Layout, keys: list[str], paths: list[str]
                    ) -> Iterator[dict]:
    """_results through a PipelineHost on the cluster. No CPU for it: the
    layout gave them all to the decode tasks and actors."""
    import ray

    # Typed as Any: Ray's stubs do not follow an actor class made remote.
    host: Any = ray.remote(num_cpus=0)(PipelineHost).remote(plan, layout, keys, paths)
    try:
        while (batch := ray.get(host.next_batch.remote())) is not None:
            yield batch
    finally:
        # Closed when done or cancelled: the actor's own tasks and actors
        # (the pipeline's) die with it. Already disconnected (a cancel
        # while a batch was awaited): the client's job, and so the actor,
        # ended with the connection.
        with suppress(Exception):
            ray.kill(host)


def _decode_task_options() -> dict[str, int]:
    """A decode task whose worker died runs again, DECODE_RETRIES times:
    not Ray Data's default of forever, since a file that crashes its
    decoder would then hold the scan up for good."""
    return {"max_retries": DECODE_RETRIES}


_DONE = object()


def _stream(open_results: Callable[[], Iterator[dict]], stop: threading.Event
            ) -> queue.Queue:
    """The result batches, taken in a thread into a short queue, so that
    the writer can look at the cancel event while it waits."""
    batches: queue.Queue = queue.Queue(maxsize=4)

    def take() -> None:
        results = open_results()
        try:
            for batch in results:
                while not stop.is_set():
                    try:
                        batches.put(batch, timeout=POLL_S)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            batches.put(_DONE)
        except BaseException as exc:  # handed to the writer, which raises it
            batches.put(exc)
        finally:
            # A cancelled scan's dataset stops here: closing its iterator
            # shuts its executor down (tasks and actors), or kills the
            # PipelineHost running it, on a cluster this process did not
            # start too.
            close = getattr(results, "close", None)
            if close is not None:
                close()

    threading.Thread(target=take, name="cluster-results", daemon=True).start()
    return batches


def _store_results(config: ScanConfig, plan: BackbonePlan, store: Store,
                   contents: dict[str, list[CachedFile]], batches: queue.Queue, total: int,
                   reps: dict[str, int], pixel_sizes: PixelSizes, errors: list[FileError],
                   cancel: threading.Event | None
                   ) -> Iterator[Progress | NearExactGroupsReady]:
    done = 0
    near = NearExactIndex()
    found = 0
    shown_at = -NEAR_EXACT_EVERY_S
    while True:
        raise_if_cancelled(cancel)
        try:
            batch = batches.get(timeout=POLL_S)
        except queue.Empty:
            continue
        if batch is _DONE:
            break
        if isinstance(batch, BaseException):
            raise ClusterError(f"the cluster's embedding failed: {batch}") from batch
        found += _store_one(plan, store, contents, batch, reps, pixel_sizes, errors, near)
        done += len(batch["key"])
        now = time.perf_counter()
        if found and (now - shown_at >= NEAR_EXACT_EVERY_S or done == total):
            found, shown_at = 0, now
            yield NearExactGroupsReady(near_exact_groups(near, contents, pixel_sizes), len(near))
        yield Progress("embed", done, total)
    if done != total:  # a batch lost without an error: never a silent gap
        raise ClusterError(f"the cluster returned {done} of {total} photos")


def _store_one(plan: BackbonePlan, store: Store, contents: dict[str, list[CachedFile]],
               batch: dict[str, np.ndarray], reps: dict[str, int], pixel_sizes: PixelSizes,
               errors: list[FileError], near: NearExactIndex) -> int:
    """Store one batch as the local step does; new near-exact pairs."""
    found = 0
    ok_keys: list[str] = []
    ok_rows: list[int] = []
    pictures = []
    failed = []
    for n, key in enumerate(batch["key"]):
        key = str(key)
        reason = str(batch["error_reason"][n])
        if reason:
            detail = str(batch["error_detail"][n])
            errors.extend(FileError(c.path, reason, detail) for c in contents[key])
            failed += [(c.file_id, reason, detail) for c in contents[key]]
            continue
        taken = float(batch["taken"][n])
        picture = bytes(batch["picture"][n])
        pictures += [(c.file_id, picture, None if math.isnan(taken) else taken)
                     for c in contents[key]]
        pixel_sizes[key] = (int(batch["width"][n]), int(batch["height"][n]))
        found += near.add(key, int(batch["phash"][n]))
        ok_keys.append(key)
        ok_rows.append(n)
    if failed:
        store.set_errors(failed)
    if ok_keys:
        store_batch(store, plan.model_id, contents, ok_keys, batch["vector"][ok_rows],
                    pictures, reps, pixel_sizes)
    return found

"""The pool that decodes files ahead of the model: threads or processes.

Threads share one GIL. On a CPU the model is the bottleneck and threads are
enough (Pillow's draft decode and resize release the GIL). On a GPU the
model is ~20x faster than decoding, and the GIL is shared by 16 decoders,
the model's hundreds of small calls per forward and the scan's own
bookkeeping. Processes each have their own GIL: on a 16-core H100 machine
16 of them decoded 10-25% more photos/s than 16 threads, and the model's
calls took a quarter of the time while they ran (docs/performance.md,
GPU). They cost a start-up, so they are used for large GPU scans only.

A decoder that crashes its process (a hostile file hitting a bug in a
native codec) breaks a process pool, failing every file in flight. The
pool then starts afresh, and those suspects are decoded one at a time in
a separate one-process pool, so the one file that crashes it is named and
reported, and every other file is decoded. (In a thread pool the same
crash ends the app: one more reason processes are worth their start-up.)

Decoding is contained (docs/reliability.md): a file whose header promises
a costly decode (decode.QUICK_MAX_WORK, QUICK_MAX_BYTES) is not decoded by
a worker but in that one-process pool, one at a time, where it can be
killed. A decode that runs past TIME_BUDGET_S is abandoned and its file
reported (DECODE_TIMEOUT): a stuck process is killed, a stuck thread
(which cannot be) is left to finish on its own while a fresh pool takes
the rest. With ``cancel`` set, ``result`` raises ScanCancelled within
POLL_S and ``close`` waits for no decode.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from typing import NamedTuple

import numpy as np

from imgdedupe.core.errors import DecodeError, raise_if_cancelled
from imgdedupe.core.images.decode import DeferredDecode, defer_slow_decodes, prepare
from imgdedupe.core.images.phash import perceptual_hash
from imgdedupe.core.images.preprocess import decode_for_network, verification_picture
from imgdedupe.core.records import ErrorReason

logger = logging.getLogger(__name__)

DECODE_TIMEOUT = ErrorReason.DECODE_TIMEOUT
# A decode running this long is abandoned. The slowest file decode_image
# accepts took 3 s here (a 64 Mpx PNG, two cores shared with the model);
# 20 s leaves room for a slower machine, and is what a hostile file costs
# at most, once: its error is cached with the file.
TIME_BUDGET_S = 20.0
# How often a wait looks at the cancel event (the README promises a
# cancel within a second).
POLL_S = 0.05
# A fresh process imports numpy and Pillow before it can decode: ~0.5 s,
# far more on a loaded machine. Not counted in the budget, up to this.
START_BUDGET_S = 60.0


class Decoded(NamedTuple):
    array: np.ndarray  # the network input, (224, 224, 3) uint8
    width: int
    height: int
    phash: int
    taken: float | None  # EXIF capture time
    picture: bytes  # the verification picture (preprocess.verification_picture)


# Below this many files a process pool's start-up costs more than it
# wins. Measured on a 16-core H100 machine (docs/performance.md, GPU): 16
# processes decode 10-25% faster than 16 threads (598-691 vs 477-644 12 MP
# photos/s) and keep 580 photos/s inside a scan against 400-449 for
# threads, but the first batch reaches the model 0.6-1.6 s later (each
# worker imports numpy, Pillow and the main module). At 1,024 photos
# threads won; at 4,096 processes finished the embedding 1.8-2.9 s sooner.
# The break-even lies between ~1,200 and ~4,800 photos by those figures.
PROCESSES_FROM = 3000


def decode_and_hash(path: str) -> Decoded:
    """In the pool: the network input, its full-size width and height, its
    perceptual hash, capture time and verification picture (0.1 + 0.4 ms,
    off the model's thread; the 224 x 224 array is already there)."""
    array, width, height, taken = decode_for_network(path)
    return Decoded(array, width, height, perceptual_hash(array), taken,
                   verification_picture(array))


def _ready() -> None:
    """Its return tells that a worker process is ready to decode."""
    prepare()


def _process_pool(workers: int, quick_only: bool = True) -> ProcessPoolExecutor:
    # spawn, not fork: the parent has threads (and maybe a CUDA context),
    # which a forked child inherits in whatever state they were in.
    return ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=defer_slow_decodes if quick_only else None)


def _kill(executor: ProcessPoolExecutor) -> None:
    """Kill every process of ``executor`` now and leave it broken."""
    kill_workers = getattr(executor, "kill_workers", None)  # Python >= 3.14
    if kill_workers is not None:
        kill_workers()
    else:  # before it, the processes are private
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            process.kill()
    executor.shutdown(wait=False, cancel_futures=True)


class _Overran(Exception):
    """A decode ran past its time budget."""


class DecodePool:
    """Submit files by key, take their results in any order.

    ``result`` returns what ``work`` returned or raises DecodeError (or
    ScanCancelled once ``cancel`` is set); a crashed or stuck decoder
    becomes a DecodeError for that one file. ``work`` runs in a process
    for the costly files even in a thread pool: a module-level function.
    """

    def __init__(self, processes: bool, workers: int,
                 work: Callable[[str], Decoded] | None = None, *,
                 cancel: threading.Event | None = None,
                 time_budget_s: float = TIME_BUDGET_S) -> None:
        self.processes = processes
        self._workers = workers
        # ``work`` must be importable by name for a process pool (a module-
        # level function); the default is looked up now, so tests can swap it.
        self._work = work or decode_and_hash
        self._cancel = cancel
        self._budget = time_budget_s
        self._futures: dict[str, Future] = {}
        self._paths: dict[str, str] = {}
        self._suspects: set[str] = set()
        self._used = False
        self._quarantine: ProcessPoolExecutor | None = None
        self._no_process = False  # the quarantine process could not start
        self._left: list[Executor] = []  # thread pools left to a stuck decode
        self._up_since: float | None = None  # when the pool's workers were up
        self._executor = self._new_executor()

    def _new_executor(self) -> Executor:
        if not self.processes:
            self._up_since = time.monotonic()
            return ThreadPoolExecutor(max_workers=self._workers,
                                      initializer=defer_slow_decodes)
        self._up_since = None
        executor = _process_pool(self._workers)
        # The time budget counts from when a process could run the file.
        executor.submit(_ready).add_done_callback(self._mark_up)
        return executor

    def _mark_up(self, future: Future) -> None:
        if not future.cancelled() and future.exception() is None \
                and self._up_since is None:
            self._up_since = time.monotonic()

    def warm_up(self) -> None:
        """Start every worker now (a process imports numpy and Pillow
        first, ~0.5 s), so that it is ready when the first file comes."""
        if self.processes:
            for _ in range(self._workers):
                self._executor.submit(_ready)

    def submit(self, key: str, path: str) -> None:
        self._used = True
        self._paths[key] = path
        self._futures[key] = self._executor.submit(self._work, path)

    def result(self, key: str) -> Decoded:
        if key in self._suspects:
            self._suspects.discard(key)
            return self._alone(self._paths.pop(key))
        future, path = self._futures.pop(key), self._paths.pop(key)
        try:
            return self._wait(future, in_pool=True).result()
        except BrokenProcessPool:
            self._restart()
            return self._alone(path)
        except DeferredDecode:
            return self._alone(path, deferred=True)
        except _Overran:
            logger.warning("decoding %r took over %.0f s: %s", path, self._budget,
                           "killed" if self.processes else "abandoned")
            self._replace_stuck_pool()
            raise self._timeout() from None

    def _wait(self, future: Future, in_pool: bool) -> Future:
        """``future`` once done; _Overran once it has run past the budget
        (counted from when it runs and its pool is up), ScanCancelled as
        soon as the caller cancels."""
        started: float | None = None
        while not future.done():
            raise_if_cancelled(self._cancel)
            wait([future], timeout=POLL_S, return_when=FIRST_COMPLETED)
            now = time.monotonic()
            up = self._up_since if in_pool else now
            if started is None and future.running() and up is not None:
                started = max(now, up)
            if started is not None and now - started > self._budget and not future.done():
                raise _Overran
        return future

    def _timeout(self) -> DecodeError:
        return DecodeError(DECODE_TIMEOUT,
                           f"decoding this file took over {self._budget:.0f} s and was "
                           f"abandoned (a hostile or damaged file)")

    def _replace_stuck_pool(self) -> None:
        """A worker is stuck in a decode: a fresh pool takes the files that
        have not started (processes: every file not done, the stuck
        process being killed); a thread that runs one finishes it alone."""
        old = self._executor
        if isinstance(old, ProcessPoolExecutor):
            _kill(old)
        else:
            old.shutdown(wait=False)
            self._left.append(old)
        self._executor = self._new_executor()
        for key, future in self._futures.items():
            moved = future.cancel() or (self.processes and not _kept(future))
            if moved:
                self._futures[key] = self._executor.submit(self._work, self._paths[key])

    def _restart(self) -> None:
        """Every file in flight is a suspect: the crash failed them all."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._suspects.update(self._futures)
        self._futures.clear()
        self._executor = self._new_executor()

    def _alone(self, path: str, deferred: bool = False) -> Decoded:
        """Decode one file in the one-process quarantine pool, which holds
        one file at a time and does the costly decodes the workers leave:
        a crash there names that file, and a decode past the budget is
        killed. The pool is kept for the next file (a new process costs
        ~0.5 s). Where no process can start (a script run without the
        ``if __name__ == "__main__"`` guard that spawn needs), a costly
        file is decoded in this thread, as before there was a pool."""
        if deferred and self._no_process:
            return self._work(path)
        if self._quarantine is None:
            self._quarantine = _process_pool(1, quick_only=False)
            if not self._started(self._quarantine.submit(_ready)) and deferred:
                logger.warning("no decoder process could start: costly files are "
                               "decoded in the scan's own thread")
                self._drop_quarantine()
                self._no_process = True
                return self._work(path)
        try:
            future = self._quarantine.submit(self._work, path)
            return self._wait(future, in_pool=False).result()
        except BrokenProcessPool:
            self._drop_quarantine()
            raise DecodeError(
                ErrorReason.DECODER_CRASHED,
                "the image decoder crashed on this file (it was decoded in a process "
                "of its own, so the scan went on)") from None
        except _Overran:
            logger.warning("decoding %r took over %.0f s: killed", path, self._budget)
            self._drop_quarantine()
            raise self._timeout() from None

    def _started(self, ready: Future) -> bool:
        """Wait (cancellably) for a new process to start, so that its
        start-up is not counted as the file's time; whether it did."""
        deadline = time.monotonic() + START_BUDGET_S
        while not ready.done() and time.monotonic() < deadline:
            raise_if_cancelled(self._cancel)
            wait([ready], timeout=POLL_S)
        return ready.done() and not ready.cancelled() and ready.exception() is None

    def _drop_quarantine(self) -> None:
        if self._quarantine is not None:
            _kill(self._quarantine)
            self._quarantine = None

    def cancel_pending(self) -> None:
        for future in self._futures.values():
            future.cancel()

    def close(self) -> None:
        """Stop the pool. A cancelled scan waits for no decode (processes
        are killed); otherwise the decodes already running finish."""
        stopping = self._cancel is not None and self._cancel.is_set()
        if stopping and isinstance(self._executor, ProcessPoolExecutor):
            _kill(self._executor)
        # Not waiting when nothing was asked for: a pool warmed up for a scan
        # that then found every vector cached need not finish starting.
        self._executor.shutdown(wait=self._used and not stopping, cancel_futures=True)
        for left in self._left:
            left.shutdown(wait=False, cancel_futures=True)
        if self._quarantine is not None:
            if stopping:
                _kill(self._quarantine)
            self._quarantine.shutdown(wait=not stopping)

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kept(future: Future) -> bool:
    """Whether a future of a killed process pool holds its own answer (a
    result or the file's own error), not the kill's BrokenProcessPool."""
    if not future.done() or future.cancelled():
        return False
    return not isinstance(future.exception(), BrokenProcessPool)


def choose_processes(mode: str, device: str, files: int) -> bool:
    """``mode`` is ScanConfig.decode_pool: auto, threads or processes."""
    if mode not in ("auto", "threads", "processes"):
        raise ValueError(f"decode_pool must be auto, threads or processes, not {mode!r}")
    if mode != "auto":
        return mode == "processes"
    # A CPU model is slower than threaded decoding (measured: the model
    # waits for nothing), so processes would only add memory and start-up.
    return device.startswith("cuda") and files >= PROCESSES_FROM and (os.cpu_count() or 1) > 2

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
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import NamedTuple

import numpy as np

from imgdedupe.core.errors import DecodeError
from imgdedupe.core.images.phash import perceptual_hash
from imgdedupe.core.images.preprocess import decode_for_network, verification_picture
from imgdedupe.core.records import ErrorReason


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
    """A no-op: its return tells that a worker process has started."""


def _process_pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the parent has threads (and maybe a CUDA context),
    # which a forked child inherits in whatever state they were in.
    return ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"))


class DecodePool:
    """Submit files by key, take their results in any order.

    ``result`` returns what ``work`` returned or raises DecodeError; a
    crashed decoder process becomes a DecodeError for that one file.
    """

    def __init__(self, processes: bool, workers: int,
                 work: Callable[[str], Decoded] | None = None) -> None:
        self.processes = processes
        self._workers = workers
        # ``work`` must be importable by name for a process pool (a module-
        # level function); the default is looked up now, so tests can swap it.
        self._work = work or decode_and_hash
        self._executor: Executor = (_process_pool(workers) if processes
                                    else ThreadPoolExecutor(max_workers=workers))
        self._futures: dict[str, Future] = {}
        self._paths: dict[str, str] = {}
        self._suspects: set[str] = set()
        self._used = False
        self._quarantine: ProcessPoolExecutor | None = None

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
            return future.result()
        except BrokenProcessPool:
            self._restart()
            return self._alone(path)

    def _restart(self) -> None:
        """Every file in flight is a suspect: the crash failed them all."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._suspects.update(self._futures)
        self._futures.clear()
        self._executor = _process_pool(self._workers)

    def _alone(self, path: str) -> Decoded:
        """Decode one suspect in the one-process quarantine pool, which
        holds one file at a time: a crash there names that file. The pool
        is kept for the next suspect (a new process costs ~0.5 s)."""
        if self._quarantine is None:
            self._quarantine = _process_pool(1)
        try:
            return self._quarantine.submit(self._work, path).result()
        except BrokenProcessPool:
            self._quarantine.shutdown(wait=True)
            self._quarantine = None
            raise DecodeError(
                ErrorReason.DECODER_CRASHED,
                "the image decoder crashed on this file (it was decoded in a process "
                "of its own, so the scan went on)") from None

    def cancel_pending(self) -> None:
        for future in self._futures.values():
            future.cancel()

    def close(self) -> None:
        # Not waiting when nothing was asked for: a pool warmed up for a scan
        # that then found every vector cached need not finish starting.
        self._executor.shutdown(wait=self._used, cancel_futures=True)
        if self._quarantine is not None:
            self._quarantine.shutdown(wait=True)

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def choose_processes(mode: str, device: str, files: int) -> bool:
    """``mode`` is ScanConfig.decode_pool: auto, threads or processes."""
    if mode not in ("auto", "threads", "processes"):
        raise ValueError(f"decode_pool must be auto, threads or processes, not {mode!r}")
    if mode != "auto":
        return mode == "processes"
    # A CPU model is slower than threaded decoding (measured: the model
    # waits for nothing), so processes would only add memory and start-up.
    return device.startswith("cuda") and files >= PROCESSES_FROM and (os.cpu_count() or 1) > 2

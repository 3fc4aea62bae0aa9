"""Runs ``core.scan.pipeline.run_scan`` in a QThread and reports over signals.

The worker is a QObject moved to its own QThread; the GUI thread only ever
sees the immutable records the pipeline yields. Cancel is a
``threading.Event`` the pipeline checks at every yield: a queued slot would
never run while the worker is busy.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import traceback

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ...core.errors import ImgDedupeError, ScanCancelled
from ...core.model.backbone import Backbone
from ...core.model.loading import BackbonePlan, load_backbone
from ...core.records import Notice
from ...core.scan.config import ScanConfig
from ...core.scan.events import ExactGroupsReady, NearExactGroupsReady, Progress, ScanResult
from ...core.scan.pipeline import run_scan
from .errors import WorkerError

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.1  # ~10 updates a second is smooth and cheap


class BackboneCache:
    """Keeps the last loaded model, so a second scan or a "Find similar"
    does not pay the load again. Used from one worker thread at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._value: tuple[Backbone, list[Notice]] | None = None

    def get(self, config: ScanConfig) -> tuple[Backbone, list[Notice]]:
        key = (config.backbone, config.weights, config.device, config.allow_download)
        with self._lock:
            if self._key != key or self._value is None:
                self._value = load_backbone(config.backbone, weights=config.weights,
                                            device=config.device,
                                            allow_download=config.allow_download)
                self._key = key
                # torch and the model are ~270k Python objects that live as
                # long as the app. Every full collection of the cyclic GC
                # walked them all, holding the GIL for ~150 ms: the window
                # froze once or twice a scan (bench/bench_gui.py). Frozen,
                # they are left out of collections; refcounting still frees
                # them, so only a cycle that is garbage right now would stay.
                gc.freeze()
            return self._value


class ScanSignals(QObject):
    """What a scan reports, declared once for the worker and the controller.

    The worker emits these in its thread; the controller re-emits them on the
    GUI thread, where the window connects to them.
    """

    progress = Signal(object)  # Progress, throttled
    notice = Signal(object)  # Notice
    exact_groups = Signal(object)  # ExactGroupsReady or NearExactGroupsReady
    result = Signal(object)  # ScanResult
    failed = Signal(object)  # WorkerError
    cancelled = Signal()
    finished = Signal()  # always last, whatever happened


# The controller passes these on as they come. Not ``finished``: the
# controller sends that itself, once the thread has been joined.
FORWARDED = ("progress", "notice", "exact_groups", "result", "failed", "cancelled")


class ScanWorker(ScanSignals):
    def __init__(self, config: ScanConfig, cancel: threading.Event,
                 backbones: BackboneCache) -> None:
        super().__init__()
        self._config = config
        self._cancel = cancel
        self._backbones = backbones

    @Slot()
    def run(self) -> None:
        try:
            self._run()
        except ScanCancelled:
            self.cancelled.emit()
        except ImgDedupeError as exc:
            log.warning("scan failed: %s", exc)
            self.failed.emit(WorkerError("The scan could not run", str(exc),
                                         traceback.format_exc()))
        except Exception as exc:  # a bug: report it, never take the window down
            log.exception("scan crashed")
            self.failed.emit(WorkerError("The scan stopped because of an internal error",
                                         f"{type(exc).__name__}: {exc}",
                                         traceback.format_exc()))
        finally:
            self.finished.emit()

    def _run(self) -> None:
        self.progress.emit(Progress("walk", 0, None, "starting"))
        last = 0.0
        last_phase = ""
        for event in run_scan(self._config, self._cancel, load=self._load_backbone):
            if isinstance(event, Progress):
                now = time.monotonic()
                if event.phase != last_phase or now - last >= PROGRESS_INTERVAL_S \
                        or event.done == event.total:
                    last, last_phase = now, event.phase
                    self.progress.emit(event)
            elif isinstance(event, Notice):
                self.notice.emit(event)
            elif isinstance(event, ExactGroupsReady | NearExactGroupsReady):
                self.exact_groups.emit(event)  # early results, shown before the CNN's
            elif isinstance(event, ScanResult):
                self.result.emit(event)

    def _load_backbone(self, plan: BackbonePlan) -> Backbone:
        # Asked for by the scan only when something must be embedded: the
        # rescan of an unchanged library replays its memo without a model.
        # The scan has already shown the plan's notices (a fallback); the
        # cache spares a reload on the next scan of this session.
        return self._backbones.get(self._config)[0]


class ScanController(ScanSignals):
    """Owns at most one scan thread. One shutdown path: cancel, quit, wait."""

    def __init__(self, backbones: BackboneCache | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.backbones = backbones or BackboneCache()
        self._thread: QThread | None = None
        self._worker: ScanWorker | None = None
        self._cancel = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, config: ScanConfig) -> None:
        if self.running:
            raise RuntimeError("a scan is already running")
        self._cancel = threading.Event()
        thread = QThread()
        thread.setObjectName("imgdedupe-scan")
        worker = ScanWorker(config, self._cancel, self.backbones)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        for name in FORWARDED:
            getattr(worker, name).connect(getattr(self, name))
        worker.finished.connect(self._on_worker_finished)
        self._thread, self._worker = thread, worker
        thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    @Slot()
    def _on_worker_finished(self) -> None:
        self._join(timeout_ms=10_000)
        self.finished.emit()

    def _join(self, timeout_ms: int) -> bool:
        thread = self._thread
        if thread is None:
            return True
        thread.quit()
        stopped = thread.wait(timeout_ms)
        if stopped:
            self._thread = None
            self._worker = None
        return stopped

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel and wait; True when no thread is left running."""
        self.cancel()
        return self._join(timeout_ms)

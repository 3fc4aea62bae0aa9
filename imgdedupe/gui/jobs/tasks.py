"""Short background jobs ("Find similar", a regroup, loading a big image).

Anki's pattern: op -> success or failure, delivered on the GUI thread. The
callable runs on a pool thread and must not touch widgets; its return
value must be safe to hand over (immutable records, QImage, numpy arrays).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from .errors import WorkerError

log = logging.getLogger(__name__)


class _Relay(QObject):
    succeeded = Signal(object)
    failed = Signal(object)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay, title: str) -> None:
        super().__init__()
        self._fn, self._relay, self._title = fn, relay, title

    def run(self) -> None:
        try:
            value = self._fn()
        except Exception as exc:
            log.info("%s failed: %s", self._title, exc)
            self._relay.failed.emit(WorkerError(self._title, f"{exc}",
                                                traceback.format_exc()))
        else:
            self._relay.succeeded.emit(value)


class TaskRunner(QObject):
    def __init__(self, threads: int = 2, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool()
        self._pool.setMaxThreadCount(threads)
        self._relays: set[_Relay] = set()
        self._closed = False  # shutdown(): what jobs hand back later is dropped

    def run(self, title: str, fn: Callable[[], Any],
            on_success: Callable[[Any], None],
            on_failure: Callable[[WorkerError], None]) -> None:
        relay = _Relay()  # lives in the GUI thread: its signals arrive there
        self._relays.add(relay)

        def done(_: object = None) -> None:
            self._relays.discard(relay)

        def unless_closed(callback: Callable[[Any], None]) -> Callable[[Any], None]:
            # A result arriving after shutdown is for a window that is closing:
            # a regroup would show its groups and restart a status-bar timer.
            return lambda value: None if self._closed else callback(value)

        relay.succeeded.connect(unless_closed(on_success))
        relay.failed.connect(unless_closed(on_failure))
        relay.succeeded.connect(done)
        relay.failed.connect(done)
        self._pool.start(_Job(fn, relay, title))

    def busy(self) -> bool:
        return self._pool.activeThreadCount() > 0 or bool(self._relays)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Wait for the jobs running; what they hand back is dropped, since
        the window they were for is closing."""
        self._closed = True
        self._pool.clear()
        return self._pool.waitForDone(timeout_ms)

"""Lazy thumbnails: decoded off the GUI thread, most recent request first.

Views ask ``pixmap(path)`` while painting. A miss returns None (the
delegate paints a placeholder) and queues the path on a LIFO stack, so the
cells the user is looking at now win over those scrolled past. Pool threads
make a ``QImage``; only the GUI thread turns it into a ``QPixmap`` and
keeps it in a bounded LRU cache.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from PIL import Image
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage, QPixmap

from ...core.errors import DecodeError
from ...core.images.decode import decode_image

log = logging.getLogger(__name__)

THUMBNAIL_PX = 180  # the default; the review's size slider goes from SMALLEST_PX to LARGEST_PX
SMALLEST_PX = 100
LARGEST_PX = 400
MAX_PENDING = 2000  # older requests than this are for cells long scrolled away


def load_thumbnail(path: str, size: int = THUMBNAIL_PX) -> QImage:
    """Decode ``path`` to a QImage that fits in size x size. Raises DecodeError.

    Safe in any thread: QImage, unlike QPixmap, is not tied to the GUI."""
    decoded = decode_image(path, target=size)
    image = decoded.image
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    rgb = image.convert("RGB")
    data = rgb.tobytes()
    qimage = QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888)
    return qimage.copy()  # own the pixels: ``data`` dies with this frame


class _Signals(QObject):
    loaded = Signal(str, QImage, int)  # path, picture, the size it was made for
    failed = Signal(str, str)


class _Drain(QRunnable):
    """Pops paths from the shared stack until it is empty."""

    def __init__(self, cache: ThumbnailCache) -> None:
        super().__init__()
        self._cache = cache

    def run(self) -> None:
        while True:
            path = self._cache._pop()
            if path is None:
                return
            size = self._cache.size_px
            try:
                image = load_thumbnail(path, size)
            except DecodeError as exc:
                self._cache._signals.failed.emit(path, exc.reason)
            except Exception as exc:  # never kill a pool thread on one file
                log.exception("thumbnail of %r failed", path)
                self._cache._signals.failed.emit(path, type(exc).__name__)
            else:
                self._cache._signals.loaded.emit(path, image, size)


class ThumbnailCache(QObject):
    """``ready(path)`` is emitted when a requested thumbnail (or its
    failure) is known; views then repaint the cells that show it.

    ``size_px`` can change (the review's size slider): a thumbnail made
    smaller than the new size is still handed out, scaled up, while a
    sharper one is made, so a bigger grid never flashes empty."""

    ready = Signal(str)

    def __init__(self, size_px: int = THUMBNAIL_PX, capacity: int = 600,
                 threads: int = 2, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.size_px = size_px
        self._capacity = capacity
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()
        self._made_for: dict[str, int] = {}  # path: the size its pixmap was made for
        self.failures: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stack: OrderedDict[str, None] = OrderedDict()  # last = newest
        self._running = 0
        self._threads = threads
        self._pool = QThreadPool()
        self._pool.setMaxThreadCount(threads)
        self._signals = _Signals()
        self._signals.loaded.connect(self._on_loaded)
        self._signals.failed.connect(self._on_failed)
        self._closed = False

    # -- used by views -----------------------------------------------------
    def pixmap(self, path: str) -> QPixmap | None:
        cached = self._pixmaps.get(path)
        if cached is not None:
            self._pixmaps.move_to_end(path)
            if self._made_for.get(path, 0) < self.size_px:
                self.request(path)
            return cached
        if path not in self.failures:
            self.request(path)
        return None

    def request(self, path: str) -> None:
        if self._closed or self._made_for.get(path, 0) >= self.size_px:
            return
        with self._lock:
            self._stack.pop(path, None)
            self._stack[path] = None  # to the top: the newest request wins
            while len(self._stack) > MAX_PENDING:
                self._stack.popitem(last=False)
            start = self._running < self._threads
            if start:
                self._running += 1
        if start:
            self._pool.start(_Drain(self))

    def set_capacity(self, visible_cells: int) -> None:
        """Size the cache from what a screen shows: a few screens' worth
        (at least what 200 default-size thumbnails weigh)."""
        floor = int(200 * (THUMBNAIL_PX / self.size_px) ** 2)
        self._capacity = max(floor, 4 * visible_cells)
        self._evict()

    def set_size(self, size_px: int) -> None:
        """Make thumbnails for cells of ``size_px`` from now on; those on
        show are made again at that size as views ask for them."""
        self.size_px = size_px
        with self._lock:
            self._stack.clear()  # queued for the old size

    def clear_pending(self) -> None:
        """Drop queued work, for example when another group is shown."""
        with self._lock:
            self._stack.clear()

    def forget(self, path: str) -> None:
        self._pixmaps.pop(path, None)
        self._made_for.pop(path, None)
        self.failures.pop(path, None)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        self._closed = True
        self.clear_pending()
        return self._pool.waitForDone(timeout_ms)

    def __len__(self) -> int:
        return len(self._pixmaps)

    # -- pool side ----------------------------------------------------------
    def _pop(self) -> str | None:
        with self._lock:
            if not self._stack or self._closed:
                self._running -= 1
                return None
            path, _ = self._stack.popitem(last=True)
            return path

    # -- GUI thread ---------------------------------------------------------
    @Slot(str, QImage, int)
    def _on_loaded(self, path: str, image: QImage, size_px: int) -> None:
        if self._closed:
            return
        self._pixmaps[path] = QPixmap.fromImage(image)
        self._pixmaps.move_to_end(path)
        self._made_for[path] = size_px
        self._evict()
        self.ready.emit(path)

    @Slot(str, str)
    def _on_failed(self, path: str, reason: str) -> None:
        if self._closed:
            return
        self.failures[path] = reason
        self.ready.emit(path)

    def _evict(self) -> None:
        while len(self._pixmaps) > self._capacity:
            path, _ = self._pixmaps.popitem(last=False)
            self._made_for.pop(path, None)

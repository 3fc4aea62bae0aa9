"""Side-by-side comparison with synchronised zoom and pan.

Every panel shows the same region at the same zoom: zooming or dragging
one moves all. Pictures load at screen resolution in the background;
details (size, format, date taken, path) come from the file's header.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from PIL import Image
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QImage, QKeySequence, QPixmap, QShortcut, QWheelEvent
from PySide6.QtWidgets import (
    QDialog,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...core.images.raw import is_raw_file, raw_capture_time
from ...core.records import Member
from ...core.units import human_size
from ...report import printable
from ..jobs.errors import WorkerError
from ..jobs.tasks import TaskRunner
from .group_model import companions_text
from .thumbnails import load_thumbnail

COMPARE_PX = 1600  # enough for a large screen; a full 12 MP decode is not
EXIF_DATE_TAKEN = 0x9003
EXIF_IFD = 0x8769


def file_details(member: Member) -> str:
    """Dimensions, size, format, date taken and full path, for a caption."""
    fmt, taken = "?", "unknown"
    try:
        if is_raw_file(member.path):  # Pillow would read a DNG's small first picture
            fmt = f"RAW ({os.path.splitext(member.path)[1][1:].upper()})"
            when = raw_capture_time(member.path)
            taken = time.strftime("%Y:%m:%d %H:%M:%S", time.gmtime(when)) if when else taken
        else:
            fmt, taken = _pillow_details(member.path)
    except Exception:  # details are best effort; the picture may be gone
        fmt = "unreadable"
    dims = f"{member.width}×{member.height}" if member.width else "?"
    modified = time.strftime("%Y-%m-%d %H:%M", time.localtime(member.mtime_ns / 1e9))
    return (f"{dims} · {human_size(member.size)} · {fmt}\n"
            f"taken {taken} · modified {modified}\n{printable(member.path)}")


def _pillow_details(path: str) -> tuple[str, str]:
    """Format and date taken from the header, as Pillow reads it."""
    taken = "unknown"
    with Image.open(path) as im:
        fmt = im.format or "?"
        exif = im.getexif()
        value = exif.get_ifd(EXIF_IFD).get(EXIF_DATE_TAKEN) or exif.get(0x0132)
        if value:
            taken = str(value)
    return fmt, taken


class _SyncedView(QGraphicsView):
    wheel_zoom = Signal(float)

    def __init__(self) -> None:
        super().__init__()
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.item)

    def wheelEvent(self, event: QWheelEvent) -> None:
        self.wheel_zoom.emit(1.25 if event.angleDelta().y() > 0 else 0.8)


class CompareDialog(QDialog):
    """``toggle_requested(path)`` asks the window to flip keep/delete."""

    toggle_requested = Signal(str)

    def __init__(self, members: Sequence[Member], tasks: TaskRunner,
                 is_marked: Callable[[str], bool], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Compare {len(members)} images")
        self.members = tuple(members)
        self._is_marked = is_marked
        self.views: list[_SyncedView] = []
        self.companion_labels: list[QLabel] = []
        self._buttons: list[QPushButton] = []
        self._syncing = False
        grid = QGridLayout()
        columns = 2 if len(members) == 4 else min(len(members), 3)
        for n, member in enumerate(self.members):
            view = _SyncedView()
            view.wheel_zoom.connect(self.zoom)
            view.horizontalScrollBar().valueChanged.connect(lambda _, v=view: self._sync(v))
            view.verticalScrollBar().valueChanged.connect(lambda _, v=view: self._sync(v))
            caption = QLabel(file_details(member))
            caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            caption.setWordWrap(True)
            # The files that go with this one (its RAW, sidecars, Live Photo video).
            companions = QLabel(companions_text(member))
            companions.setObjectName("companions")
            companions.setVisible(bool(member.companions))
            companions.setToolTip("\n".join(printable(c.path) for c in member.companions))
            button = QPushButton()
            button.clicked.connect(lambda _=False, p=member.path: self._toggle(p))
            panel = QVBoxLayout()
            panel.addWidget(view, 1)
            panel.addWidget(caption)
            panel.addWidget(companions)
            panel.addWidget(button)
            grid.addLayout(panel, n // columns, n % columns)
            self.views.append(view)
            self.companion_labels.append(companions)
            self._buttons.append(button)
            tasks.run("Loading an image", lambda p=member.path: load_thumbnail(p, COMPARE_PX),
                      lambda image, v=view: self._show(v, image), self._show_error(view))
        bar = QHBoxLayout()
        for text, slot in (("Zoom in (+)", lambda: self.zoom(1.25)),
                           ("Zoom out (−)", lambda: self.zoom(0.8)),
                           ("Fit (0)", self.fit), ("Close", self.accept)):
            b = QPushButton(text)
            b.clicked.connect(slot)
            bar.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(grid, 1)
        layout.addLayout(bar)
        for keys, slot in (("+", lambda: self.zoom(1.25)), ("=", lambda: self.zoom(1.25)),
                           ("-", lambda: self.zoom(0.8)), ("0", self.fit)):
            QShortcut(QKeySequence(keys), self, slot)
        self._refresh_buttons()
        self.resize(1100, 700)

    def zoom(self, factor: float) -> None:
        for view in self.views:
            view.scale(factor, factor)
        self._sync(self.views[0])

    def fit(self) -> None:
        for view in self.views:
            view.fitInView(view.item, Qt.AspectRatioMode.KeepAspectRatio)

    def _sync(self, source: _SyncedView) -> None:
        """Give every view the same relative scroll position as ``source``."""
        if self._syncing:
            return
        self._syncing = True
        try:
            for bar_of in (QGraphicsView.horizontalScrollBar, QGraphicsView.verticalScrollBar):
                src = bar_of(source)
                span = max(1, src.maximum() - src.minimum())
                fraction = (src.value() - src.minimum()) / span
                for view in self.views:
                    if view is not source:
                        bar = bar_of(view)
                        bar.setValue(round(bar.minimum() + fraction *
                                           (bar.maximum() - bar.minimum())))
        finally:
            self._syncing = False

    def _show(self, view: _SyncedView, image: QImage) -> None:
        # Every picture gets the same scene width, so "the same zoom" means
        # the same part of the photo even when the copies differ in size.
        pixmap = QPixmap.fromImage(image)
        view.item.setPixmap(pixmap)
        scale = COMPARE_PX / max(1, max(pixmap.width(), pixmap.height()))
        view.item.setScale(scale)
        view.setSceneRect(QRectF(0, 0, pixmap.width() * scale, pixmap.height() * scale))
        view.fitInView(view.item, Qt.AspectRatioMode.KeepAspectRatio)

    def _show_error(self, view: _SyncedView) -> Callable[[WorkerError], None]:
        def show(error: WorkerError) -> None:
            view.scene().addText(f"Cannot show this image:\n{error.message}")
        return show

    def _toggle(self, path: str) -> None:
        self.toggle_requested.emit(path)
        self._refresh_buttons()

    def _refresh_buttons(self) -> None:
        for member, button in zip(self.members, self._buttons, strict=True):
            marked = self._is_marked(member.path)
            button.setText("Marked for deletion — click to keep" if marked
                           else "Kept — click to mark for deletion")
            button.setAccessibleName(f"{'Delete' if marked else 'Keep'} "
                                     f"{printable(os.path.basename(member.path))}")

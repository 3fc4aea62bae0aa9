"""The similarity slider, with a histogram of pair similarities beside it.

The histogram shows where the scan's scored pairs fall, so the user sees
what moving the cut will take in or leave out. Moving the slider asks for
a regroup from the cached graph: no rescan.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QWidget

from ...core.groups.graph import FLOOR_SCORE

BINS = 30
DEBOUNCE_MS = 120  # regroup once the slider rests, not on every pixel


class Histogram(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._counts = np.zeros(BINS, dtype=np.int64)
        self._low, self._high = FLOOR_SCORE, 100.0
        self._cut = 90.0
        self.setMinimumSize(QSize(160, 28))
        self.setToolTip("How many image pairs scored each similarity. "
                        "Pairs right of the line are grouped.")

    def set_scores(self, scores: np.ndarray, low: float) -> None:
        self._low = low
        self._counts, _ = np.histogram(scores, bins=BINS, range=(low, 100.0))
        self.update()

    def set_cut(self, cut: float) -> None:
        self._cut = cut
        self.update()

    def counts(self) -> np.ndarray:
        return self._counts.copy()

    def paintEvent(self, event) -> None:  # noqa: ANN001
        painter = QPainter(self)
        box = self.rect().adjusted(1, 1, -1, -1)
        palette = self.palette()
        painter.fillRect(box, palette.color(QPalette.ColorRole.Base))
        peak = max(1, int(self._counts.max()) if len(self._counts) else 1)
        width = box.width() / BINS
        # A log scale: a few near-identical pairs must stay visible next to
        # thousands of weak ones.
        scale = np.log1p(peak)
        for n, count in enumerate(self._counts.tolist()):
            if not count:
                continue
            height = max(2, int(box.height() * np.log1p(count) / scale))
            left = self._low + (100.0 - self._low) * n / BINS
            colour = palette.color(QPalette.ColorRole.Highlight) if left >= self._cut - 1e-9 \
                else palette.color(QPalette.ColorRole.Mid)
            painter.fillRect(QRect(int(box.left() + n * width), box.bottom() - height + 1,
                                   max(1, int(width) - 1), height), colour)
        x = box.left() + int(box.width() * (self._cut - self._low) / (100.0 - self._low))
        painter.setPen(QColor(215, 58, 73))
        painter.drawLine(x, box.top(), x, box.bottom())
        painter.end()


class ThresholdBar(QWidget):
    """``threshold_changed(float)`` fires once the slider comes to rest."""

    threshold_changed = Signal(float)

    def __init__(self, value: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(int(FLOOR_SCORE), 100)
        self.slider.setPageStep(5)
        self.slider.setMinimumWidth(140)
        self.slider.setMaximumWidth(260)
        self.slider.setToolTip("Similarity threshold: higher finds fewer, closer matches")
        self.slider.setAccessibleName("Similarity threshold")
        self.label = QLabel()
        self.label.setMinimumWidth(34)
        self.histogram = Histogram()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Preferred)
        layout.addWidget(QLabel("Similarity"))
        layout.addWidget(self.slider)
        layout.addWidget(self.label)
        layout.addWidget(self.histogram)
        self._timer = QTimer(self)
        self._timer.setObjectName("threshold-debounce")
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(lambda: self.threshold_changed.emit(self.value()))
        self.slider.valueChanged.connect(self._moved)
        self.set_value(value)

    def value(self) -> float:
        return float(self.slider.value())

    def set_value(self, value: float) -> None:
        """Set without emitting (for restoring settings)."""
        blocked = self.slider.blockSignals(True)
        self.slider.setValue(round(max(FLOOR_SCORE, min(100.0, value))))
        self.slider.blockSignals(blocked)
        self._show(self.value())

    def _moved(self, value: int) -> None:
        self._show(float(value))
        self._timer.start()

    def _show(self, value: float) -> None:
        self.label.setText(f"{value:.0f}")
        self.histogram.set_cut(value)

    def stop(self) -> None:
        self._timer.stop()

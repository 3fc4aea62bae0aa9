"""Offer the ResNet50 weights download: progress bar, cancel, hash check.

The download itself is ``core.model.weights`` (atomic, SHA-256 checked); this
only runs it on a pool thread and shows its progress.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QProgressDialog, QWidget

from ...core.model.loading import default_bundled_dirs
from ...core.model.weights import (
    RESNET50_IMAGENET1K_V2,
    DownloadCancelled,
    LocatedWeights,
    WeightsChecksumError,
    WeightsError,
    locate_weights,
)
from .errors import WorkerError
from .tasks import TaskRunner


class DownloadFailed(Exception):
    """A failed download in the window's words first (the status line shows
    that line), then the loader's own text (which speaks of command-line
    options) for the details."""

    def __init__(self, said: str, cause: Exception) -> None:
        super().__init__(f"{said}\n\n{cause}")


class _ProgressRelay(QObject):
    moved = Signal(int, object)  # bytes done, total or None


def download_weights(parent: QWidget, tasks: TaskRunner,
                     on_done: Callable[[LocatedWeights], None],
                     on_failure: Callable[[WorkerError], None]) -> QProgressDialog:
    """Start the download; returns its (already shown) progress dialog."""
    cancel = threading.Event()
    relay = _ProgressRelay(parent)
    dialog = QProgressDialog("Downloading the ResNet50 weights (about 100 MB)…", "Cancel",
                             0, 0, parent)
    dialog.setWindowTitle("Download model weights")
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(600)  # a quick local hit never flashes a dialog
    dialog.canceled.connect(cancel.set)

    def moved(done: int, total: int | None) -> None:
        if total:
            dialog.setMaximum(max(1, total // 1024))
            dialog.setValue(done // 1024)
            dialog.setLabelText(f"Downloading the ResNet50 weights: "
                                f"{done / 1e6:.1f} of {total / 1e6:.1f} MB…")

    relay.moved.connect(moved)

    def work() -> LocatedWeights:
        try:
            return locate_weights(RESNET50_IMAGENET1K_V2, bundled_dirs=default_bundled_dirs(),
                                  allow_download=True, cancel=cancel,
                                  progress=lambda done, total: relay.moved.emit(done, total))
        except DownloadCancelled as exc:
            raise DownloadFailed("The download was cancelled; nothing was kept.", exc) from exc
        except WeightsChecksumError as exc:
            raise DownloadFailed("The file downloaded is not ResNet50's weights (wrong "
                                 "SHA-256), so it was not kept.", exc) from exc
        except WeightsError as exc:
            raise DownloadFailed("ResNet50 could not be downloaded: is this computer "
                                 "offline? The offline model keeps working.", exc) from exc

    def finished(located: LocatedWeights) -> None:
        dialog.reset()
        relay.deleteLater()
        on_done(located)

    def failed(error: WorkerError) -> None:
        dialog.reset()
        relay.deleteLater()
        on_failure(error)

    tasks.run("ResNet50 was not downloaded", work, finished, failed)
    return dialog

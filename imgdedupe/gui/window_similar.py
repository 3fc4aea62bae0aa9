"""The window's "Find similar": search on a pool thread, show the answer,
and when the image's folder was never scanned, offer to scan it first.

A mixin of MainWindow (like window_apply), kept apart to keep that module
short; it uses the window's tasks, status bar, folders and scan.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from ..core.records import Group
from ..report import printable
from .dialogs import SimilarDialog
from .jobs.similar_search import similar_group

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance

    from ..core.actions.decisions import Decisions
    from ..core.scan.config import ScanConfig
    from .jobs.errors import WorkerError
    from .jobs.scan_worker import ScanController
    from .jobs.tasks import TaskRunner
    from .review.thumbnails import ThumbnailCache


class SimilarMixin:
    if TYPE_CHECKING:  # MainWindow's, stubs here only
        tasks: TaskRunner
        controller: ScanController
        thumbnails: ThumbnailCache
        decisions: Decisions
        scan_finished: SignalInstance
        similar_dialog: SimilarDialog

        def statusBar(self): ...  # noqa: ANN201, N802
        def scan_config(self) -> ScanConfig: ...
        def add_folders(self, paths: list[str]) -> None: ...
        def start_scan(self) -> None: ...
        def _on_failed(self, error: WorkerError) -> None: ...

    def find_similar(self, path: str) -> None:
        self.statusBar().showMessage(f"Looking for images similar to {printable(path)}…")
        config = self.scan_config()
        backbones = self.controller.backbones

        def search() -> tuple[Group, bool]:
            return similar_group(path, config, backbones)

        self.tasks.run("Find similar", search,
                       lambda found: self._show_similar(path, *found), self._on_failed)

    def _show_similar(self, path: str, group: Group, scanned: bool = True) -> None:
        self.statusBar().clearMessage()
        folder = os.path.dirname(os.path.abspath(path))
        if not scanned and not self.controller.running and self.offer_scan(folder):
            # Scan the image's folder, then answer from it: never a bare zero.
            def again(_result: object) -> None:
                self.scan_finished.disconnect(again)
                self.find_similar(path)

            self.add_folders([folder])
            self.scan_finished.connect(again)
            self.start_scan()
            return
        if len(group.members) < 2:
            self.statusBar().showMessage(
                f"No photo in the cache is like {printable(os.path.basename(path))} yet: "
                "add and scan the folders to compare it with.", 10_000)
            return
        dialog = SimilarDialog(path, group, self.thumbnails, self.decisions, self)
        dialog.find_similar_requested.connect(self.find_similar)
        dialog.message.connect(lambda text: self.statusBar().showMessage(text, 10_000))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.similar_dialog = dialog
        dialog.show()

    def offer_scan(self, folder: str) -> bool:
        """Ask to scan the folder of an image the cache does not know (Yes
        is the default); tests replace it."""
        answer = QMessageBox.question(
            self, "Find similar",
            f"imgdedupe has not scanned {printable(folder)} yet. Scan it now, then show "
            "the photos most like this one?", QMessageBox.StandardButton.Yes
            | QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes)
        return answer == QMessageBox.StandardButton.Yes


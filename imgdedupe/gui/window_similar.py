"""The window's "Find similar": search on a pool thread, show the answer,
and when the image's folder was never scanned, offer to scan it first.

A mixin of MainWindow (like window_apply), kept apart to keep that module
short; it uses the window's tasks, status bar, folders and scan.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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
        scans_offered: set[str]  # folders whose scan "Find similar" offered
        rescan_queued: bool  # a scan starts when this one ends

        def statusBar(self): ...  # noqa: ANN201, N802
        def scan_config(self) -> ScanConfig: ...
        def add_folders(self, paths: list[str]) -> None: ...
        def start_scan(self) -> None: ...
        def _on_failed(self, error: WorkerError) -> None: ...

    def find_similar(self, path: str, after_scan: bool = False) -> None:
        """Search; ``after_scan``: the search again once the folder's scan
        (offered for the first search) ended, which never offers again."""
        self.statusBar().showMessage(f"Looking for images similar to {printable(path)}…")
        config = self.scan_config()
        backbones = self.controller.backbones

        def search() -> tuple[Group, bool]:
            return similar_group(path, config, backbones)

        self.tasks.run("Find similar", search,
                       lambda found: self._show_similar(path, *found, after_scan=after_scan),
                       self._on_failed)

    def _show_similar(self, path: str, group: Group, scanned: bool = True,
                      after_scan: bool = False) -> None:
        self.statusBar().clearMessage()
        folder = os.path.dirname(os.path.abspath(path))
        offered = self.scans_offered

        def again() -> None:
            self.find_similar(path, after_scan=True)

        if not after_scan and folder in offered and (not scanned or len(group.members) < 2):
            # Twenty photos of one new folder, handed over one by one: one
            # question and one scan, then each search (not twenty dialogs).
            # A search while that scan runs sees its files but not yet their
            # pictures: it too waits for the scan.
            if self.controller.running:
                self._after_scan(again)
            else:
                again()  # the scan ended while this search ran
            return
        if not scanned and not after_scan and not self.controller.running \
                and self.offer_scan(folder):
            # Scan the image's folder, then answer from it: never a bare zero.
            offered.add(folder)
            self.add_folders([folder])
            self._after_scan(again)
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

    def _after_scan(self, then: Callable[[], None]) -> None:
        """Run ``then`` once, when the scan now running (or about to) ends."""
        _once(self.scan_finished, then)

    def scan_after_this_one(self) -> None:
        """Folders handed over (or a setting changed) while a scan runs:
        scanned when it ends; at once when none runs."""
        if not self.controller.running:
            self.start_scan()
        elif not self.rescan_queued:
            self.rescan_queued = True

            def again() -> None:
                self.rescan_queued = False
                self.start_scan()

            # On the scan thread's end, not on its result: until then the
            # controller still runs, and start_scan would do nothing.
            _once(self.controller.finished, again)

    def offer_scan(self, folder: str) -> bool:
        """Ask to scan the folder of an image the cache does not know (Yes
        is the default); tests replace it."""
        answer = QMessageBox.question(
            self, "Find similar",
            f"imgdedupe has not scanned {printable(folder)} yet. Scan it now, then show "
            "the photos most like this one?", QMessageBox.StandardButton.Yes
            | QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes)
        return answer == QMessageBox.StandardButton.Yes


def _once(signal: SignalInstance, then: Callable[[], None]) -> None:
    """Call ``then`` at the signal's next emission only (whatever it carries)."""
    def once(*_args: object) -> None:
        signal.disconnect(once)
        then()

    signal.connect(once)

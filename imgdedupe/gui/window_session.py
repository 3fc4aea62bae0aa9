"""The window across restarts: the last scan's groups and marks come back
on start, and quitting with marks says that they are kept.

Before, a restart showed an empty window (the user scanned again to see the
same groups) and quitting dropped every mark without a word (the review
issue). The groups come back through the scan itself: its cache answers an
unchanged library at once (scan.memo), and a changed one is scanned for what
changed, as Scan would. Marks are kept in the settings, by path, and put
back only on files that are still in a group (Decisions refuses any mark
that would leave a group without a kept file).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QMessageBox

if TYPE_CHECKING:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QLabel, QMainWindow

    from ..core.actions.decisions import Decisions
    from ..core.scan.events import ScanResult
    from .review.review_panel import ReviewPanel

    _Window = QMainWindow
else:
    _Window = object


class SessionMixin(_Window):
    settings: QSettings
    decisions: Decisions
    review: ReviewPanel
    phase_label: QLabel
    marks_to_restore: list[str]

    if TYPE_CHECKING:
        def folder_paths(self) -> list[str]: ...
        def start_scan(self) -> None: ...
        def _update_state(self) -> None: ...

    def restore_last_scan(self) -> bool:
        """Scan the folders of the last finished scan again (from the cache)
        and put its marks back. False when there is nothing to restore: no
        scan finished, or the folders changed since."""
        folders = self.settings.value("last_scan/folders", [], list) or []
        if not folders or sorted(folders) != sorted(self.folder_paths()):
            return False
        self.marks_to_restore = [p for p in self.settings.value("marks", [], list) or []
                                 if isinstance(p, str)]
        self.start_scan()
        self.phase_label.setText("Restoring the last scan's groups from the cache…")
        return True

    def remember_scan(self, result: ScanResult) -> None:
        """After a scan: its folders (what restore_last_scan rescans), and
        the saved marks put back on the groups it found."""
        self.settings.setValue("last_scan/folders", self.folder_paths())
        restore, self.marks_to_restore = self.marks_to_restore, []
        if restore:
            kept = sum(self.decisions.mark(path) for path in restore)
            self.review.marks_updated()
            self._update_state()
            if kept:
                self.phase_label.setText(
                    f"{self.phase_label.text()} · {kept} mark(s) from last time")

    def save_marks(self) -> None:
        self.settings.setValue("marks", sorted(self.decisions.marked))

    def confirm_quit(self, marked: int) -> bool:
        """Quitting with files marked and not moved: say the marks are kept."""
        answer = QMessageBox.question(
            self, "Quit with files marked?",
            f"{marked} file(s) are marked for the trash but were not moved. The marks are "
            "kept and come back when imgdedupe starts again. Quit now?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

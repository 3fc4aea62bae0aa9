"""Reviewing thousands of groups: sort, filter, a summary line, accept in bulk.

The bar sits above the group list. Its order and filters apply when the
groups or the choices change, never on a mark: a list that re-sorted or
lost the group in hand at each key press could not be worked through.
The numbers are core.actions.review_order's (one definition of "space to
free" for the sort, the summary and the confirmation).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QWidget,
)

from ...core.actions.decisions import Decisions
from ...core.actions.review_order import (
    MarksFilter,
    RunningSummary,
    SortOrder,
    accept_plan,
    capture_times,
    describe_time,
    filter_groups,
    folders_of,
    group_time,
    sort_groups,
)
from ...core.groups.graph import SimilarityGraph
from ...core.groups.protection import Protection
from ...core.records import Group
from ...core.units import human_size
from ...report import printable

ALL_FOLDERS = "All folders"
SORT_TIPS = {
    SortOrder.SPACE: "Most space to free first: the marked photos of a group, or those its "
                     "suggestion would mark (never a protected one)",
    SortOrder.SIZE: "Largest groups first (all their files)",
    SortOrder.FOLDER: "By folder, A to Z (the first folder that holds one of its photos)",
    SortOrder.CAPTURE_DATE: "Oldest first, by the capture date the scan read from the photos' "
                            "EXIF; a group whose photos carry none is placed by its files' "
                            "modification time (its tooltip says so)",
}


class ReviewBar(QWidget):
    """Sort, folder and marks filters, protected groups, the summary line."""

    arrangement_changed = Signal()
    accept_all_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._graph: SimilarityGraph | None = None
        self._times: dict[str, float] | None = None
        self._running: tuple[Sequence[Group], RunningSummary] | None = None
        self.sort_box = QComboBox()
        for order in SortOrder:
            self.sort_box.addItem(order.value, order)
            self.sort_box.setItemData(self.sort_box.count() - 1, SORT_TIPS[order],
                                      Qt.ItemDataRole.ToolTipRole)
        self.sort_box.setToolTip(SORT_TIPS[SortOrder.SPACE])
        self.sort_box.setAccessibleName("Sort groups by")
        self.folder_box = QComboBox()
        self.folder_box.addItem(ALL_FOLDERS, None)
        self.folder_box.setToolTip("Only the groups with a photo in this folder (or below it)")
        self.folder_box.setMinimumContentsLength(18)
        self.folder_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.marks_box = QComboBox()
        for choice in MarksFilter:
            self.marks_box.addItem(choice.value, choice)
        self.marks_box.setToolTip("Groups with files marked for deletion, or without")
        self.protected_box = QCheckBox("All protected (0)")
        self.protected_box.setToolTip("Groups whose photos are all in protected folders: "
                                      "nothing in them can be marked, so they are hidden")
        self.summary = QLabel()
        self.summary.setWordWrap(True)  # never widens the group list
        self.summary.setAccessibleName("Summary")
        self.summary.setToolTip(
            "Space to free: the marked files of each group, or where a group has none, the "
            "files accepting its suggestion would mark; each file counted once. The marked "
            "files are what “Move marked to trash…” moves.")
        self.accept_all_button = QPushButton("Accept all in this filter…")
        self.accept_all_button.setToolTip(
            "Accept the suggestion in every group listed (exact copies and near-duplicates; "
            "similar shots too when “and similar shots” is ticked): one confirmation first")
        self.accept_all_button.clicked.connect(self.accept_all_requested)
        for box in (self.sort_box, self.folder_box, self.marks_box):
            box.currentIndexChanged.connect(self._changed)
        self.protected_box.toggled.connect(lambda _on: self.arrangement_changed.emit())
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Sort:"))
        layout.addWidget(self.sort_box)
        layout.addWidget(QLabel("Folder:"))
        layout.addWidget(self.folder_box, 1)
        layout.addWidget(self.marks_box)
        layout.addWidget(self.protected_box)
        layout.addWidget(self.accept_all_button)

    # -- choices --------------------------------------------------------------
    def remember(self, settings: QSettings) -> None:
        """Restore the sort order from ``settings`` and keep it there. The
        filters are not remembered: a list that opened filtered could hide
        groups without a word."""
        saved = settings.value("review/sort", SortOrder.SPACE.name, str)
        self.set_order(SortOrder.__members__.get(str(saved), SortOrder.SPACE))
        self.sort_box.currentIndexChanged.connect(
            lambda _n: settings.setValue("review/sort", self.order.name))

    @property
    def order(self) -> SortOrder:
        return self.sort_box.currentData()

    def set_order(self, order: SortOrder) -> None:
        self.sort_box.setCurrentIndex(self.sort_box.findData(order))

    @property
    def folder(self) -> str | None:
        return self.folder_box.currentData()

    def set_folder(self, folder: str | None) -> None:
        self.folder_box.setCurrentIndex(max(0, self.folder_box.findData(folder)))

    @property
    def marks(self) -> MarksFilter:
        return self.marks_box.currentData()

    def set_marks(self, marks: MarksFilter) -> None:
        self.marks_box.setCurrentIndex(self.marks_box.findData(marks))

    def _changed(self) -> None:
        self.sort_box.setToolTip(SORT_TIPS[self.order])
        self.arrangement_changed.emit()

    # -- groups -----------------------------------------------------------------
    def set_graph(self, graph: SimilarityGraph | None) -> None:
        """The scan's graph: where the capture dates come from (read when
        first sorted by date)."""
        self._graph, self._times = graph, None

    def times(self) -> dict[str, float]:
        if self._times is None:
            self._times = capture_times(self._graph)
        return self._times

    def time_tip(self, group: Group) -> str:
        """A group's line for the list's tooltip when sorted by date."""
        if self.order is not SortOrder.CAPTURE_DATE:
            return ""
        seconds, captured = group_time(group, self.times())
        if captured:
            return f"Taken {describe_time(seconds)} (the capture date in its EXIF)"
        return (f"Modified {describe_time(seconds, False)}: its photos carry no capture date, "
                "so the file's modification time places it")

    def set_folders(self, groups: Sequence[Group], roots: Sequence[str]) -> None:
        """Offer the folders of ``groups``; keep the choice if it is still there."""
        chosen = self.folder
        self.folder_box.blockSignals(True)
        self.folder_box.clear()
        self.folder_box.addItem(ALL_FOLDERS, None)
        for folder in folders_of(groups, roots):
            self.folder_box.addItem(printable(folder), folder)
        self.folder_box.setCurrentIndex(max(0, self.folder_box.findData(chosen)))
        self.folder_box.blockSignals(False)

    def arrange(self, groups: Sequence[Group], decisions: Decisions,
                protection: Protection) -> list[Group]:
        """``groups`` filtered and sorted as chosen; all-protected groups
        only when their box is ticked (its label counts them)."""
        hidden = sum(protection.all_protected(g) for g in groups)
        self.protected_box.setText(f"All protected ({hidden:,})")
        self.protected_box.setVisible(bool(protection))
        if not self.protected_box.isChecked():
            groups = [g for g in groups if not protection.all_protected(g)]
        shown = filter_groups(groups, decisions, self.folder, self.marks)
        times = self.times() if self.order is SortOrder.CAPTURE_DATE else None
        return sort_groups(shown, self.order, decisions, times)

    def update_summary(self, shown: Sequence[Group], decisions: Decisions, of_groups: int) -> None:
        """The summary line of the listed groups ``shown`` (a new list, as
        every regroup, filter or protection makes, is counted anew; a mark
        counts again only its own groups)."""
        if self._running is None or self._running[0] is not shown:
            self._running = (shown, RunningSummary(shown, decisions, of_groups))
        self.summary.setText(self._running[1].summary().text())
        self.accept_all_button.setEnabled(bool(shown))


    # -- accept all -------------------------------------------------------------
    def accept_all(self, groups: Sequence[Group], decisions: Decisions,
                   similar_shots: bool) -> str:
        """"Accept all in this filter": the suggestion in every one of
        ``groups`` (similar shots only when asked), after one confirmation
        that names the count and the size. Returns what happened, in words."""
        chosen, files, size = accept_plan(groups, decisions, similar_shots)
        if not chosen:
            return "No group listed here has a suggestion to accept."
        text = (f"Accept the suggestion in {len(chosen):,} group(s)? {files:,} file(s) "
                f"({human_size(size)}) will be marked for deletion"
                f"{'' if similar_shots else '; similar shots are left alone'}. Protected "
                "photos are never marked. Nothing moves until you choose “Move marked to "
                "trash…”.")
        if not self.confirm_accept_all(text):
            return "Nothing was marked."
        for group in chosen:
            decisions.accept_suggestion(group, similar_shots)
        return f"Accepted the suggestion in {len(chosen):,} group(s)."

    def confirm_accept_all(self, text: str) -> bool:
        """The one confirmation; tests replace it."""
        answer = QMessageBox.question(self.window(), "Accept all in this filter", text,
                                      QMessageBox.StandardButton.Ok
                                      | QMessageBox.StandardButton.Cancel,
                                      QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Ok

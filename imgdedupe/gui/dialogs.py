"""Small dialogs: errors with copyable details, delete confirmation, similar images."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListView,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from ..core.records import Group, Member
from ..core.units import human_size
from ..report import printable
from .jobs.errors import WorkerError
from .review.delegate import CELL, ThumbnailDelegate
from .review.group_model import MEMBER_ROLE, MemberModel


def show_error(parent: QWidget | None, error: WorkerError) -> QMessageBox:
    """Non-blocking error box; "Show Details" holds the text to copy."""
    box = QMessageBox(QMessageBox.Icon.Warning, error.title, printable(error.message, lines=True),
                      QMessageBox.StandardButton.Ok, parent)
    box.setDetailedText(printable(error.details, lines=True))
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def deletion_summary(members: Sequence[Member]) -> str:
    total = sum(m.size for m in members)
    return f"{len(members)} file{'s' if len(members) != 1 else ''} ({human_size(total)})"


def confirm_delete(parent: QWidget | None, members: Sequence[Member],
                   trash_name: str) -> bool:
    """Ask before moving files; the summary names N files and X MB."""
    shown = "\n".join(printable(m.path) for m in members[:8])
    more = f"\n… and {len(members) - 8} more" if len(members) > 8 else ""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Move to trash")
    box.setText(f"Move {deletion_summary(members)} to {printable(trash_name)}?")
    box.setInformativeText("Every group keeps at least one image. You can undo this "
                           "with Edit ▸ Undo.")
    box.setDetailedText(shown + more)
    move = box.addButton("Move to trash", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is move


class SimilarDialog(QDialog):
    """Nearest neighbours of one image, best first, with scores."""

    def __init__(self, query: str, matches: Group, thumbnails, decisions,  # noqa: ANN001
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Similar to {printable(os.path.basename(query))}")
        self.model = MemberModel(thumbnails, decisions, show_decisions=False)
        self.model.set_group(matches)
        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setGridSize(CELL)
        self.view.setItemDelegate(ThumbnailDelegate(self.view))
        self.view.setModel(self.model)
        count = len(matches.members) - 1
        label = QLabel(f"<b>{count} most similar image{'s' if count != 1 else ''}</b> "
                       f"to {html.escape(printable(query))} (the first picture is the query)")
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(self.view, 1)
        layout.addWidget(buttons)
        self.resize(QSize(4 * CELL.width() + 60, 2 * CELL.height() + 120))

    def paths(self) -> list[str]:
        return [self.model.index(r).data(MEMBER_ROLE).path
                for r in range(self.model.rowCount())]

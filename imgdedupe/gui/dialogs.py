"""Small dialogs: errors with copyable details, delete confirmation, similar images."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import replace

from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListView,
    QMenu,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from ..core.groups.graph import FLOOR_SCORE
from ..core.records import Group, Member
from ..core.units import human_size
from ..report import printable
from .jobs.errors import WorkerError
from .review.delegate import CELL, ThumbnailDelegate
from .review.file_actions import add_file_actions, open_or_say
from .review.group_model import MEMBER_ROLE, MemberModel

WEAK_SHOWN = 3  # results shown when none reaches the floor: the closest, for reference


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
    """"3 files and 2 companion files (12.4 MB)": companions move and count too."""
    total = sum(m.size_with_companions for m in members)
    extra = sum(len(m.companions) for m in members)
    also = f" and {extra} companion file{'s' if extra != 1 else ''}" if extra else ""
    return f"{len(members)} file{'s' if len(members) != 1 else ''}{also} ({human_size(total)})"


def confirm_delete(parent: QWidget | None, members: Sequence[Member],
                   trash_name: str) -> bool:
    """Ask before moving files; the summary names N files and X MB."""
    shown = "\n".join(printable(m.path) + "".join(f"\n  + {printable(c.path)}"
                                                  for c in m.companions)
                       for m in members[:8])
    more = f"\n… and {len(members) - 8} more" if len(members) > 8 else ""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Move to trash")
    box.setText(f"Move {deletion_summary(members)} to {printable(trash_name)}?")
    companions = "" if not any(m.companions for m in members) else (
        " Each photo's companion files (RAW, sidecars, Live Photo video) go with it.")
    box.setInformativeText("Every group keeps at least one image." + companions
                           + " You can undo this with Edit ▸ Undo.")
    box.setDetailedText(shown + more)
    move = box.addButton("Move to trash", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is move


class SimilarDialog(QDialog):
    """Nearest neighbours of one image, best first, with scores. Only those
    at the similarity slider's floor or above are listed: the twelve
    nearest padded out with 31-44% matches (the review issue) said nothing
    but "not alike". With none that close, the three closest are shown,
    said to be below it. Each result has the grid's right-click menu
    (Find similar, Open, Show in folder, Copy path); a double-click opens it."""

    find_similar_requested = Signal(str)
    message = Signal(str)

    def __init__(self, query: str, matches: Group, thumbnails, decisions,  # noqa: ANN001
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Similar to {printable(os.path.basename(query))}")
        query_member, *found = matches.members
        close = [m for m in found if m.similarity >= FLOOR_SCORE]
        shown = close or found[:WEAK_SHOWN]
        self.model = MemberModel(thumbnails, decisions, show_decisions=False)
        self.model.set_group(replace(matches, members=(query_member, *shown)))
        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setGridSize(CELL)
        self.view.setItemDelegate(ThumbnailDelegate(self.view))
        self.view.setModel(self.model)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._menu)
        self.view.doubleClicked.connect(
            lambda index: open_or_say(index.data(MEMBER_ROLE).path, self.message.emit))
        name = html.escape(printable(query))
        if close:
            count = len(close)
            text = (f"<b>{count} similar image{'s' if count != 1 else ''}</b> to {name} "
                    f"(similarity {FLOOR_SCORE:.0f} or more; the first picture is the query)")
        else:
            text = (f"<b>No image in the cache is similar to {name}</b> (none scores "
                    f"{FLOOR_SCORE:.0f} or more). The {len(shown)} closest, for reference:")
        label = QLabel(text)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(self.view, 1)
        layout.addWidget(buttons)
        self.resize(QSize(4 * CELL.width() + 60, 2 * CELL.height() + 120))

    def menu_for(self, path: str) -> QMenu:
        """The right-click menu of one result (public for tests)."""
        menu = QMenu(self)
        menu.addAction("Find similar", lambda: self.find_similar_requested.emit(path))
        menu.addSeparator()
        add_file_actions(menu, path, self.message.emit)
        return menu

    def _menu(self, pos: QPoint) -> None:
        index = self.view.indexAt(pos)
        if index.isValid():
            self.menu_for(index.data(MEMBER_ROLE).path).exec(
                self.view.viewport().mapToGlobal(pos))

    def paths(self) -> list[str]:
        return [self.model.index(r).data(MEMBER_ROLE).path
                for r in range(self.model.rowCount())]

"""Edit ▸ Hidden groups…: the groups the user called "Not duplicates", to
show again one by one or all at once.

A mark hides its photos from each other in every later scan; without a list
a mistaken click was final (the review issue). Qt-only; the rows come from
storage.ignore_rows through the window's ActionsController.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.storage.ignore_rows import IgnoreMarkRow
from ..report import printable

SHOWN_NAMES = 4  # file names listed in a row before "and N more"


def describe(row: IgnoreMarkRow) -> str:
    """One line: the photos' names, how many, and when they were hidden."""
    names = [printable(os.path.basename(p)) for p in row.paths]
    if not names:
        text = f"{len(row.content_hashes)} photos no longer in the cache"
    else:
        text = ", ".join(names[:SHOWN_NAMES])
        if len(names) > SHOWN_NAMES:
            text += f" and {len(names) - SHOWN_NAMES} more"
    when = datetime.datetime.fromtimestamp(row.created).strftime("%Y-%m-%d %H:%M")
    return f"{text} (hidden {when})"


class HiddenGroupsDialog(QDialog):
    """Lists the marks; ``chosen`` holds the mark ids to show again once
    the dialog is accepted by "Show again" or "Show all again"."""

    def __init__(self, rows: Sequence[IgnoreMarkRow], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Hidden groups")
        self.chosen: list[int] = []
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        for row in rows:
            item = QListWidgetItem(describe(row))
            item.setData(Qt.ItemDataRole.UserRole, row.mark_id)
            item.setToolTip("\n".join(printable(p) for p in row.paths))
            self.list.addItem(item)
        intro = QLabel("Photos you marked as not duplicates are kept apart in every scan. "
                       "Show a group again to have its photos compared again."
                       if rows else "No groups are hidden.")
        intro.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.show_button = QPushButton("Show again")
        self.show_all_button = QPushButton("Show all again")
        buttons.addButton(self.show_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.show_all_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.show_button.setEnabled(False)
        self.show_all_button.setEnabled(bool(rows))
        self.list.itemSelectionChanged.connect(
            lambda: self.show_button.setEnabled(bool(self.list.selectedItems())))
        self.show_button.clicked.connect(lambda: self._choose(self.list.selectedItems()))
        self.show_all_button.clicked.connect(
            lambda: self._choose([self.list.item(n) for n in range(self.list.count())]))
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.list)
        layout.addWidget(buttons)
        self.resize(560, 360)

    def _choose(self, items: Sequence[QListWidgetItem]) -> None:
        self.chosen = [int(item.data(Qt.ItemDataRole.UserRole)) for item in items]
        if self.chosen:
            self.accept()

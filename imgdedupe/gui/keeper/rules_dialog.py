"""The keeper rules dialog: the criteria in a list, best first, each with a
checkbox; drag them (or use Move up / Move down) to reorder; a preferred
folder for the "folder" rule. Qt-only; the chain itself is core's
KeeperChain, and the settings hold its string.
"""

from __future__ import annotations

import logging
import os

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...core.groups.keeper_rules import (
    CRITERIA,
    DEFAULT_CHAIN,
    DEFAULT_ORDER,
    FOLDER,
    KeeperChain,
    KeeperRulesError,
)
from ...report import printable

log = logging.getLogger(__name__)

SETTINGS_KEY = "keeper/rules"
LABELS = {
    "pixels": "More pixels",
    "upright": "Upright, not a turned copy",
    "exif": "The camera's EXIF, not an export",
    "name": "The original name, not a copy's or an edit's",
    "compression": "Less compression (at equal format)",
    "date": "The earliest capture date, else the oldest file",
    FOLDER: "In the preferred folder",
    "path": "The shorter path",
}


def load_chain(settings: QSettings) -> KeeperChain:
    """The saved chain; the default when none is saved or it is unreadable."""
    text = settings.value(SETTINGS_KEY, "", str)
    if not text:
        return DEFAULT_CHAIN
    try:
        return KeeperChain.parse(str(text))
    except KeeperRulesError as exc:
        log.warning("ignoring the saved keeper rules %r: %s", text, exc)
        return DEFAULT_CHAIN


def chain_problem(settings: QSettings) -> str:
    """Why the saved chain cannot be used ("" when it can, or none is saved)."""
    text = settings.value(SETTINGS_KEY, "", str)
    try:
        KeeperChain.parse(str(text)) if text else None
    except KeeperRulesError as exc:
        return str(exc)
    return ""


def save_chain(settings: QSettings, chain: KeeperChain) -> None:
    settings.setValue(SETTINGS_KEY, str(chain))
    settings.sync()


class KeeperRulesDialog(QDialog):
    """``chain()`` is what the user set; OK is refused while no rule is
    ticked or the folder does not exist."""

    def __init__(self, chain: KeeperChain, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keeper rules")
        intro = QLabel("Each group suggests one copy to keep (★). The rules below choose it, "
                       "top first: each keeps the copies it prefers, and the next decides "
                       "between those. Untick a rule to skip it. Marks you made stay as "
                       "they are.")
        intro.setWordWrap(True)
        self.rules = QListWidget()
        self.rules.setAccessibleName("Keeper rules, best first")
        self.rules.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.rules.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.rules.itemChanged.connect(lambda _item: self._check())
        up = QPushButton("Move up")
        up.clicked.connect(lambda: self.move_current(-1))
        down = QPushButton("Move down")
        down.clicked.connect(lambda: self.move_current(1))
        defaults = QPushButton("Restore defaults")
        defaults.clicked.connect(lambda: self.set_chain(DEFAULT_CHAIN))
        side = QVBoxLayout()
        for button in (up, down, defaults):
            side.addWidget(button)
        side.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.rules, 1)
        row.addLayout(side)

        self.folder = QLineEdit()
        self.folder.setPlaceholderText("none: the folder rule is skipped")
        self.folder.setAccessibleName("Preferred folder")
        self.folder.textChanged.connect(lambda _text: self._check())
        choose = QPushButton("Choose…")
        choose.clicked.connect(self.choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(QLabel("Preferred folder:"))
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(choose)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(row)
        layout.addLayout(folder_row)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self.set_chain(chain)
        self.resize(560, 420)

    def set_chain(self, chain: KeeperChain) -> None:
        """Show ``chain``: its rules ticked in its order, the others after, unticked."""
        self.rules.blockSignals(True)
        self.rules.clear()
        ticked = list(chain.criteria)
        if FOLDER not in ticked:
            # Without a folder the rule is skipped and the settings leave it
            # out: show it ticked in its default place, so a folder is enough.
            ticked.insert(ticked.index("path") if "path" in ticked else len(ticked), FOLDER)
        names = [*ticked, *(n for n in DEFAULT_ORDER if n not in ticked)]
        for name in names:
            item = QListWidgetItem(LABELS[name])
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(f"{name}: {CRITERIA[name][0]}")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable
                          | Qt.ItemFlag.ItemIsDragEnabled)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsDropEnabled)
            item.setCheckState(Qt.CheckState.Checked if name in ticked
                               else Qt.CheckState.Unchecked)
            self.rules.addItem(item)
        self.rules.blockSignals(False)
        self.folder.setText(chain.folder or "")
        self.rules.setCurrentRow(0)
        self._check()

    def names(self) -> list[str]:
        """The ticked rules' names, in order."""
        items = [self.rules.item(n) for n in range(self.rules.count())]
        return [i.data(Qt.ItemDataRole.UserRole) for i in items
                if i.checkState() == Qt.CheckState.Checked]

    def chain(self) -> KeeperChain:
        typed = self.folder.text().strip()
        folder = os.path.abspath(os.path.expanduser(typed)) if typed else None
        names = self.names()
        if FOLDER in names and folder is None:
            names.remove(FOLDER)  # skipped anyway; the settings string leaves it out
        if folder is not None and FOLDER not in names:
            folder = None  # the rule is unticked: the folder is not used
        return KeeperChain(tuple(names), folder)

    def move_current(self, step: int) -> None:
        row = self.rules.currentRow()
        if row < 0 or not 0 <= row + step < self.rules.count():
            return
        item = self.rules.takeItem(row)
        self.rules.insertItem(row + step, item)
        self.rules.setCurrentRow(row + step)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Prefer the copies in this folder",
                                                  self.folder.text())
        if folder:
            self.folder.setText(os.path.abspath(folder))

    def _check(self) -> None:
        folder = os.path.expanduser(self.folder.text().strip())
        if not self.names():
            problem = "Tick at least one rule."
        elif folder and not os.path.isdir(folder):
            problem = f"No such folder: {printable(folder)}"
        else:
            problem = ""
        self.problem.setText(problem)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not problem)


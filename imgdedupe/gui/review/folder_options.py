"""The folder list's options: protected folders and "compare across folders only".

Right-click a folder in the list: "Protected: never mark anything here"
(again to unprotect). "Protect another folder…" protects any folder, inside
a scanned one or not (a backup kept beside the library). Both persist in
the settings; protection takes effect at once, without a rescan (it only
changes what may be marked). "Compare across folders only" changes which
pairs group, so it takes effect at the next scan (the window rescans; the
cache makes it quick).
"""

from __future__ import annotations

import os

from PySide6.QtCore import QObject, QPoint, QSettings, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QCheckBox, QFileDialog, QListWidget, QListWidgetItem, QMenu

from ...core.groups.protection import Protection
from ...report import printable
from .review_panel import ReviewPanel

PROTECT_TEXT = "Protected: never mark anything here"
PROTECTED_SUFFIX = "  (protected)"
PROTECTED_KEY = "protected_folders"
ACROSS_KEY = "across"


class FolderOptions(QObject):
    protection_changed = Signal(object)  # Protection
    across_changed = Signal(bool)

    def __init__(self, folders: QListWidget, settings: QSettings, review: ReviewPanel,
                 parent: QObject | None = None) -> None:
        """Wires itself to ``review``: the folders' protection, the folders
        listed (the scanned roots, for its folder filter) and its remembered
        sort order."""
        super().__init__(parent)
        self.folders = folders
        self.settings = settings
        saved = settings.value(PROTECTED_KEY, [], list) or []
        self._protection = Protection.of(f for f in saved if isinstance(f, str))
        self.across_box = QCheckBox("Compare across folders only")
        self.across_box.setToolTip(
            "Group only photos that lie in different folders of the list (for example "
            "what in a phone's dump is already in the library); copies inside one "
            "folder are not shown. Takes effect at the next scan.")
        self.across_box.setChecked(settings.value(ACROSS_KEY, False, bool))
        self.across_box.toggled.connect(self._across_toggled)
        folders.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        folders.customContextMenuRequested.connect(self._menu_at)
        # Items are added by the window; each is shown protected or not.
        folders.model().rowsInserted.connect(lambda *_: self.refresh_items())
        review.roots = self.listed
        review.set_protection(self._protection)
        self.protection_changed.connect(review.set_protection)
        review.bar.remember(settings)  # the review's sort order, with the folders' settings

    def listed(self) -> list[str]:
        """The folders in the list (the scanned roots)."""
        return [self.folders.item(r).data(Qt.ItemDataRole.UserRole)
                for r in range(self.folders.count())]

    @property
    def protection(self) -> Protection:
        return self._protection

    @property
    def across(self) -> bool:
        return self.across_box.isChecked()

    def is_protected(self, folder: str) -> bool:
        return os.path.abspath(folder) in self._protection.folders

    def set_protected(self, folder: str, protected: bool) -> None:
        folder = os.path.abspath(folder)
        folders = [f for f in self._protection.folders if f != folder]
        if protected:
            folders.append(folder)
        self._protection = Protection.of(folders)
        self.settings.setValue(PROTECTED_KEY, list(self._protection.folders))
        self.refresh_items()
        self.protection_changed.emit(self._protection)

    def refresh_items(self) -> None:
        """Each listed folder's text, font and tooltip say whether it is protected."""
        for row in range(self.folders.count()):
            item = self.folders.item(row)
            path = item.data(Qt.ItemDataRole.UserRole)
            if not isinstance(path, str):
                continue
            on = self.is_protected(path) or self._protection.covers(path)
            self._decorate(item, path, on)

    @staticmethod
    def _decorate(item: QListWidgetItem, path: str, protected: bool) -> None:
        item.setText(printable(path) + (PROTECTED_SUFFIX if protected else ""))
        font = QFont(item.font())
        font.setItalic(protected)
        item.setFont(font)
        item.setToolTip(f"{printable(path)}\nProtected: nothing in it is ever marked for "
                        "deletion (right-click to change)" if protected else printable(path))

    def menu_for(self, item: QListWidgetItem | None) -> QMenu:
        """The folder list's right-click menu (public for tests)."""
        menu = QMenu(self.folders)
        if item is not None:
            path = item.data(Qt.ItemDataRole.UserRole)
            action = menu.addAction(PROTECT_TEXT)
            action.setCheckable(True)
            action.setChecked(self.is_protected(path))
            action.toggled.connect(lambda on: self.set_protected(path, on))
            if self._protection.covers(path) and not self.is_protected(path):
                action.setEnabled(False)  # a folder above it is protected
                action.setText(PROTECT_TEXT + " (a folder above it is)")
        menu.addAction("Protect another folder…", self.choose_folder)
        listed = set(self.listed())
        others = [f for f in self._protection.folders if f not in listed]
        if others:
            menu.addSeparator()
            for folder in others:
                action = menu.addAction(f"Protected: {printable(folder)}")
                action.setCheckable(True)
                action.setChecked(True)
                action.setToolTip("Untick to unprotect")
                action.toggled.connect(lambda on, f=folder: self.set_protected(f, on))
        return menu

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.folders.window(),
                                                  "Protect a folder: never mark anything in it")
        if folder:
            self.set_protected(folder, True)

    def _menu_at(self, pos: QPoint) -> None:
        self.menu_for(self.folders.itemAt(pos)).exec(self.folders.viewport().mapToGlobal(pos))

    def _across_toggled(self, on: bool) -> None:
        self.settings.setValue(ACROSS_KEY, on)
        self.across_changed.emit(on)

"""Open, Show in folder and Copy path for one picture: the review grid's
right-click menu and the Find-similar results share them.

Each action says when it could not be done. "Show in folder" did nothing,
silently, where no file manager is installed (the review issue); now the
folder's path is copied instead, and the caller's ``report`` says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QMenu

from ...report import printable

Report = Callable[[str], None]


def show_in_folder(path: str) -> bool:
    """Reveal ``path`` in the platform's file manager, selected where
    possible. False when nothing could be started."""
    try:
        if sys.platform == "win32":
            subprocess.Popen(["explorer", "/select,", os.path.normpath(path)])  # noqa: S603,S607
            return True
        if sys.platform == "darwin":
            subprocess.Popen(["open", "-R", path])  # noqa: S603,S607
            return True
    except OSError:
        return False
    return QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(path)))


def open_file(path: str) -> bool:
    return QDesktopServices.openUrl(QUrl.fromLocalFile(path))


def reveal(path: str, report: Report) -> None:
    if not show_in_folder(path):
        folder = os.path.dirname(path)
        QGuiApplication.clipboard().setText(folder)
        report(f"No file manager could show {printable(folder)}: its path was copied.")


def open_or_say(path: str, report: Report) -> None:
    if not open_file(path):
        report(f"No program could open {printable(os.path.basename(path))} "
               "(Copy path gives its location).")


def add_file_actions(menu: QMenu, path: str, report: Report) -> None:
    menu.addAction("Open", lambda: open_or_say(path, report))
    menu.addAction("Show in folder", lambda: reveal(path, report))
    menu.addAction("Copy path", lambda: QGuiApplication.clipboard().setText(path))

"""Drives the real window for CI: scan, wait for thumbnails, screenshot, quit."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from ..core.actions.decisions import Rule
from .jobs.errors import WorkerError
from .main_window import MainWindow
from .review.group_model import MEMBER_ROLE, THUMB_ROLE

log = logging.getLogger(__name__)

THUMBNAIL_WAIT_MS = 30_000
POLL_MS = 100


class Automation(QObject):
    def __init__(self, window: MainWindow, screenshot: str | None,
                 compare_screenshot: str | None, exit_when_done: bool,
                 mark_suggested: bool = False) -> None:
        super().__init__(window)
        self.window = window
        self.screenshot = screenshot
        self.compare_screenshot = compare_screenshot
        self.exit_when_done = exit_when_done
        self.exit_code = 0
        self.mark_suggested = mark_suggested
        self._waited = 0
        if screenshot or compare_screenshot or exit_when_done or mark_suggested:
            window.scan_finished.connect(self._after_scan)
            window.controller.failed.connect(self._failed)
            window.controller.cancelled.connect(lambda: self._finish(1))

    def _failed(self, error: WorkerError) -> None:
        log.error("automation: scan failed: %s", error.message)
        print(f"imgdedupe-gui: {error.title}: {error.message}")
        self._finish(1)

    def _after_scan(self, _result: object) -> None:
        if self.mark_suggested:
            self.window.decisions.apply_rule_to_all(Rule.SUGGESTED)
            self.window.review.marks_updated()
            self.window._update_state()
        self._waited = 0
        QTimer.singleShot(POLL_MS, self._wait_for_grid)

    def _visible_thumbnails_ready(self) -> bool:
        panel = self.window.review
        views = [(panel.grid, THUMB_ROLE)]
        for view, role in views:
            model = view.model()
            for row in range(model.rowCount()):
                index = model.index(row, 0)
                if not view.viewport().rect().intersects(view.visualRect(index)):
                    continue
                member = index.data(MEMBER_ROLE)
                if index.data(role) is None and member.path not in \
                        self.window.thumbnails.failures:
                    return False
        return True

    def _wait_for_grid(self) -> None:
        if not self._visible_thumbnails_ready() and self._waited < THUMBNAIL_WAIT_MS:
            self._waited += POLL_MS
            QTimer.singleShot(POLL_MS, self._wait_for_grid)
            return
        if self.screenshot:
            self._grab(self.window, self.screenshot)
        if self.compare_screenshot and self.window.review.current_group() is not None:
            self.window.review.compare_selected()
            self._waited = 0
            QTimer.singleShot(POLL_MS, self._wait_for_compare)
            return
        self._finish(0)

    def _wait_for_compare(self) -> None:
        dialog = getattr(self.window, "compare_dialog", None)
        loaded = dialog is not None and all(not v.item.pixmap().isNull() for v in dialog.views)
        if not loaded and self._waited < THUMBNAIL_WAIT_MS:
            self._waited += POLL_MS
            QTimer.singleShot(POLL_MS, self._wait_for_compare)
            return
        if dialog is not None:
            dialog.fit()
            QApplication.processEvents()
            self._grab(dialog, self.compare_screenshot or "")
            dialog.close()
        self._finish(0)

    def _grab(self, widget: QWidget, path: str) -> None:
        QApplication.processEvents()
        if not widget.grab().save(path):
            log.error("could not write the screenshot %s", path)
            self.exit_code = 1
        else:
            print(f"screenshot written to {path}")

    def _finish(self, code: int) -> None:
        self.exit_code = self.exit_code or code
        if self.exit_when_done:
            # A scripted run ends without asking, marks or not (they are kept).
            self.window.confirm_quit = lambda _marked: True  # type: ignore[method-assign]
            self.window.close()
            QApplication.instance().quit()

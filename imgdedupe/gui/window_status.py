"""What the window says in its status bar and banner: one line per error
with the details a click away, the model that really runs, and marks that
the slider hides for a while rather than drops.

The review issue found a failed weights download's six lines of CLI advice
("--weights", "--backbone") filling the status bar, a banner that came back
after "Keep using the offline model" while the Model box still said
resnet50, a "still comparing…" left after Cancel, and marks lost without a
word when the slider hid their group. A mixin of MainWindow.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..core.model.registry import FALLBACK
from ..report import printable
from .dialogs import show_error
from .jobs.errors import WorkerError
from .jobs.scan_worker import BackboneCache
from .jobs.weights_download import download_weights

if TYPE_CHECKING:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QComboBox, QFrame, QLabel, QMainWindow, QPushButton, QWidget

    from ..core.actions.decisions import Decisions
    from ..core.model.weights import LocatedWeights
    from ..core.records import Notice
    from .jobs.scan_worker import ScanController
    from .jobs.tasks import TaskRunner
    from .review.threshold_bar import ThresholdBar

    _Window = QMainWindow
else:
    _Window = object

log = logging.getLogger(__name__)

LINE_CHARS = 140  # an error's line in the status bar; the rest is in Details…


def one_line(text: str) -> str:
    """The first line of ``text``, shortened to fit the status bar."""
    first = printable(text).strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= LINE_CHARS else first[:LINE_CHARS - 1] + "…"


class StatusMixin(_Window):
    settings: QSettings
    decisions: Decisions
    controller: ScanController
    tasks: TaskRunner
    threshold_bar: ThresholdBar
    phase_label: QLabel
    details_button: QPushButton
    backbone_box: QComboBox
    banner: QFrame
    banner_text: QLabel
    last_error: WorkerError | None
    set_aside: set[str]  # marks whose groups the slider hides now
    removed: set[str]  # moved to the trash since the scan
    _dialogs: list[QWidget]

    def _on_failed(self, error: WorkerError) -> None:
        """One line in the status bar, the whole message and details in a
        box (shown now, and again from the status bar's Details…)."""
        self.last_error = error
        self.phase_label.setText(f"{error.title}: {one_line(error.message)}")
        self.details_button.show()
        log.error("%s: %s\n%s", error.title, error.message, error.details)
        self._dialogs.append(show_error(self, error))

    def show_last_error(self) -> None:
        if self.last_error is not None:
            self._dialogs.append(show_error(self, self.last_error))

    def clear_error(self) -> None:
        self.last_error = None
        self.details_button.hide()

    def _on_cancelled(self) -> None:
        self.statusBar().clearMessage()  # "still comparing the other pictures…" is over
        self.phase_label.setText(
            "Cancelled. Finished work is cached: the next scan resumes from there.")

    def _on_notice(self, notice: Notice) -> None:
        if notice.code == "backbone_fallback":
            # The Model box shows what runs, so the next scan asks for it and
            # the banner does not come back; Download puts ResNet50 back.
            self.backbone_box.setCurrentText(FALLBACK)
            self.banner_text.setText(
                "<b>ResNet50's weights are not installed</b>, so this scan used the offline "
                "model, EfficientNet-Lite0 (the Model box now says so). Its results are good; "
                "ResNet50 can be downloaded once (100 MB).")
            self.banner.show()
        else:
            self.statusBar().showMessage(one_line(notice.message), 10_000)

    def keep_offline_model(self) -> None:
        self.backbone_box.setCurrentText(FALLBACK)
        self.banner.hide()

    def download_weights(self) -> None:
        def done(located: LocatedWeights) -> None:
            self.banner.hide()
            self.controller.backbones = BackboneCache()  # load the new model next scan
            self.backbone_box.setCurrentText("resnet50")
            where = printable(str(located.path))
            self.phase_label.setText(f"ResNet50 installed ({where}); scan again to use it.")

        self.download_dialog = download_weights(self, self.tasks, done, self._on_failed)

    def keep_marks_set_aside(self, dropped: list[str]) -> None:
        """Marks whose files the slider no longer shows are set aside, not
        lost: they come back with their groups (within this scan's results),
        and the status bar says how many wait."""
        # Not the marks of files just moved to the trash: those are done.
        self.set_aside.update(p for p in dropped if p not in self.removed)
        back = [path for path in sorted(self.set_aside) if self.decisions.mark(path)]
        self.set_aside.difference_update(back)
        if dropped and self.set_aside:
            self.statusBar().showMessage(self.set_aside_note(), 10_000)

    def set_aside_note(self) -> str:
        """What the status bar says of the marks set aside ("" if none)."""
        if not self.set_aside:
            return ""
        return f"{len(self.set_aside)} mark(s) set aside: they come back with their groups"

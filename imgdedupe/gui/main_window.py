"""The main window: folders in, scan in a worker, review, apply with undo."""

from __future__ import annotations

import logging
import os
import time

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from ..core.actions.decisions import Decisions
from ..core.groups.graph import FLOOR_SCORE, drop_paths, groups_at
from ..core.model import calibration
from ..core.model.registry import BACKBONES
from ..core.records import Group, Member
from ..core.scan.config import ScanConfig
from ..core.scan.events import ExactGroupsReady, NearExactGroupsReady, Progress, ScanResult
from ..report import printable
from .actions_controller import ActionsController
from .device_box import DeviceBox
from .jobs.errors import WorkerError
from .jobs.progress_text import ProgressText
from .jobs.scan_worker import ScanController
from .jobs.tasks import TaskRunner
from .keeper.window_keeper import KeeperMixin
from .review.compare_view import CompareDialog
from .review.folder_options import FolderOptions
from .review.review_panel import ReviewPanel
from .review.threshold_bar import ThresholdBar
from .review.thumbnails import THUMBNAIL_PX, ThumbnailCache
from .window_apply import ApplyMixin
from .window_session import SessionMixin
from .window_similar import SimilarMixin
from .window_status import StatusMixin

log = logging.getLogger(__name__)

class FolderList(QListWidget):
    """The folders to scan; Delete removes the selected ones."""

    def keyPressEvent(self, event) -> None:  # noqa: ANN001
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            for item in self.selectedItems():
                self.takeItem(self.row(item))
            return
        super().keyPressEvent(event)


class MainWindow(StatusMixin, SessionMixin, SimilarMixin, ApplyMixin, KeeperMixin, QMainWindow):
    scan_finished = Signal(object)  # ScanResult, after the grid shows it (for automation)
    groups_shown = Signal()

    def __init__(self, settings: QSettings, db_path: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.db_path = db_path
        self.setWindowTitle("imgdedupe")
        self.setAcceptDrops(True)
        self.result: ScanResult | None = None
        self.decisions = Decisions()
        self.thumbnails = ThumbnailCache(parent=self)
        self.tasks = TaskRunner(parent=self)
        self.controller = ScanController(parent=self)
        self.actions = ActionsController(db_path, self.tasks, parent=self)
        self.actions.batch_done.connect(self._on_batch_done)
        self.actions.state_changed.connect(self._update_state)
        self.removed: set[str] = set()  # moved to the trash since the scan
        self._scan_started = 0.0
        self._regroup_generation = 0
        self._early: dict[str, tuple[Group, ...]] = {}
        self.progress_text = ProgressText()
        self._dialogs: list[QWidget] = []
        self.last_error: WorkerError | None = None
        self.set_aside: set[str] = set()  # marks the slider hides (window_status)
        self.marks_to_restore: list[str] = []  # a restored scan's marks (window_session)
        self.scans_offered: set[str] = set()  # window_similar
        self.rescan_queued = False
        self._build()
        self.load_keeper_rules()
        self._connect_controller()
        self._restore_settings()
        self._update_state()
        self.actions.refresh_undoable()

    # -- layout ---------------------------------------------------------------
    def _build(self) -> None:
        toolbar = QToolBar("Main")
        toolbar.setMovable(False)
        self.addToolBar(toolbar)
        self.add_folder_action = toolbar.addAction("Add folder…", self.choose_folder)
        self.scan_action = toolbar.addAction("Scan", self.start_scan)
        self.cancel_action = toolbar.addAction("Cancel", self.cancel_scan)
        toolbar.addSeparator()
        self.threshold_bar = ThresholdBar(calibration.DEFAULT_THRESHOLD)
        self.threshold_bar.threshold_changed.connect(self.regroup)
        toolbar.addWidget(self.threshold_bar)
        toolbar.addSeparator()
        self.delete_action = toolbar.addAction("Move marked to trash…", self.apply_deletions)
        self.undo_action = toolbar.addAction("Undo", self.undo_last)
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)

        self.folders = FolderList()
        self.folders.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.folders.setFlow(QListWidget.Flow.LeftToRight)
        self.folders.setWrapping(True)
        self.folders.setSpacing(3)
        self.folders.setMaximumHeight(64)
        self.folders.setToolTip("Folders to scan. Drop more here; Delete removes.")
        remove = QPushButton("Remove folder")
        remove.clicked.connect(self.remove_selected_folders)
        self.backbone_box = QComboBox()
        self.backbone_box.addItems(list(BACKBONES))
        self.backbone_box.setToolTip("resnet50: best quality, needs its weights; "
                                     "efficientnet-lite0: about 10x faster, always offline")
        self.device_box = DeviceBox()  # cuda only where this build can use it
        folder_bar = QHBoxLayout()
        folder_bar.addWidget(QLabel("Folders:"))
        folder_bar.addWidget(self.folders, 1)
        folder_bar.addWidget(remove)
        folder_bar.addWidget(QLabel("Model:"))
        folder_bar.addWidget(self.backbone_box)
        folder_bar.addWidget(QLabel("Device:"))
        folder_bar.addWidget(self.device_box)

        self.banner = QFrame()
        self.banner.setFrameShape(QFrame.Shape.StyledPanel)
        self.banner_text = QLabel()
        self.banner_text.setWordWrap(True)
        banner_download = QPushButton("Download ResNet50 (100 MB)")
        banner_download.clicked.connect(self.download_weights)
        banner_close = QPushButton("Keep using the offline model")
        banner_close.clicked.connect(self.keep_offline_model)
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.addWidget(self.banner_text, 1)
        banner_layout.addWidget(banner_download)
        banner_layout.addWidget(banner_close)
        self.banner.hide()

        self.empty = QLabel("<h2>Drop folders here</h2>"
                            "<p>or use <b>Add folder…</b>, then press <b>Scan</b>.</p>"
                            "<p>imgdedupe finds exact copies and near-duplicates "
                            "(resized, re-encoded, cropped, rotated). Nothing is deleted "
                            "until you confirm, and every move to the trash can be undone.</p>")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.review = ReviewPanel(self.thumbnails, self.decisions)
        self.review.find_similar_requested.connect(self.find_similar)
        self.review.compare_requested.connect(self.compare)
        self.review.not_duplicates_requested.connect(self.add_ignore_mark)
        self.review.marks_changed.connect(self._update_state)
        self.review.message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        options = self.folder_options = FolderOptions(self.folders, self.settings, self.review)
        folder_bar.insertWidget(3, options.across_box)  # after "Remove folder"
        options.across_changed.connect(lambda _: self.result and self.scan_after_this_one())
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.review)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addLayout(folder_bar)
        layout.addWidget(self.banner)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.phase_label = QLabel("Ready")
        self.problems_button = QPushButton()
        self.problems_button.setFlat(True)
        self.problems_button.clicked.connect(self.show_problems)
        self.problems_button.hide()
        self.details_button = QPushButton("Details…")  # of the error on the status line
        self.details_button.setFlat(True)
        self.details_button.clicked.connect(self.show_last_error)
        self.details_button.hide()
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(260)
        self.progress_bar.hide()
        self.statusBar().addWidget(self.phase_label, 1)
        self.statusBar().addWidget(self.details_button)
        self.statusBar().addPermanentWidget(self.problems_button)
        self.statusBar().addPermanentWidget(self.progress_bar)

        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction("Add folder…", self.choose_folder)
        file_menu.addAction("Export groups…", self.export)
        file_menu.addSeparator()
        file_menu.addAction("Quit", self.close, QKeySequence.StandardKey.Quit)
        edit_menu = self.menuBar().addMenu("&Edit")
        edit_menu.addAction(self.undo_action)
        self.undo_history_action = edit_menu.addAction("Undo history…", self.undo_history)
        edit_menu.addAction(self.delete_action)
        self.clear_marks_action = edit_menu.addAction("Clear all marks", self.clear_marks)
        # Delete moves the marked files (after the confirmation) from the
        # review, not from the folder list, where it removes a folder.
        delete_key = QShortcut(QKeySequence.StandardKey.Delete, self.review,
                               self.apply_deletions)
        delete_key.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        edit_menu.addSeparator()
        self.undo_hide_action = edit_menu.addAction("Undo “Not duplicates”",
                                                    self.undo_not_duplicates)
        self.undo_hide_action.setEnabled(False)
        self.last_hidden = None
        edit_menu.addAction("Hidden groups…", self.show_hidden_groups)
        edit_menu.addAction("Keeper rules…", self.edit_keeper_rules)
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction("Larger thumbnails", lambda: self.review.zoom(1),
                            QKeySequence.StandardKey.ZoomIn)
        view_menu.addAction("Smaller thumbnails", lambda: self.review.zoom(-1),
                            QKeySequence.StandardKey.ZoomOut)
        view_menu.addAction("Default thumbnail size",
                            lambda: self.review.set_thumbnail_size(THUMBNAIL_PX),
                            QKeySequence("Ctrl+0"))
        self.resize(1200, 800)

    def _connect_controller(self) -> None:
        c = self.controller
        c.progress.connect(self._on_progress)
        c.notice.connect(self._on_notice)
        c.exact_groups.connect(self._on_exact_groups)
        c.result.connect(self._on_result)
        c.failed.connect(self._on_failed)
        c.cancelled.connect(self._on_cancelled)
        c.finished.connect(self._on_scan_thread_done)

    # -- folders --------------------------------------------------------------
    def folder_paths(self) -> list[str]:
        # The real path rides in the item's data; its text is only what is shown.
        return [self.folders.item(n).data(Qt.ItemDataRole.UserRole)
                for n in range(self.folders.count())]

    def add_folders(self, paths: list[str]) -> None:
        known = set(self.folder_paths())
        for path in paths:
            path = os.path.abspath(path)
            if os.path.isdir(path) and path not in known:
                item = QListWidgetItem(printable(path))
                item.setData(Qt.ItemDataRole.UserRole, path)
                self.folders.addItem(item)
                known.add(path)
        self._update_state()

    def open_path(self, path: str) -> None:
        """A path handed over by the system (macOS Open With, a second
        launch): a folder is added and scanned, an image finds similar ones."""
        if os.path.isdir(path):
            self.add_folders([path])
            self.start_scan()
        elif os.path.isfile(path):
            self.find_similar(path)

    def remove_selected_folders(self) -> None:
        for item in self.folders.selectedItems():
            self.folders.takeItem(self.folders.row(item))
        self._update_state()

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder to scan")
        if folder:
            self.add_folders([folder])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        folders = [p for p in paths if os.path.isdir(p)]
        images = [p for p in paths if os.path.isfile(p)]
        self.add_folders(folders)
        if images and not folders:
            self.find_similar(images[0])
        event.acceptProposedAction()

    # -- scanning -------------------------------------------------------------
    def scan_config(self) -> ScanConfig:
        return ScanConfig(roots=tuple(self.folder_paths()), db_path=self.db_path,
                          backbone=self.backbone_box.currentText(),
                          device=self.device_box.currentText(),
                          threshold=self.threshold_bar.value(),
                          keep_rules=self.keeper_rules_for_scan(),
                          across=self.folder_options.across)

    def start_scan(self) -> None:
        if self.controller.running or not self.folder_paths():
            return
        self._save_settings()
        self._scan_started = time.monotonic()
        self._early = {}
        self.progress_text.reset()
        self.clear_error()
        self.progress_bar.setRange(0, 0)
        self.progress_bar.show()
        self.phase_label.setText("Starting…")
        self.controller.start(self.scan_config())
        self._update_state()

    def cancel_scan(self) -> None:
        self.controller.cancel()
        self.phase_label.setText("Cancelling…")

    def _on_progress(self, event: Progress) -> None:
        if event.total:
            self.progress_bar.setRange(0, event.total)
            self.progress_bar.setValue(event.done)
        else:
            self.progress_bar.setRange(0, 0)
        self.phase_label.setText(self.progress_text.describe(event))

    def _on_exact_groups(self, event: ExactGroupsReady | NearExactGroupsReady) -> None:
        """Early results: byte copies at once, then near-exact copies (a
        perceptual hash) while the model runs. Each kind's latest event
        replaces its earlier one; the final result replaces both."""
        kind = "exact" if isinstance(event, ExactGroupsReady) else "near"
        self._early[kind] = event.groups
        near_paths = {m.path for g in self._early.get("near", ()) for m in g.members}
        exact = [g for g in self._early.get("exact", ())
                 if not any(m.path in near_paths for m in g.members)]
        groups = tuple(sorted([*exact, *self._early.get("near", ())],
                              key=lambda g: g.members[0].path))
        if groups:
            self._show_groups(groups)
            self.statusBar().showMessage(
                f"{len(groups)} group(s) of exact or near-exact copies so far; "
                "still comparing the other pictures…", 5000)

    def _on_result(self, result: ScanResult) -> None:
        self.result = result
        self.removed = set()  # the scan saw the folders as they are now
        self.statusBar().clearMessage()
        graph = result.graph
        if graph is not None:
            self.threshold_bar.histogram.set_scores(graph.pair_scores(), graph.floor_score)
        self.review.bar.set_graph(graph)  # capture dates, for sorting by date
        self._show_groups(result.groups, keep_place=False)
        stats = result.stats
        elapsed = time.monotonic() - self._scan_started
        problems = f", {stats.failed} could not be read" if stats.failed else ""
        self.phase_label.setText(
            f"{len(result.groups)} group(s) in {stats.files_seen:,} files{problems} "
            f"({elapsed:.1f} s; {stats.embedded:,} newly analysed, "
            f"{stats.from_cache:,} already in the cache)")
        count = len(result.errors)
        self.problems_button.setText(f"⚠ {count} file{'s' if count != 1 else ''} "
                                     "could not be read")
        self.problems_button.setVisible(bool(count))
        self.remember_scan(result)
        self.scan_finished.emit(result)

    def show_problems(self) -> None:
        """Every file the scan could not use, with its reason, to copy."""
        errors = self.result.errors if self.result else ()
        lines = [f"{printable(e.path)}\n    {e.reason}: {printable(e.detail)}" for e in errors]
        box = QMessageBox(QMessageBox.Icon.Information, "Files that could not be read",
                          f"{len(errors)} file(s) were skipped; the scan went on without "
                          "them. Nothing was changed. Show Details lists each with its reason.",
                          QMessageBox.StandardButton.Ok, self)
        box.setDetailedText("\n".join(lines))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self._dialogs.append(box)

    def _on_scan_thread_done(self) -> None:
        self.progress_bar.hide()
        self._update_state()

    # -- results --------------------------------------------------------------
    def _show_groups(self, groups: tuple[Group, ...], keep_place: bool = True) -> None:
        dropped = self.decisions.set_groups(groups)
        if dropped:
            log.info("set aside %d mark(s) after regrouping", len(dropped))
        self.keep_marks_set_aside(dropped)
        self.review.set_groups(groups, keep_place)
        self.stack.setCurrentWidget(self.review if groups or self.result else self.empty)
        self._update_state()
        self.groups_shown.emit()

    def regroup(self, threshold: float, message: str = "") -> None:
        """Regroup from the scan's cached similarity graph: no rescan.
        ``message``: what the status bar says once shown (by default, how
        many groups)."""
        result = self.result
        if result is None or result.graph is None:
            return
        self._regroup_generation += 1
        generation = self._regroup_generation
        graph, ignore_marks = result.graph, result.ignore_marks
        threshold = max(threshold, FLOOR_SCORE)

        def done(groups: tuple[Group, ...]) -> None:
            if generation == self._regroup_generation:  # a newer move wins
                self._show_groups(groups)
                note = self.set_aside_note()
                aside = f"; {note}" if note else ""
                self.statusBar().showMessage(
                    message or f"{len(groups)} group(s) at similarity {threshold:.0f}{aside}",
                    10_000 if message or aside else 4000)

        removed = frozenset(self.removed)
        self.tasks.run("Regrouping",
                       lambda: self.with_keepers(
                           drop_paths(groups_at(graph, threshold, ignore_marks), removed), graph),
                       done, self._on_failed)

    def compare(self, members: tuple[Member, ...]) -> None:
        dialog = CompareDialog(members, self.tasks, self.decisions.is_marked, self)
        dialog.toggle_requested.connect(self.review.toggle)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.compare_dialog = dialog
        dialog.show()

    # -- state ----------------------------------------------------------------
    def _update_state(self) -> None:
        running = self.controller.running
        self.scan_action.setEnabled(not running and bool(self.folder_paths()))
        self.cancel_action.setEnabled(running)
        self.add_folder_action.setEnabled(not running)
        self.backbone_box.setEnabled(not running)
        self.device_box.setEnabled(not running)
        marked = len(self.decisions.marked)
        self.delete_action.setEnabled(marked > 0 and not running and not self.actions.busy)
        self.delete_action.setText(f"Move {marked} marked to trash…" if marked
                                   else "Move marked to trash…")
        self.clear_marks_action.setEnabled(marked > 0)
        self.undo_action.setEnabled(self._can_undo() and not running)
        if self.result is None and not self.review.groups:
            self.stack.setCurrentWidget(self.empty)

    # -- settings -------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        folders = s.value("folders", [], list) or []
        self.add_folders([f for f in folders if isinstance(f, str)])
        self.threshold_bar.set_value(float(s.value("threshold",
                                                   calibration.DEFAULT_THRESHOLD)))
        self.backbone_box.setCurrentText(str(s.value("backbone", "resnet50")))
        self.device_box.select(str(s.value("device", "auto")))
        self.review.set_thumbnail_size(s.value("thumbnail_px", THUMBNAIL_PX, int) or THUMBNAIL_PX)
        geometry = s.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        # Never larger than the screen: 1200x800 (or a size saved on a larger
        # screen) would leave a 1024x600 netbook's window off its edges.
        room = self.screen().availableGeometry()
        self.resize(min(self.width(), room.width()), min(self.height(), room.height()))

    def _save_settings(self) -> None:
        s = self.settings
        s.setValue("folders", self.folder_paths())
        s.setValue("threshold", self.threshold_bar.value())
        s.setValue("backbone", self.backbone_box.currentText())
        s.setValue("device", self.device_box.currentText())
        s.setValue("thumbnail_px", self.review.thumbnail_px)
        s.setValue("geometry", self.saveGeometry())
        self.save_marks()
        s.sync()

    # -- shutdown -------------------------------------------------------------
    def shutdown(self) -> None:
        """The one shutdown path: cancel, quit, wait."""
        self.threshold_bar.stop()
        self.tasks.shutdown()  # first: late results are dropped, not shown
        self.controller.shutdown()
        self.thumbnails.shutdown()
        self.statusBar().clearMessage()  # last: also stops its message timeout timer

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.decisions.marked and not self.confirm_quit(len(self.decisions.marked)):
            event.ignore()
            return
        self._save_settings()
        self.shutdown()
        super().closeEvent(event)


"""The window's actions on files: move to trash, undo, "Not duplicates", export.

A mixin of MainWindow, kept apart so each module reads in one sitting; it
uses the window's decisions, review panel, result and ActionsController.
``ApplyMixin`` declares what it takes from the window, attributes and methods,
so a reader (and mypy) sees the contract without reading ``main_window``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog, QInputDialog

from ..core.actions.trashing import BatchResult, Outcome, UnsafeActionError
from ..core.groups.graph import drop_paths, with_digests
from ..core.records import Group, Member
from ..core.storage.ignore_rows import IgnoreMarkRow
from ..core.storage.store import BatchRow
from ..report import printable, write_csv, write_json
from .actions_controller import HiddenGroup, trash_name
from .dialogs import confirm_delete
from .hidden_groups import HiddenGroupsDialog
from .jobs.errors import WorkerError

if TYPE_CHECKING:
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QLabel, QMainWindow

    from ..core.actions.decisions import Decisions
    from ..core.scan.events import ScanResult
    from .actions_controller import ActionsController
    from .review.review_panel import ReviewPanel
    from .review.threshold_bar import ThresholdBar
    from .review.thumbnails import ThumbnailCache

    # To a type checker the mixin is the QMainWindow it is mixed into (self is
    # the dialogs' parent, statusBar() is the window's); at run time it is a
    # plain class, so MainWindow's bases and MRO stay as they were.
    _Window = QMainWindow
else:
    _Window = object


class ApplyMixin(_Window):
    # Set by MainWindow.__init__ and _build: annotations only, nothing is
    # assigned here, so reads find the window's own attributes.
    review: ReviewPanel
    # Shadows QWidget.actions(), as MainWindow's attribute always has; nothing
    # calls that method on the window.
    actions: ActionsController  # type: ignore[assignment]
    decisions: Decisions
    result: ScanResult | None
    removed: set[str]  # paths moved to the trash since the scan
    thumbnails: ThumbnailCache
    threshold_bar: ThresholdBar
    phase_label: QLabel
    undo_hide_action: QAction
    last_hidden: int | None  # the mark "Undo “Not duplicates”" would remove
    set_aside: set[str]  # marks the slider hides (window_status)
    hidden_dialog: HiddenGroupsDialog

    if TYPE_CHECKING:
        # MainWindow's methods the mixin calls; defined there, stubs here only.
        def regroup(self, threshold: float, message: str = "") -> None: ...
        def _update_state(self) -> None: ...
        def _on_failed(self, error: WorkerError) -> None: ...
        def _show_groups(self, groups: tuple[Group, ...], keep_place: bool = True) -> None: ...

    def apply_deletions(self) -> None:
        """Confirm, then move the marked files to the trash (undoable)."""
        groups = self.review.groups  # marks in a hidden tier's groups count too
        # Decisions never marks a protected photo; checked again here, where
        # files move, so no future way of marking can slip one through.
        marked = {p for p in self.decisions.marked if not self.decisions.is_protected(p)}
        try:
            plan = self.actions.plan(groups, marked)
        except UnsafeActionError as exc:  # the marks broke the rule: never act
            self._on_failed(WorkerError("Nothing was moved", str(exc), str(exc)))
            return
        if not plan.deletions:
            self._report_refusals("Nothing to move", plan.refused)
            return
        members = [m for g in groups for m in g.members
                   if m.path in {d.file.path for d in plan.deletions}]
        if not self.confirm(members):
            return
        self.phase_label.setText(plan.summary() + "…")
        self.actions.apply(plan, self._on_failed)
        self._update_state()

    def confirm(self, members: list[Member]) -> bool:
        """The confirmation dialog; tests replace it."""
        return confirm_delete(self, members, trash_name())

    def undo_last(self) -> None:
        self.actions.undo(self._on_failed)
        self._update_state()

    def undo_history(self) -> None:
        """Edit ▸ Undo history…: any batch with files still in the trash,
        not only the newest, can be put back."""
        batches = [b for b in self.actions.history() if b.states.get("done")]
        if not batches:
            self.statusBar().showMessage("Nothing to undo: no moved file is still in the "
                                         "trash.", 5000)
            return
        labels = [batch_label(b) for b in batches]
        chosen, ok = self.choose_batch(labels)
        if ok and chosen in labels:
            self.actions.undo(self._on_failed, batches[labels.index(chosen)].batch_id)
            self._update_state()

    def choose_batch(self, labels: list[str]) -> tuple[str, bool]:
        """The history's chooser; tests replace it."""
        return QInputDialog.getItem(self, "Undo history", "Put back the files of:", labels,
                                    0, False)

    def _can_undo(self) -> bool:
        return self.actions.undoable and not self.actions.busy

    def _on_batch_done(self, result: BatchResult) -> None:
        moved = {o.path for o in result.with_status("moved")}
        restored = {o.path for o in result.with_status("restored")}
        self.removed = (self.removed | moved) - restored
        for path in moved | restored:
            self.thumbnails.forget(path)
        for path in moved:
            self.decisions.keep(path)
        problems = [o for o in result.outcomes if o.status in ("refused", "failed")]
        if moved:
            self.phase_label.setText(f"Moved {len(moved)} file(s) to {trash_name()}. "
                                     "Edit ▸ Undo puts them back.")
        elif restored:
            self.phase_label.setText(f"Restored {len(restored)} file(s).")
        if problems:
            self._report_refusals("Some files were not touched", problems)
        if self.result is not None and self.result.graph is not None:
            self.regroup(self.threshold_bar.value())  # restored files may rejoin groups
        else:
            self._show_groups(drop_paths(self.review.groups, self.removed))
        self._update_state()

    def _report_refusals(self, title: str, outcomes: Sequence[Outcome]) -> None:
        lines = [f"{printable(o.path)}: {printable(o.reason)}" for o in outcomes]
        self._on_failed(WorkerError(
            title, f"{len(outcomes)} file(s) were left alone. The details say why "
                   "(for example, a file changed on disk after the scan).",
            "\n".join(lines)))

    def clear_marks(self) -> None:
        """Edit ▸ Clear all marks: every file kept again (nothing moves)."""
        count = len(self.decisions.marked)
        self.decisions.clear()
        self.set_aside.clear()
        self.review.marks_updated()
        self._update_state()
        self.statusBar().showMessage(f"{count} mark(s) cleared: every file is kept.", 6000)

    def add_ignore_mark(self, group: Group) -> None:
        """The group's "Not duplicates": it stays apart across rescans,
        until Edit ▸ Undo "Not duplicates" or Edit ▸ Hidden groups…"""
        self.actions.add_ignore_mark(group, self._on_marked, self._on_failed)

    def _on_marked(self, hidden: HiddenGroup) -> None:
        self.last_hidden = hidden.mark_id
        self.undo_hide_action.setEnabled(True)
        message = (f"{len(hidden.by_path)} photos marked as not duplicates: they stay apart in "
                   "later scans too. Edit ▸ Undo “Not duplicates” shows them again.")
        if self.result is not None and self.result.graph is not None:
            self.result = replace(self.result,
                                  graph=with_digests(self.result.graph, hidden.by_path),
                                  ignore_marks=(*self.result.ignore_marks, hidden.digests))
            self.regroup(self.threshold_bar.value(), message)
        else:
            self.statusBar().showMessage(message, 10_000)

    def undo_not_duplicates(self) -> None:
        """Show the group hidden last again."""
        if self.last_hidden is not None:
            self.actions.show_again([self.last_hidden], self._on_shown_again, self._on_failed)

    def show_hidden_groups(self) -> None:
        """Edit ▸ Hidden groups…: list the marks; show chosen ones again."""
        self.actions.hidden_groups(self._choose_hidden, self._on_failed)

    def _choose_hidden(self, rows: list[IgnoreMarkRow]) -> None:
        self.hidden_dialog = HiddenGroupsDialog(rows, self)
        if self.hidden_dialog.exec() and self.hidden_dialog.chosen:
            self.actions.show_again(self.hidden_dialog.chosen, self._on_shown_again,
                                    self._on_failed)

    def _on_shown_again(self, marks: list[frozenset[str]]) -> None:
        if self.last_hidden is not None and marks:
            self.last_hidden = None  # shown again, one way or the other: nothing to undo
            self.undo_hide_action.setEnabled(False)
        message = f"{len(marks)} hidden group(s) shown again: their photos are compared again."
        if self.result is not None and self.result.graph is not None:
            self.result = replace(self.result, ignore_marks=tuple(
                m for m in self.result.ignore_marks if m not in marks))
            self.regroup(self.threshold_bar.value(), message)
        else:
            self.statusBar().showMessage(message, 10_000)

    def export(self) -> None:
        groups = self.review.groups_model.groups
        if not groups:
            self.statusBar().showMessage("Nothing to export yet: scan first.", 5000)
            return
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export groups", "imgdedupe-groups.csv", "CSV (*.csv);;JSON (*.json)")
        if path:
            self.export_to(path, json_format=path.lower().endswith(".json")
                           or chosen.startswith("JSON"))

    def export_to(self, path: str, json_format: bool) -> None:
        groups = self.review.groups_model.groups
        try:
            with open(path, "w", encoding="utf-8", newline="") as stream:
                if json_format and self.result is not None:
                    write_json(replace(self.result, groups=groups), stream)
                else:
                    write_csv(groups, stream, self.decisions.marked)
        except OSError as exc:
            self._on_failed(WorkerError("Export failed",
                                        f"Cannot write {printable(path)}: {exc.strerror}",
                                        str(exc)))
            return
        self.statusBar().showMessage(f"Exported {len(groups)} group(s) to {printable(path)}", 6000)


def batch_label(batch: BatchRow) -> str:
    """One line of the undo history: when, what, how many still in the trash."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(batch.created))
    waiting = batch.states.get("done", 0)
    return f"{when} · {batch.description or 'moved files'} · {waiting} still in the trash"

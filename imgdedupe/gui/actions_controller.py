"""Move to trash, undo and "Not duplicates" for the window, over ``core.actions``
(trashing, ignore marks).

The database work runs on a pool thread with its own connection. On Linux
the freedesktop trash is written directly (the same spec Qt follows), which
also tells us where each file went; elsewhere Qt's ``QFile.moveToTrash``
does the move and reports the path in the trash for undo.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Collection, Sequence
from typing import NamedTuple

from PySide6.QtCore import QFile, QObject, Signal

from ..core.actions import ignore_marks
from ..core.actions import trashing as actions
from ..core.actions.trash_backends import FolderTrash, FreedesktopTrash, TrashError
from ..core.records import Group
from ..core.storage.ignore_rows import IgnoreMarkRow
from ..core.storage.store import BatchRow, Store
from .jobs.errors import WorkerError
from .jobs.tasks import TaskRunner

log = logging.getLogger(__name__)


def qt_move_to_trash(path: str) -> str | None:
    """Qt's system trash; returns the file's path inside the trash."""
    file = QFile(path)
    if not file.moveToTrash():
        raise TrashError(f"the system trash refused {path}: {file.errorString()}")
    return file.fileName()  # after the move Qt points it at the trashed copy


def system_trash() -> actions.TrashBackend | actions.ReservingBackend:
    if sys.platform.startswith("linux"):
        return FreedesktopTrash(fallback=FolderTrash())
    return qt_move_to_trash


def trash_name() -> str:
    return {"win32": "the Recycle Bin", "darwin": "the Trash"}.get(sys.platform, "the trash")


class HiddenGroup(NamedTuple):
    """A "Not duplicates" just made: its mark, its contents, and each
    member's content hash by path."""

    mark_id: int
    digests: frozenset[str]
    by_path: dict[str, str]


class ActionsController(QObject):
    """``batch_done(BatchResult)`` after every apply or undo;
    ``state_changed`` when ``busy`` or ``undoable`` change."""

    batch_done = Signal(object)
    state_changed = Signal()

    def __init__(self, db_path: str, tasks: TaskRunner,
                 trash: actions.TrashBackend | actions.ReservingBackend | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.db_path = db_path
        self.tasks = tasks
        self.trash = trash or system_trash()
        self.undoable = False
        self.busy = False

    def plan(self, groups: Sequence[Group], marked: Collection[str]) -> actions.DeletionPlan:
        return actions.plan_deletions(groups, marked)

    def apply(self, plan: actions.DeletionPlan, on_failure: Callable[[WorkerError], None]) -> None:
        def work() -> actions.BatchResult:
            with Store(self.db_path) as store:
                return actions.trash_files(store, plan, self.trash,
                                           description=plan.summary())

        self._run("Moving files to the trash", work, on_failure)

    def undo(self, on_failure: Callable[[WorkerError], None],
             batch_id: int | None = None) -> None:
        """Undo ``batch_id`` (any batch of the history), by default the
        newest with a file to put back."""
        def work() -> actions.BatchResult:
            with Store(self.db_path) as store:
                return actions.undo(store, batch_id)

        self._run("Undo", work, on_failure)

    def history(self, limit: int = 50) -> list[BatchRow]:
        """The batches, newest first (a quick read, on the caller's thread)."""
        with Store(self.db_path) as store:
            return actions.history(store, limit)

    def refresh_undoable(self) -> None:
        """Settle what a crash may have left, and learn whether undo can run."""
        def work() -> bool:
            with Store(self.db_path) as store:
                actions.recover(store)
                return any(b.states.get("done") for b in actions.history(store, limit=50))

        self.tasks.run("Reading the undo history", work, self._set_undoable,
                       lambda error: log.warning("undo history: %s", error.message))

    def add_ignore_mark(self, group: Group, on_done: Callable[[HiddenGroup], None],
                        on_failure: Callable[[WorkerError], None]) -> None:
        paths = [m.path for m in group.members]

        def work() -> HiddenGroup:
            from ..core.files.hashing import content_hash

            digests = {p: content_hash(p) for p in paths}
            with Store(self.db_path) as store:
                mark_id = ignore_marks.add_ignore_mark(store, paths)
            return HiddenGroup(mark_id, frozenset(digests.values()), digests)

        self.tasks.run("Not duplicates", work, on_done, on_failure)

    def hidden_groups(self, on_done: Callable[[list[IgnoreMarkRow]], None],
                      on_failure: Callable[[WorkerError], None]) -> None:
        """The "Not duplicates" marks, newest first, for Edit ▸ Hidden groups…"""
        def work() -> list[IgnoreMarkRow]:
            with Store(self.db_path) as store:
                return store.ignore_mark_rows()

        self.tasks.run("Hidden groups", work, on_done, on_failure)

    def show_again(self, mark_ids: Collection[int],
                   on_done: Callable[[list[frozenset[str]]], None],
                   on_failure: Callable[[WorkerError], None]) -> None:
        """Forget these marks; ``on_done`` gets the content sets they held."""
        def work() -> list[frozenset[str]]:
            with Store(self.db_path) as store:
                marks = store.ignore_marks()
                for mark_id in mark_ids:
                    ignore_marks.remove_ignore_marks(store, mark_id)
            return [marks[m] for m in mark_ids if m in marks]

        self.tasks.run("Show hidden groups again", work, on_done, on_failure)

    def _run(self, title: str, work: Callable[[], actions.BatchResult],
             on_failure: Callable[[WorkerError], None]) -> None:
        self.busy = True
        self.state_changed.emit()

        def done(result: actions.BatchResult) -> None:
            self.busy = False
            self.batch_done.emit(result)
            self.refresh_undoable()

        def failed(error: WorkerError) -> None:
            self.busy = False
            on_failure(error)
            self.refresh_undoable()

        self.tasks.run(title, work, done, failed)

    def _set_undoable(self, value: bool) -> None:
        self.undoable = value
        self.state_changed.emit()

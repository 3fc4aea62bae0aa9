"""Crash recovery, undo and the history of trash batches.

actions.trashing journals every move before and after it happens; this
module settles what a crash left half done (recover) and puts a batch's
files back (undo), companion files included: they are journalled rows of
the same batch as their photo.
"""

from __future__ import annotations

import os
import stat

from imgdedupe.core.actions.outcomes import BatchResult, Outcome, Status, lstat_or_none
from imgdedupe.core.actions.trash_backends import TrashError, move_no_replace
from imgdedupe.core.storage.dblock import ActionLock
from imgdedupe.core.storage.store import BatchRow, JournalRow, Store

__all__ = ["recover", "undo", "history"]


def recover(store: Store) -> list[Outcome]:
    """Settle journal rows left 'pending' by a crash; call at start-up.

    Still at its original path: not moved ('failed'). Gone and found where
    the trash said it would go: 'done'. Gone and not found: 'unknown'.
    """
    settled: list[Outcome] = []
    for row in store.journal_rows(states=("pending",)):
        original = lstat_or_none(row.path)
        expected = lstat_or_none(row.expected_path) if row.expected_path else None
        moved = (expected is not None and expected.st_size == row.size
                 and (original is None or original.st_ino != expected.st_ino))
        if moved:
            assert row.expected_path is not None
            store.journal_set(row.row_id, "done", row.expected_path,
                              "recovered after an interruption")
            settled.append(Outcome(row.path, "moved", "recovered", trash_path=row.expected_path))
        elif original is not None:
            reason = "interrupted before the move; the file was not moved"
            store.journal_set(row.row_id, "failed", reason=reason)
            if row.expected_path and expected is None:
                _remove_trashinfo_of(row.expected_path)  # a name reserved, never used
            settled.append(Outcome(row.path, "failed", "not_moved", reason))
        else:
            where = repr(row.expected_path) if row.expected_path else "an unrecorded place"
            reason = (f"interrupted: the file left {row.path!r} but is not at {where}; "
                      "look for it in the system trash")
            store.journal_set(row.row_id, "unknown", reason=reason)
            settled.append(Outcome(row.path, "failed", "unknown", reason))
    return settled


def _remove_trashinfo_of(trash_path: str) -> None:
    # The freedesktop spec pairs files/NAME with info/NAME.trashinfo;
    # a stale info file would show a ghost entry in the desktop's trash.
    directory, name = os.path.split(trash_path)
    if os.path.basename(directory) == "files":
        info = os.path.join(os.path.dirname(directory), "info", name + ".trashinfo")
        try:
            os.unlink(info)
        except FileNotFoundError:
            pass


def undo(store: Store, batch_id: int | None = None, *,
         lock_wait_s: float | None = None) -> BatchResult:
    """Move the files of a batch back to their original paths: ``batch_id``
    (any batch, not only the newest) or by default the newest batch with a
    file that can be put back now. Never overwrites anything that now sits
    there; such files stay in the trash, with the reason, and the rest of
    the batch is restored. A file restored or emptied by other means
    (gone from the trash) is settled, so it never blocks a later undo.
    Holds the library's action lock (see trash_files)."""
    with ActionLock(store.path, lock_wait_s):
        recover(store)
        if batch_id is None:
            # The newest batch with a file to put back; failing that, the
            # newest with files still in the trash, to say why they stay.
            pending = [b.batch_id for b in store.batches() if b.states.get("done")]
            batch_id = next((n for n in pending if any(
                _restorable(row) for row in store.journal_rows(n, ("done",)))),
                pending[0] if pending else None)
            if batch_id is None:
                return BatchResult(None, ())
        # Read under the lock: another process's undo has finished with it.
        outcomes = [_undo_one(store, row) for row in store.journal_rows(batch_id, ("done",))]
        return BatchResult(batch_id, tuple(outcomes))


def _restorable(row: JournalRow) -> bool:
    """Whether undo could put this 'done' file back right now."""
    if row.trash_path is None or os.path.lexists(row.path):
        return False
    there = lstat_or_none(row.trash_path)
    return there is not None and stat.S_ISREG(there.st_mode) and (
        there.st_size, there.st_mtime_ns) == (row.size, row.mtime_ns)


def _undo_one(store: Store, row: JournalRow) -> Outcome:
    def refuse(code: str, reason: str, status: Status = "refused",
               state: str = "done") -> Outcome:
        store.journal_set(row.row_id, state, row.trash_path, reason)
        return Outcome(row.path, status, code, reason, row.trash_path)

    if row.trash_path is None:
        return refuse("unknown_place", "imgdedupe does not know where the trash put it; "
                      f"restore {row.path!r} from the system trash", state="unknown")
    there = lstat_or_none(row.trash_path)
    if there is None:
        back = lstat_or_none(row.path)
        if back is not None and (back.st_size, back.st_mtime_ns) == (row.size, row.mtime_ns):
            return refuse("restored_elsewhere", "it was already put back (from the system "
                          "trash, or by hand)", state="undone")
        return refuse("not_in_trash", f"it is no longer in the trash: expected at "
                      f"{row.trash_path!r} (emptied, or restored elsewhere)", state="unknown")
    if not stat.S_ISREG(there.st_mode) or (there.st_size, there.st_mtime_ns) != (
            row.size, row.mtime_ns):
        return refuse("trash_changed", f"the file at {row.trash_path!r} is not the one moved; "
                      "it was left there", state="unknown")
    if os.path.lexists(row.path):
        return refuse("exists", f"something now exists at {row.path!r}; it was not "
                      "overwritten (move it away and undo again)")
    try:
        os.makedirs(os.path.dirname(row.path), exist_ok=True)
        move_no_replace(row.trash_path, row.path)
    except FileExistsError:
        return refuse("exists", f"something appeared at {row.path!r}; it was not overwritten")
    except (OSError, TrashError) as exc:
        return refuse("move_failed", str(exc), "failed")
    _remove_trashinfo_of(row.trash_path)
    store.journal_set(row.row_id, "undone", row.trash_path)
    return Outcome(row.path, "restored", trash_path=row.trash_path)


def history(store: Store, limit: int | None = 20) -> list[BatchRow]:
    """Batches for an undo menu, newest first. A batch can be undone while
    ``states.get('done')`` is non-zero."""
    return store.batches(limit)

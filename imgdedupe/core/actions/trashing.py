"""Safe deletion: plan, move to a trash, journal, recover, undo.

Nothing here deletes a file: "delete" means a move to a trash backend
(see ``actions.trash_backends``), recorded in the database before and after the move,
so every move can be undone and a crash never hides where a file went.
Each file is checked against what the scan saw just before it moves, and
a group never loses its last copy: that rule is enforced here on disk, not
only in the window.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from imgdedupe.core.actions.trash_backends import (
    CrossDeviceError,
    FolderTrash,
    FreedesktopTrash,
    ReservingBackend,
    TrashBackend,
    TrashError,
    default_trash,
    move_no_replace,
)
from imgdedupe.core.errors import DecodeError, ImgDedupeError, cancelled
from imgdedupe.core.files.hashing import content_hash
from imgdedupe.core.records import FileLike
from imgdedupe.core.storage.store import BatchRow, JournalRow, Store
from imgdedupe.core.units import human_size

__all__ = [
    "ActionError", "UnsafeActionError", "SeenFile", "Deletion", "DeletionPlan", "Outcome",
    "BatchResult", "plan_deletions", "trash_files", "recover", "undo", "history",
    "FreedesktopTrash", "FolderTrash", "default_trash",
    "TrashBackend", "TrashError", "CrossDeviceError",
]

log = logging.getLogger(__name__)


class ActionError(ImgDedupeError):
    """A delete, undo or mark request that cannot be carried out."""


class UnsafeActionError(ActionError):
    """The request would remove every copy in a group."""


@dataclass(frozen=True, slots=True)
class SeenFile:
    """What the scan saw of a file. A ``records.Member`` works too."""

    path: str
    size: int
    mtime_ns: int
    content_hash: str | None = None  # checked before the move when known


def _seen(item: FileLike) -> SeenFile:
    if isinstance(item, SeenFile):
        return item
    return SeenFile(item.path, item.size, item.mtime_ns, getattr(item, "content_hash", None))


Status = Literal["moved", "refused", "failed", "restored"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one file. ``code`` is stable (for tests and JSON),
    ``reason`` a sentence for the user."""

    path: str
    status: Status
    code: str = ""
    reason: str = ""
    trash_path: str | None = None


@dataclass(frozen=True, slots=True)
class Deletion:
    file: SeenFile
    # One tuple per group holding the file: at least one path of each must
    # still be on disk, and be another file, when it moves.
    keepers: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class DeletionPlan:
    deletions: tuple[Deletion, ...]
    refused: tuple[Outcome, ...]  # already refused by the safety rules

    @property
    def files(self) -> int:
        return len(self.deletions)

    @property
    def total_bytes(self) -> int:
        return sum(d.file.size for d in self.deletions)

    def summary(self) -> str:
        """One line for the confirmation dialog."""
        text = (f"Move {self.files} file{'s' if self.files != 1 else ''} "
                f"({human_size(self.total_bytes)}) to the trash")
        if self.refused:
            text += f"; {len(self.refused)} marked file(s) will be kept (see the reasons)"
        return text


@dataclass(frozen=True)
class BatchResult:
    batch_id: int | None  # None when nothing was attempted
    outcomes: tuple[Outcome, ...]

    def with_status(self, status: Status) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]


# -- planning ---------------------------------------------------------------
def plan_deletions(groups: Iterable[object], marked_paths: Collection[str]) -> DeletionPlan:
    """Check a deletion request against the groups on show.

    ``groups``: ``records.Group`` objects or sequences of SeenFile-like
    members. Raises UnsafeActionError if any group would lose every member.
    Files that are the same file as a kept copy (hard link, bind mount,
    symlinked keeper), or whose group has no kept copy left on disk, are
    refused in the plan; the rest go into ``deletions``.
    """
    marked = set(marked_paths)
    keepers_of: dict[str, list[tuple[str, ...]]] = {}
    seen_of: dict[str, SeenFile] = {}
    for group in groups:
        members = [_seen(m) for m in getattr(group, "members", group)]  # type: ignore[attr-defined]
        kept = tuple(m.path for m in members if m.path not in marked)
        if not kept:
            raise UnsafeActionError(
                f"every file of the group of {members[0].path!r} is marked for deletion; "
                "keep at least one")
        for m in members:
            if m.path in marked:
                keepers_of.setdefault(m.path, []).append(kept)
                seen_of.setdefault(m.path, m)
    refused: list[Outcome] = []
    deletions: list[Deletion] = []
    for path in sorted(marked):
        if path not in seen_of:
            refused.append(Outcome(path, "refused", "not_in_group",
                                   "it is not in any group on show"))
            continue
        deletion = Deletion(seen_of[path], tuple(keepers_of[path]))
        try:
            here = os.lstat(path)
        except OSError:
            here = None  # the move step refuses it with the precise reason
        problem = _keeper_problem(here, deletion.keepers)
        if problem:
            refused.append(Outcome(path, "refused", *problem))
        else:
            deletions.append(deletion)
    return DeletionPlan(tuple(deletions), tuple(refused))


def _keeper_problem(here: os.stat_result | None,
                    keepers: tuple[tuple[str, ...], ...]) -> tuple[str, str] | None:
    for group_keepers in keepers:
        alive = False
        for keeper in group_keepers:
            try:
                st = os.stat(keeper)  # follows links: a symlinked keeper is its target
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if here is not None and (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino):
                return ("same_file", f"same file as the kept copy {keeper!r} (a hard link or "
                                     "another path to it); moving it would free nothing")
            alive = True
        if not alive:
            return ("keepers_missing", "no kept copy of its group is on disk any more "
                    f"({', '.join(map(repr, group_keepers))}); it may be the last copy")
    return None


# -- moving -----------------------------------------------------------------
def _verify(seen: SeenFile) -> tuple[str, str] | os.stat_result:
    """The file's stat if it is still what the scan saw, else (code, reason)."""
    try:
        st = os.lstat(seen.path)
    except FileNotFoundError:
        return "missing", "the file is no longer there"
    except OSError as exc:
        return "unreadable", f"cannot check the file: {exc.strerror}"
    if stat.S_ISLNK(st.st_mode):
        return "not_regular", "it is now a symbolic link"
    if not stat.S_ISREG(st.st_mode):
        return "not_regular", "it is no longer a regular file"
    if (st.st_size, st.st_mtime_ns) != (seen.size, seen.mtime_ns):
        return "modified", (f"it changed since the scan (size {seen.size} -> {st.st_size}, "
                            f"mtime_ns {seen.mtime_ns} -> {st.st_mtime_ns})")
    if seen.content_hash is not None:
        try:
            digest = content_hash(seen.path)
        except DecodeError as exc:
            return "unreadable", f"cannot read it to check it: {exc.detail}"
        if digest != seen.content_hash:
            return "replaced", "its content is not what the scan saw (it was replaced)"
        again = os.lstat(seen.path)
        if (again.st_ino, again.st_size, again.st_mtime_ns) != (
                st.st_ino, st.st_size, st.st_mtime_ns):
            return "modified", "it changed while it was being checked"
    return st


def trash_files(store: Store, plan: DeletionPlan, trash: TrashBackend | ReservingBackend, *,
                description: str = "", cancel: threading.Event | None = None) -> BatchResult:
    """Move the planned files to ``trash`` after the caller's confirmation.

    Each file is journalled 'pending' before it moves and 'done' (with its
    trash path) or 'failed' after. A file that changed since the scan, or
    whose kept copy is gone, is refused; the rest go on. Database errors
    propagate (the journal must not be skipped).
    """
    outcomes: list[Outcome] = list(plan.refused)
    batch_id: int | None = None
    for deletion in plan.deletions:
        seen = deletion.file
        if seen.content_hash is None:
            # The window's groups carry no hashes, but the scan hashed every
            # file that shares its size (all byte copies): with it, a file
            # replaced by other bytes of the same size and mtime is caught.
            known = store.cached_hash(seen.path, seen.size, seen.mtime_ns)
            if known is not None:
                seen = SeenFile(seen.path, seen.size, seen.mtime_ns, known)
        if cancelled(cancel):
            outcomes.append(Outcome(seen.path, "refused", "cancelled", "cancelled before it moved"))
            continue
        checked = _verify(seen)
        # (os.stat_result is itself a tuple, so test for it, not for tuple.)
        problem = _keeper_problem(checked, deletion.keepers) if isinstance(
            checked, os.stat_result) else checked
        if problem:
            outcomes.append(Outcome(seen.path, "refused", *problem))
            continue
        if batch_id is None:
            batch_id = store.begin_batch(description)
        row = store.journal_pending(batch_id, seen.path, seen.size, seen.mtime_ns,
                                    seen.content_hash)
        outcomes.append(_move_one(store, row, seen.path, trash))
    return BatchResult(batch_id, tuple(outcomes))


def _move_one(store: Store, row: int, path: str,
              trash: TrashBackend | ReservingBackend) -> Outcome:
    try:
        if isinstance(trash, ReservingBackend):
            reservation = trash.reserve(path)
            try:
                store.journal_expect(row, reservation.destination)
            except BaseException:
                reservation.release()
                raise
            destination: str | None = reservation.commit()
        else:
            destination = trash(path)
    except (OSError, TrashError) as exc:
        reason = str(exc) if isinstance(exc, TrashError) else f"{exc.strerror or exc}"
        store.journal_set(row, "failed", reason=reason)
        code = "cross_device" if isinstance(exc, CrossDeviceError) else "move_failed"
        return Outcome(path, "failed", code, reason)
    if destination is None:
        note = "the trash did not say where it put the file"
        store.journal_set(row, "done", reason=note)
        return Outcome(path, "moved", "no_trash_path", note)
    store.journal_set(row, "done", trash_path=destination)
    return Outcome(path, "moved", trash_path=destination)


# -- crash recovery, undo, history ------------------------------------------
def recover(store: Store) -> list[Outcome]:
    """Settle journal rows left 'pending' by a crash; call at start-up.

    Still at its original path: not moved ('failed'). Gone and found where
    the trash said it would go: 'done'. Gone and not found: 'unknown'.
    """
    settled: list[Outcome] = []
    for row in store.journal_rows(states=("pending",)):
        original = _lstat(row.path)
        expected = _lstat(row.expected_path) if row.expected_path else None
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


def _lstat(path: str | None) -> os.stat_result | None:
    if path is None:
        return None
    try:
        return os.lstat(path)
    except OSError:
        return None


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


def undo(store: Store, batch_id: int | None = None) -> BatchResult:
    """Move the files of a batch (default: the newest with files in the
    trash) back to their original paths. Never overwrites anything that now
    sits there; such files stay in the trash, with the reason."""
    recover(store)
    if batch_id is None:
        batch_id = next((b.batch_id for b in store.batches() if b.states.get("done")), None)
        if batch_id is None:
            return BatchResult(None, ())
    outcomes = [_undo_one(store, row) for row in store.journal_rows(batch_id, ("done",))]
    return BatchResult(batch_id, tuple(outcomes))


def _undo_one(store: Store, row: JournalRow) -> Outcome:
    def refuse(code: str, reason: str, status: Status = "refused") -> Outcome:
        store.journal_set(row.row_id, "done", row.trash_path, reason)
        return Outcome(row.path, status, code, reason, row.trash_path)

    if row.trash_path is None:
        return refuse("unknown_place", "imgdedupe does not know where the trash put it; "
                      f"restore {row.path!r} from the system trash")
    there = _lstat(row.trash_path)
    if there is None:
        return refuse("not_in_trash", f"it is no longer in the trash: expected at "
                      f"{row.trash_path!r}")
    if not stat.S_ISREG(there.st_mode) or (there.st_size, there.st_mtime_ns) != (
            row.size, row.mtime_ns):
        return refuse("trash_changed", f"the file at {row.trash_path!r} is not the one moved")
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

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
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from functools import partial
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
from imgdedupe.core.files.walk import outside_library
from imgdedupe.core.records import FileLike
from imgdedupe.core.storage.dblock import ActionLock
from imgdedupe.core.storage.store import BatchRow, JournalRow, Store
from imgdedupe.core.units import human_size

__all__ = [
    "ActionError", "UnsafeActionError", "SeenFile", "Keeper", "Deletion", "DeletionPlan",
    "Outcome", "BatchResult", "plan_deletions", "trash_files", "recover", "undo", "history",
    "FreedesktopTrash", "FolderTrash", "default_trash", "TrashBackend", "TrashError",
    "CrossDeviceError"]

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
class Keeper:
    """A copy a group keeps, as the scan saw it. ``same_bytes``: a byte
    copy of the file to be moved (the same copy set), so its content must
    hash like that file's."""

    file: SeenFile
    same_bytes: bool = False


@dataclass(frozen=True, slots=True)
class Deletion:
    file: SeenFile
    # One tuple per group holding the file: each group must still have a
    # keeper on disk, unchanged since the scan, in the library (not in a
    # trash, hidden or system folder) and not the same file, when it moves;
    # and no keeper of the group may have changed.
    keepers: tuple[tuple[Keeper, ...], ...]


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
    symlinked keeper), or whose group has no kept copy left in the
    library, are refused in the plan; the rest go into ``deletions``. Every
    group of a file is checked, not only the first.
    """
    marked = set(marked_paths)
    keepers_of: dict[str, list[tuple[Keeper, ...]]] = {}
    seen_of: dict[str, SeenFile] = {}
    for group in groups:
        raw: list[FileLike] = list(getattr(group, "members", group))  # type: ignore[call-overload]
        members = [_seen(m) for m in raw]
        copy_sets = [getattr(m, "copy_set", None) for m in raw]
        if not any(m.path not in marked for m in members):
            raise UnsafeActionError(
                f"every file of the group of {members[0].path!r} is marked for deletion; "
                "keep at least one")
        for m, copy_set in zip(members, copy_sets, strict=True):
            if m.path not in marked:
                continue
            kept = tuple(Keeper(k, copy_set is not None and other == copy_set)
                         for k, other in zip(members, copy_sets, strict=True)
                         if k.path not in marked)
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
        problem = _keeper_problem(here, path, deletion.keepers)
        if problem:
            refused.append(Outcome(path, "refused", *problem))
        else:
            deletions.append(deletion)
    return DeletionPlan(tuple(deletions), tuple(refused))


def _keeper_problem(here: os.stat_result | None, path: str,
                    keepers: tuple[tuple[Keeper, ...], ...],
                    checked: Callable[[Keeper], tuple[str, str] | os.stat_result] | None = None
                    ) -> tuple[str, str] | None:
    """Why ``path`` (lstat ``here``) may not move for want of a keeper, or
    None. ``checked``: a keeper's state now (os.stat_result, or (code,
    reason) when it changed since the scan); by default only its existence
    is looked at (planning)."""
    for group_keepers in keepers:
        alive = False
        why_not: list[str] = []
        for keeper in group_keepers:
            name = keeper.file.path
            if checked is not None:
                state = checked(keeper)
                if not isinstance(state, os.stat_result):
                    code, reason = state
                    if code != "missing":  # a changed keeper stops its whole group
                        return ("keeper_changed", f"its kept copy {name!r} changed since the "
                                f"scan ({reason}); nothing of that group was moved")
                    why_not.append(f"{name!r}: {reason}")
                    continue
            try:
                st = os.stat(name)  # follows links: a symlinked keeper is its target
            except OSError:
                why_not.append(f"{name!r}: not on disk")
                continue
            if not stat.S_ISREG(st.st_mode):
                why_not.append(f"{name!r}: not a regular file")
                continue
            if here is not None and (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino):
                return ("same_file", f"same file as the kept copy {name!r} (a hard link or "
                                     "another path to it); moving it would free nothing")
            outside = outside_library(name, path)
            if outside:
                why_not.append(f"{name!r}: {outside}")
                continue
            alive = True
        if not alive:
            return ("keepers_missing", "no kept copy of its group is left in the library ("
                    f"{'; '.join(why_not)}); it may be the last copy")
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
                description: str = "", cancel: threading.Event | None = None,
                lock_wait_s: float | None = None) -> BatchResult:
    """Move the planned files to ``trash`` after the caller's confirmation.

    One writer per library: the batch holds the database's action lock
    (storage.dblock.ActionLock), so a second process trashing or undoing
    waits, then refuses with a sentence. Each file is journalled 'pending'
    before it moves and 'done' (with its trash path) or 'failed' after. A
    file that changed since the scan, or whose group has no unchanged
    keeper in the library (or any keeper that changed), is refused; the
    rest go on. Database errors propagate (the journal must not be skipped).
    """
    with ActionLock(store.path, lock_wait_s):
        return _trash_files(store, plan, trash, description, cancel)


def _trash_files(store: Store, plan: DeletionPlan, trash: TrashBackend | ReservingBackend,
                 description: str, cancel: threading.Event | None) -> BatchResult:
    outcomes: list[Outcome] = list(plan.refused)
    batch_id: int | None = None
    keepers = _KeeperCheck(store)
    for deletion in plan.deletions:
        seen = _with_cached_hash(store, deletion.file)
        if cancelled(cancel):
            outcomes.append(Outcome(seen.path, "refused", "cancelled", "cancelled before it moved"))
            continue
        checked = _verify(seen)
        if isinstance(checked, os.stat_result):  # (itself a tuple: test for it first)
            problem = _keeper_problem(checked, seen.path, deletion.keepers,
                                      partial(keepers.state, moving=seen))
        else:
            problem = checked
        if problem:
            outcomes.append(Outcome(seen.path, "refused", *problem))
            continue
        if batch_id is None:
            batch_id = store.begin_batch(description)
        row = store.journal_pending(batch_id, seen.path, seen.size, seen.mtime_ns,
                                    seen.content_hash)
        outcomes.append(_move_one(store, row, seen.path, trash))
    return BatchResult(batch_id, tuple(outcomes))


def _with_cached_hash(store: Store, seen: SeenFile) -> SeenFile:
    """With the hash the scan made of files sharing a size (all byte copies),
    a file replaced by other bytes of the same size and mtime is caught."""
    if seen.content_hash is not None:
        return seen
    known = store.cached_hash(seen.path, seen.size, seen.mtime_ns)
    return seen if known is None else SeenFile(seen.path, seen.size, seen.mtime_ns, known)


class _KeeperCheck:
    """Each keeper checked against the scan once per batch (size, mtime and
    content hash: the cached one, or for a byte copy of the file to move,
    that file's), then only its stat again before each later move."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._verified: dict[str, os.stat_result] = {}

    def state(self, keeper: Keeper, moving: SeenFile) -> tuple[str, str] | os.stat_result:
        path = keeper.file.path
        before = self._verified.get(path)
        if before is not None:
            now = _lstat(path)
            if now is not None and (now.st_ino, now.st_size, now.st_mtime_ns) == (
                    before.st_ino, before.st_size, before.st_mtime_ns):
                return now
        seen = _with_cached_hash(self._store, keeper.file)
        if seen.content_hash is None and keeper.same_bytes:
            seen = SeenFile(seen.path, seen.size, seen.mtime_ns, moving.content_hash)
        if seen.content_hash is None and keeper.same_bytes:  # its twin's bytes, as checked
            try:
                seen = SeenFile(seen.path, seen.size, seen.mtime_ns, content_hash(moving.path))
            except DecodeError as exc:
                return "unreadable", f"cannot read {moving.path!r} to compare: {exc.detail}"
        state = _verify(seen)
        if isinstance(state, os.stat_result):
            self._verified[path] = state
        return state


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
    there = _lstat(row.trash_path)
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
    there = _lstat(row.trash_path)
    if there is None:
        back = _lstat(row.path)
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

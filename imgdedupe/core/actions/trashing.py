"""Safe deletion: plan, move to a trash, journal; recover and undo are in
actions.undoing (and importable from here).

Nothing here deletes a file: "delete" means a move to a trash backend
(see ``actions.trash_backends``), recorded in the database before and after the move,
so every move can be undone and a crash never hides where a file went.
Each file is checked against what the scan saw just before it moves, and
a group never loses its last copy: that rule is enforced here on disk, not
only in the window. A photo's companion files (files.companions: its
sidecars, its RAW, its Live Photo video) move right after it, as rows of
the same journalled batch, so one undo puts them all back.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from functools import partial

from imgdedupe.core.actions.outcomes import BatchResult, Outcome, Status, lstat_or_none
from imgdedupe.core.actions.trash_backends import (
    CrossDeviceError,
    FolderTrash,
    FreedesktopTrash,
    ReservingBackend,
    TrashBackend,
    TrashError,
    default_trash,
)
from imgdedupe.core.actions.undoing import history, recover, undo
from imgdedupe.core.errors import DecodeError, ImgDedupeError, cancelled
from imgdedupe.core.files.hashing import content_hash
from imgdedupe.core.files.walk import outside_library
from imgdedupe.core.records import FileLike
from imgdedupe.core.storage.dblock import ActionLock
from imgdedupe.core.storage.store import Store
from imgdedupe.core.units import human_size

__all__ = [
    "ActionError", "UnsafeActionError", "SeenFile", "Keeper", "Deletion", "DeletionPlan",
    "Outcome", "BatchResult", "Status", "plan_deletions", "trash_files",
    "recover", "undo", "history",  # from actions.undoing
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
    # Its companion files (files.companions), as the scan saw them: they
    # move right after it, in the same batch, and only if it moved.
    companions: tuple[SeenFile, ...] = ()


@dataclass(frozen=True)
class DeletionPlan:
    deletions: tuple[Deletion, ...]
    refused: tuple[Outcome, ...]  # already refused by the safety rules

    @property
    def files(self) -> int:
        """The marked photos to move (their companions not counted)."""
        return len(self.deletions)

    @property
    def companion_files(self) -> int:
        return sum(len(d.companions) for d in self.deletions)

    @property
    def total_bytes(self) -> int:
        """What the move frees: the photos and their companions."""
        return sum(d.file.size + sum(c.size for c in d.companions) for d in self.deletions)

    def summary(self) -> str:
        """One line for the confirmation dialog."""
        extra = self.companion_files
        also = f" and {extra} companion file{'s' if extra != 1 else ''}" if extra else ""
        text = (f"Move {self.files} file{'s' if self.files != 1 else ''}{also} "
                f"({human_size(self.total_bytes)}) to the trash")
        if self.refused:
            text += f"; {len(self.refused)} marked file(s) will be kept (see the reasons)"
        return text


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
    companions_of: dict[str, tuple[SeenFile, ...]] = {}
    for group in groups:
        raw: list[FileLike] = list(getattr(group, "members", group))  # type: ignore[call-overload]
        members = [_seen(m) for m in raw]
        copy_sets = [getattr(m, "copy_set", None) for m in raw]
        if not any(m.path not in marked for m in members):
            raise UnsafeActionError(
                f"every file of the group of {members[0].path!r} is marked for deletion; "
                "keep at least one")
        for m, copy_set, item in zip(members, copy_sets, raw, strict=True):
            if m.path not in marked:
                continue
            companions = getattr(item, "companions", ())
            if companions:
                companions_of[m.path] = tuple(_seen(c) for c in companions)
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
        deletion = Deletion(seen_of[path], tuple(keepers_of[path]),
                            companions_of.get(path, ()))
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
    rest go on. A moved photo's companions follow it, each journalled the
    same way; one that changed or vanished stays and is reported as
    ``companion_modified``, ``companion_missing``... Database errors
    propagate (the journal must not be skipped).
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
        outcome = _move_one(store, row, seen.path, trash)
        outcomes.append(outcome)
        if outcome.status == "moved":
            outcomes += _move_companions(store, batch_id, seen.path, deletion.companions, trash)
    return BatchResult(batch_id, tuple(outcomes))


def _move_companions(store: Store, batch_id: int, photo: str, companions: tuple[SeenFile, ...],
                     trash: TrashBackend | ReservingBackend) -> list[Outcome]:
    """Move a moved photo's companions, each journalled like the photo. One
    that vanished or changed since the scan stays (a changed sidecar may
    hold edits made since) and is reported; the others still move."""
    outcomes = []
    for companion in companions:
        checked = _verify(companion)
        if not isinstance(checked, os.stat_result):
            code, reason = checked
            outcomes.append(Outcome(companion.path, "refused", f"companion_{code}",
                                    f"companion of {photo!r}, left in place: {reason}"))
            continue
        row = store.journal_pending(batch_id, companion.path, companion.size,
                                    companion.mtime_ns, None)
        outcomes.append(_move_one(store, row, companion.path, trash))
    return outcomes


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
            now = lstat_or_none(path)
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

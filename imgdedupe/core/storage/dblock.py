"""One scan per cache database at a time, across processes.

Why a lock file and not SQLite's own locking alone: SQLite locks for one
transaction (a batch of 500 rows), so two scans of one database would
interleave. Neither corrupts the file, but each would embed the same
photos again, and a scan reads the cache's rows and writes its changes in
separate transactions, so the other scan's rows can change in between.
An advisory lock held for the whole scan makes the second instance wait a
few seconds (a scan just cancelled is still closing) and then fail with a
clear "in use" error instead. The operating system drops the lock when its
process dies, so a crashed scan never leaves a stale lock behind, and the
lock file itself is never deleted: deleting it would let a third process
lock a new file while the second still holds the old one.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from imgdedupe.core.errors import DatabaseError

log = logging.getLogger(__name__)

LOCK_WAIT_S = 5.0  # how long a second scan waits before it gives up
_POLL_S = 0.1

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def lock_path(db_path: str | os.PathLike) -> str:
    return os.fspath(db_path) + ".lock"


class ScanLock:
    """Held while a scan writes to one database; see the module docstring."""

    def __init__(self, db_path: str | os.PathLike, wait_s: float | None = None) -> None:
        self._hold(lock_path(db_path), LOCK_WAIT_S if wait_s is None else wait_s,
                   f"the database {os.fspath(db_path)} is in use by another imgdedupe scan"
                   "{holder}; wait for it to finish, or choose another --db")

    def _hold(self, path: str, wait: float, busy: str) -> None:
        self.path = path
        try:
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DatabaseError(f"cannot create the lock file {self.path}: "
                                f"{exc.strerror or exc}") from exc
        deadline = time.monotonic() + wait
        while not _try_lock(self._fd):
            if time.monotonic() >= deadline:
                holder = self._holder()
                os.close(self._fd)
                self._fd = None
                raise DatabaseError(busy.replace(
                    "{holder}", f" (process {holder})" if holder else ""))
            time.sleep(_POLL_S)
        try:  # who holds it, for the other instance's message; only a hint
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)
            os.write(self._fd, f"{os.getpid()}\n".encode())
        except OSError as exc:  # a full disk must not stop a scan that can read
            log.debug("cannot write the pid into %s: %s", self.path, exc)

    def _holder(self) -> str:
        try:
            assert self._fd is not None
            os.lseek(self._fd, 0, os.SEEK_SET)
            return os.read(self._fd, 32).decode("ascii", "replace").strip()
        except OSError:
            return ""

    def release(self) -> None:
        if self._fd is not None:
            try:
                _unlock(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> ScanLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


ACTION_WAIT_S = 10.0  # a batch of moves is seconds long; then the second one refuses


class ActionLock(ScanLock):
    """One writer per library for moves to the trash and undo, across
    processes (two windows, a window and a command): held for a whole
    batch, so the second process sees the first one's moves before it
    checks its own keepers, and two undos never restore from one journal
    at once. A lock file of its own: a scan may run beside a move."""

    def __init__(self, db_path: str | os.PathLike, wait_s: float | None = None) -> None:
        self._hold(os.fspath(db_path) + ".actions.lock",
                   ACTION_WAIT_S if wait_s is None else wait_s,
                   "another imgdedupe{holder} is moving files of this library to the trash or "
                   "back; nothing was moved: try again when it has finished")

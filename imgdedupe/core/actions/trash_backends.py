"""Trash backends: move a file out of the way, never delete it.

Every backend returns the exact path the file now has, so undo can move it
back. Moves are renames on one filesystem that never overwrite: a copy
followed by a delete could lose the photo half-way, so a move to another
filesystem is refused instead.

Backends that can name the destination *before* moving offer
``reserve(path)``; the action layer journals that name first, so after a
crash ``recover()`` knows exactly where to look.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import re
import stat
import sys
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable
from urllib.parse import quote, unquote_to_bytes

from imgdedupe.core.errors import ImgDedupeError

log = logging.getLogger(__name__)

FOLDER_TRASH_NAME = "imgdedupe-trash"  # walk.SYSTEM_DIR_NAMES skips it
_NAME_MAX = 255  # bytes, on every filesystem a trash lives on in practice


class TrashError(ImgDedupeError):
    """A file could not be moved to a trash; it was left where it was."""


class CrossDeviceError(TrashError):
    """Source and destination are on different filesystems."""


class TrashBackend(Protocol):
    """Anything that moves one file to a trash and says where it went (None
    when it cannot tell, as some platform trashes cannot)."""

    def __call__(self, path: str) -> str | None: ...


class Reservation(Protocol):
    destination: str

    def commit(self) -> str:
        """Claim the name and move; returns the destination. Releases itself
        on failure."""
        ...

    def release(self) -> None:
        """Give the reserved name back without moving anything."""
        ...


@runtime_checkable
class ReservingBackend(Protocol):
    def reserve(self, path: str) -> Reservation: ...


# -- no-overwrite rename ----------------------------------------------------
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _load_renameat2() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # musl or an old glibc
        return None


_renameat2 = _load_renameat2()


def _cross_device(src: str, dst: str) -> CrossDeviceError:
    return CrossDeviceError(
        f"{src!r} and {dst!r} are on different filesystems; imgdedupe only moves files "
        "within one filesystem and never copies then deletes")


def move_no_replace(src: str, dst: str) -> None:
    """Rename ``src`` to ``dst``. Raises FileExistsError rather than
    overwrite ``dst``, and CrossDeviceError across filesystems."""
    if _renameat2 is not None:
        # renameat2(RENAME_NOREPLACE) checks and renames atomically.
        if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst),
                      _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EXDEV:
            raise _cross_device(src, dst)
        if err not in (errno.ENOSYS, errno.EINVAL):  # EINVAL: the fs lacks the flag
            raise OSError(err, os.strerror(err), src, None, dst)
    # Check, then rename: only another process racing us in between could
    # be overwritten, and nothing we own writes there.
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise _cross_device(src, dst) from exc
        raise


# -- helpers ----------------------------------------------------------------
def mount_point(path: str) -> str:
    """The top of the mount holding ``path`` (a file or folder). On Linux
    from the kernel's mount table, which also knows bind mounts (one
    filesystem mounted twice: a rename between them fails like one
    between two filesystems); elsewhere where the device number changes."""
    path = os.path.abspath(path)
    mounts = _linux_mount_points()
    if mounts:
        best = max((m for m in mounts if _is_below(path, m) or path == m), key=len,
                   default=None)
        if best is not None:
            return best
    dev = os.lstat(path).st_dev
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return path
        try:
            if os.lstat(parent).st_dev != dev:
                return path
        except OSError:
            return path
        path = parent


def _linux_mount_points() -> list[str]:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
            lines = table.read().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4:  # field 5: the mount point, octal-escaped (\040 a space)
            points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                                 fields[4]))
    return points


def real_location(path: str) -> str:
    """``path`` with its folders' symbolic links resolved (the file itself
    is not followed: a link is moved as a link). A library reached through
    a link to another filesystem (~/Pictures -> /mnt/data/Pictures) then
    finds the trash of the filesystem the file is really on."""
    path = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def _existing_ancestor(path: str) -> str:
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _numbered(name: str, n: int, reserve_bytes: int = 0) -> str:
    """``photo.jpg`` -> ``photo.2.jpg``, shortened to fit the name limit
    (with ``reserve_bytes`` left for a suffix such as ``.trashinfo``)."""
    stem, ext = os.path.splitext(name)
    if not stem:  # ".hidden": splitext sees no extension
        stem, ext = ext, ""
    tail = (f".{n}" if n > 1 else "") + ext
    while stem and len(os.fsencode(stem + tail)) + reserve_bytes > _NAME_MAX:
        stem = stem[:-1]
    return stem + tail


def _is_below(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _make_private_dir(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise TrashError(f"{path!r} is not a folder")


class _MoveReservation:
    def __init__(self, source: str, destination: str, sidecar: str | None = None,
                 sidecar_content: bytes = b"") -> None:
        self.source = source
        self.destination = destination
        self.sidecar = sidecar  # the .trashinfo to write just before the move
        self._sidecar_content = sidecar_content
        self._claimed = False

    def commit(self) -> str:
        if self.sidecar is not None:
            self._claim(self.sidecar)
        try:
            move_no_replace(self.source, self.destination)
        except BaseException:
            self.release()
            raise
        return self.destination

    def _claim(self, sidecar: str) -> None:
        # The name is claimed here, not in reserve(): the caller journals
        # the destination in between, so a crash at any point leaves no
        # .trashinfo that the journal does not name (recover() removes it
        # when the file never moved), and no ghost entry in the trash.
        try:
            # O_EXCL on the info file is the spec's way to claim a name.
            fd = os.open(sidecar, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise TrashError(f"another program took the trash name {self.destination!r} "
                             "meanwhile; the file was not moved (try again)") from None
        self._claimed = True
        try:
            os.write(fd, self._sidecar_content)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            self.release()
            raise
        os.close(fd)

    def release(self) -> None:
        if self.sidecar is not None and self._claimed:
            self._claimed = False
            try:
                os.unlink(self.sidecar)
            except FileNotFoundError:
                pass


# -- freedesktop.org trash --------------------------------------------------
def trashinfo_for(trash_path: str) -> str | None:
    """The .trashinfo file beside a file in a freedesktop trash, if any."""
    files_dir, name = os.path.split(trash_path)
    if os.path.basename(files_dir) != "files":
        return None
    info = os.path.join(os.path.dirname(files_dir), "info", name + ".trashinfo")
    return info if os.path.isfile(info) else None


def read_trashinfo(info_path: str) -> tuple[str, str]:
    """(Path as written, decoded; DeletionDate) of a .trashinfo file."""
    values: dict[str, str] = {}
    with open(info_path, encoding="ascii") as handle:
        for line in handle:
            key, sep, value = line.rstrip("\n").partition("=")
            if sep:
                values.setdefault(key, value)
    return os.fsdecode(unquote_to_bytes(values["Path"])), values["DeletionDate"]


class FreedesktopTrash:
    """The freedesktop.org Trash specification (Linux and BSD desktops).

    Files on the home trash's filesystem go to ``$XDG_DATA_HOME/Trash``;
    others to ``$topdir/.Trash/$uid`` or ``$topdir/.Trash-$uid`` on their own
    filesystem. When neither works, ``fallback`` (if given) takes the file.
    """

    def __init__(self, data_home: str | None = None, *,
                 fallback: ReservingBackend | None = None) -> None:
        self._data_home = data_home  # None: read $XDG_DATA_HOME on each call
        self.fallback = fallback

    @property
    def home_trash(self) -> str:
        base = self._data_home or os.environ.get("XDG_DATA_HOME", "")
        if not os.path.isabs(base):  # the spec says to ignore a relative value
            base = os.path.join(os.path.expanduser("~"), ".local", "share")
        return os.path.join(base, "Trash")

    def __call__(self, path: str) -> str:
        return self.reserve(path).commit()

    def reserve(self, path: str) -> Reservation:
        path = real_location(path)
        dev = os.lstat(path).st_dev
        try:
            trash_dir, written_path = self._trash_for(path, dev)
            files_dir = os.path.join(trash_dir, "files")
            info_dir = os.path.join(trash_dir, "info")
            for folder in (trash_dir, files_dir, info_dir):  # makedirs' mode is the leaf's only
                _make_private_dir(folder)
            if os.lstat(files_dir).st_dev != dev:
                raise _cross_device(path, files_dir)
        except (OSError, TrashError) as exc:
            if self.fallback is not None:
                log.info("no freedesktop trash for %s (%s); using %r", path, exc, self.fallback)
                return self.fallback.reserve(path)
            raise TrashError(f"no usable trash on the filesystem of {path!r}: {exc}") from exc
        content = ("[Trash Info]\n"
                   f"Path={quote(os.fsencode(written_path), safe='/')}\n"
                   f"DeletionDate={time.strftime('%Y-%m-%dT%H:%M:%S')}\n").encode("ascii")
        name = os.path.basename(path)
        for n in range(1, 10_000):
            candidate = _numbered(name, n, len(".trashinfo"))
            info = os.path.join(info_dir, candidate + ".trashinfo")
            if os.path.lexists(os.path.join(files_dir, candidate)) or os.path.lexists(info):
                continue
            return _MoveReservation(path, os.path.join(files_dir, candidate), info, content)
        raise TrashError(f"no free name for {name!r} in {files_dir!r}")

    def _home_device(self) -> int:
        # The home trash may not exist yet: its nearest existing folder
        # tells which filesystem it will be on.
        return os.stat(_existing_ancestor(self.home_trash)).st_dev

    def _trash_for(self, path: str, dev: int) -> tuple[str, str]:
        """(trash folder, the Path= value) for a file on device ``dev``."""
        home = self.home_trash
        top = mount_point(path)
        if self._home_device() == dev and mount_point(_existing_ancestor(home)) == top:
            return home, path
        uid = os.getuid()
        shared = os.path.join(top, ".Trash")
        try:
            st = os.lstat(shared)
            # The spec: use .Trash only if it is a real sticky folder.
            if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
                return os.path.join(shared, str(uid)), os.path.relpath(path, top)
        except FileNotFoundError:
            pass
        own = os.path.join(top, f".Trash-{uid}")
        if os.path.lexists(own):
            st = os.lstat(own)
            if stat.S_ISLNK(st.st_mode) or st.st_uid != uid:
                raise PermissionError(errno.EACCES, "not a folder owned by this user", own)
        return own, os.path.relpath(path, top)

    def __repr__(self) -> str:
        return f"FreedesktopTrash({self.home_trash!r})"


# -- fallback: a plain folder -----------------------------------------------
class FolderTrash:
    """For platforms without a trash: ``imgdedupe-trash`` at the top of the
    file's filesystem, or beside ``root`` when the top is not writable,
    keeping the file's path below that folder. Emptying it is up to the user.
    """

    def __init__(self, root: str | None = None) -> None:
        self.root = os.path.abspath(root) if root else None

    def __call__(self, path: str) -> str:
        return self.reserve(path).commit()

    def _writable(self, base: str) -> bool:
        trash = os.path.join(base, FOLDER_TRASH_NAME)
        if os.path.lexists(trash):
            return (os.path.isdir(trash) and not os.path.islink(trash)
                    and os.access(trash, os.W_OK | os.X_OK))
        return os.access(base, os.W_OK | os.X_OK)

    def base_for(self, path: str) -> str:
        """The folder whose ``imgdedupe-trash`` takes ``path``."""
        dev = os.lstat(path).st_dev
        # The top of the filesystem first; then beside the library's root;
        # then the file's own folder, which a bind mount or a read-only top
        # still leaves writable on the same filesystem.
        candidates = [mount_point(path)]
        if self.root is not None:
            candidates.append(os.path.dirname(real_location(self.root)))
        candidates.append(os.path.dirname(path))
        for base in candidates:
            if (_is_below(path, base) and os.lstat(base).st_dev == dev
                    and self._writable(base)):
                return base
        raise TrashError(f"no writable place for {FOLDER_TRASH_NAME!r} on the filesystem of "
                         f"{path!r} (tried {', '.join(map(repr, candidates))})")

    def reserve(self, path: str) -> Reservation:
        path = real_location(path)
        base = self.base_for(path)
        relative = os.path.relpath(path, base)
        folder = os.path.join(base, FOLDER_TRASH_NAME, os.path.dirname(relative))
        os.makedirs(folder, exist_ok=True)
        name = os.path.basename(path)
        for n in range(1, 10_000):
            candidate = os.path.join(folder, _numbered(name, n))
            if not os.path.lexists(candidate):
                return _MoveReservation(path, candidate)
        raise TrashError(f"no free name for {name!r} in {folder!r}")

    def __repr__(self) -> str:
        return f"FolderTrash(root={self.root!r})"


def default_trash(root: str | None = None) -> ReservingBackend:
    """The freedesktop trash where the platform has one, else FolderTrash.
    (The window passes Qt's ``QFile.moveToTrash`` instead on every platform.)"""
    if sys.platform in ("win32", "darwin"):
        return FolderTrash(root)
    return FreedesktopTrash(fallback=FolderTrash(root))

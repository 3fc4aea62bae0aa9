"""Find image files under the folders the user chose.

The walk is the safety boundary of the whole program: everything it yields
may later be moved to the trash, so it never yields a file whose real
location is outside the roots, even when a symlink points there.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter

from imgdedupe.core.errors import cancelled, os_error_reason
from imgdedupe.core.records import ErrorReason, FileError, ImageFile

logger = logging.getLogger(__name__)

# Camera RAW files, decoded by LibRaw (images.raw), not Pillow.
RAW_EXTENSIONS = frozenset({".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf", ".orf", ".rw2"})
IMAGE_EXTENSIONS = RAW_EXTENSIONS | frozenset(
    {
        ".jpg",
        ".jpeg",
        ".png",
        ".webp",
        ".gif",
        ".bmp",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".avif",
    }
)

# Folders that hold thumbnails, trash or OS bookkeeping. They are skipped even
# with include_hidden: their contents are copies of the user's photos (NAS
# thumbnail caches, the recycle bin) and would flood the results with
# "duplicates" the user must not be asked to delete. A root the user names
# explicitly is never skipped.
SYSTEM_DIR_NAMES = frozenset(
    {
        "$recycle.bin",
        "system volume information",
        "lost+found",
        "@eadir",
        ".thumbnails",
        "__macosx",
        "imgdedupe-trash",  # actions.trash_backends.FolderTrash: our own moved-away files
    }
)

# Only Windows fills st_file_attributes; probing it elsewhere would cost an
# lstat per entry for nothing.
_HAS_FILE_ATTRIBUTES = sys.platform == "win32"
_HIDDEN_ATTRIBUTES = stat.FILE_ATTRIBUTE_HIDDEN | stat.FILE_ATTRIBUTE_SYSTEM


def has_image_extension(name: str) -> bool:
    """True when ``name`` ends with one of IMAGE_EXTENSIONS, in any case."""
    dot = name.rfind(".")
    if dot <= 0 or name[dot:].lower() not in IMAGE_EXTENSIONS:
        return False
    if name[dot - 1] not in _DOT_OR_SEP:
        return True  # what splitext says, without its cost (called per file)
    # ".jpg", "x/.jpg", "..jpg": splitext decides whether that is an extension.
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


_DOT_OR_SEP = frozenset({".", os.sep, os.altsep or os.sep})


def is_system_dir_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in SYSTEM_DIR_NAMES or lowered.startswith(".trash")


def is_desktop_trash(path: str) -> bool:
    """A freedesktop.org trash folder (``~/.local/share/Trash`` is named
    plainly "Trash", and ``--include-hidden`` walks into ``.local``): it
    holds ``files`` and ``info``. Checked only for folders named so."""
    return (os.path.basename(path).lower() == "trash"
            and os.path.isdir(os.path.join(path, "files"))
            and os.path.isdir(os.path.join(path, "info")))


def outside_library(path: str, beside: str) -> str | None:
    """Why a copy at ``path`` does not count as a kept copy of ``beside``
    (it sits in a trash, a hidden or a system folder that ``beside`` is not
    in), or None. A duplicate is moved only while a copy the user can see
    stays in the library; folders both share (a library kept below a
    hidden folder) say nothing."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        shared = os.path.commonpath([folder, os.path.dirname(os.path.abspath(beside))])
    except ValueError:  # two drives on Windows: nothing shared
        shared = ""
    while len(folder) > len(shared):
        name = os.path.basename(folder)
        if is_system_dir_name(name):
            return f"it is in the system or trash folder {name!r}"
        if name[:1] in ("T", "t") and is_desktop_trash(folder):
            return "it is in the desktop's trash"
        if name.startswith("."):
            return f"it is in the hidden folder {name!r}"
        folder = os.path.dirname(folder)
    return None


def _is_hidden(entry: os.DirEntry[str]) -> bool:
    if entry.name.startswith("."):
        return True
    if _HAS_FILE_ATTRIBUTES:
        try:
            # On Windows this comes from the directory listing: no extra call.
            attributes: int = getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0)
        except OSError:
            return False
        return bool(attributes & _HIDDEN_ATTRIBUTES)
    return False


def _path_key(path: str) -> str:
    # normcase makes the comparisons case-insensitive on Windows only.
    return os.path.normcase(path)


_FOLDS_CASE = os.path.normcase("A") != "A"  # Windows


_entry_name = attrgetter("name")


def _is_within(real_key: str, root_keys: Sequence[str]) -> bool:
    """Path-prefix check on normcased real paths: /a/bc is not inside /a/b."""
    for root in root_keys:
        if real_key == root:
            return True
        prefix = root if root.endswith(os.sep) else root + os.sep
        if real_key.startswith(prefix):
            return True
    return False


def _error_from_os(path: str, exc: OSError, what: str) -> FileError:
    return FileError(path, *os_error_reason(exc, what))


@dataclass(frozen=True, slots=True)
class _Dir:
    path: str  # as the user will see it: under the root's spelling
    real: str  # resolved; children's real paths derive from it without a syscall
    ancestors: tuple[tuple[int, int], ...]  # (st_dev, st_ino) chain, for loop detection


@dataclass(frozen=True, slots=True)
class _Link:
    path: str
    name: str
    parent: _Dir


class _Walker:
    def __init__(self, include_hidden: bool, follow_symlinks: bool) -> None:
        self.include_hidden = include_hidden
        self.follow_symlinks = follow_symlinks
        self.root_keys: list[str] = []
        self.visited_dirs: set[tuple[int, int]] = set()
        self.seen_files: set[str] = set()
        self.stack: list[_Dir] = []
        # Symlinks are followed only after every real folder has been walked,
        # so a file reachable both directly and through a link is reported
        # under its real path, whatever the names sort like.
        self.links: deque[_Link] = deque()

    # -- files ---------------------------------------------------------

    def file(self, path: str, real: str, is_link: bool) -> Iterator[ImageFile | FileError]:
        """A root or a linked file; files listed in a folder take listed_file."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            detail = "broken symbolic link" if is_link else "file disappeared during the scan"
            yield FileError(path, ErrorReason.VANISHED, detail)
            return
        except OSError as exc:
            yield _error_from_os(path, exc, "file")
            return
        if not stat.S_ISREG(st.st_mode):
            # A FIFO or device named *.jpg would block or stream forever on read.
            logger.debug("skipping %r: not a regular file", path)
            return
        key = _path_key(real)
        if not _is_within(key, self.root_keys):
            logger.debug("skipping %r: it resolves to %r, outside the roots", path, real)
            return
        if key in self.seen_files:
            logger.debug("skipping %r: %r was already found", path, real)
            return
        self.seen_files.add(key)
        yield ImageFile(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns)

    # -- folders -------------------------------------------------------

    def enter(
        self, path: str, real: str, ancestors: tuple[tuple[int, int], ...]
    ) -> FileError | None:
        """Queue a folder unless it is outside the roots, a loop or already seen."""
        if not _is_within(_path_key(real), self.root_keys):
            logger.debug("skipping folder %r: it resolves to %r, outside the roots", path, real)
            return None
        try:
            st = os.stat(path)
        except OSError as exc:
            return _error_from_os(path, exc, "folder")
        ident = (st.st_dev, st.st_ino)
        if ident in ancestors:
            return FileError(
                path, ErrorReason.SYMLINK_LOOP, f"symbolic link loops back to its ancestor {real}"
            )
        if ident in self.visited_dirs:
            logger.debug("skipping folder %r: %r was already walked", path, real)
            return None
        self.visited_dirs.add(ident)
        self.stack.append(_Dir(path, real, (*ancestors, ident)))
        return None

    def scan_dir(self, folder: _Dir) -> list[ImageFile | FileError]:
        """The folder's files and problems, in name order; subfolders are
        queued. One list per folder, not a generator per file: this is the
        hot loop of a rescan, where every step per file shows (a generator
        frame and a method call per file cost a third of the walk at 100k)."""
        try:
            with os.scandir(folder.path) as it:
                entries = sorted(it, key=_entry_name)
        except OSError as exc:
            return [_error_from_os(folder.path, exc, "folder")]
        found: list[ImageFile | FileError] = []
        real_prefix = os.path.join(folder.real, "")
        subdirs: list[_Dir] = []
        seen_files = self.seen_files
        include_hidden = self.include_hidden
        for entry in entries:
            name = entry.name
            if not include_hidden and (name[0] == "." or _HAS_FILE_ATTRIBUTES
                                       and _is_hidden(entry)):
                continue
            try:
                # A plain file (not a link) answers in one call, from the
                # listing's d_type: the common case takes no second test.
                plain_file = entry.is_file(follow_symlinks=False)
                is_link = not plain_file and entry.is_symlink()
                is_dir = not plain_file and entry.is_dir(follow_symlinks=False)
            except OSError as exc:
                found.append(_error_from_os(entry.path, exc, "entry"))
                continue
            if is_link:
                if self.follow_symlinks:
                    self.links.append(_Link(entry.path, name, folder))
                else:
                    logger.debug("not following symbolic link %r", entry.path)
                continue
            if is_dir:
                if is_system_dir_name(name) or (name[0] in "Tt" and is_desktop_trash(entry.path)):
                    logger.debug("skipping system folder %r", entry.path)
                    continue
                subdirs.append(_Dir(entry.path, os.path.join(folder.real, name), folder.ancestors))
                continue
            # Inline has_image_extension for the usual "name.ext"; names it
            # would look at twice (".jpg", "a..jpg") take the function.
            dot = name.rfind(".")
            if dot <= 0 or name[dot:].lower() not in IMAGE_EXTENSIONS or (
                    name[dot - 1] in _DOT_OR_SEP and not has_image_extension(name)):
                continue
            # The folder passed enter's roots check and a name holds no
            # separator, so the file is inside the roots without checking.
            try:
                st = entry.stat()  # free on Windows; one stat call elsewhere
            except FileNotFoundError:
                found.append(FileError(entry.path, ErrorReason.VANISHED,
                                       "file disappeared during the scan"))
                continue
            except OSError as exc:
                found.append(_error_from_os(entry.path, exc, "file"))
                continue
            if not stat.S_ISREG(st.st_mode):
                logger.debug("skipping %r: not a regular file", entry.path)
                continue
            real = real_prefix + name
            key = _path_key(real) if _FOLDS_CASE else real
            if key in seen_files:
                logger.debug("skipping %r: %r was already found", entry.path, real)
                continue
            seen_files.add(key)
            found.append(ImageFile(entry.path, st.st_size, st.st_mtime_ns))
        # Reversed so the stack pops them in name order: deterministic output.
        for sub in reversed(subdirs):
            error = self.enter(sub.path, sub.real, sub.ancestors)
            if error is not None:
                found.append(error)
        return found

    def follow(self, link: _Link) -> Iterator[ImageFile | FileError]:
        real = os.path.realpath(link.path)
        if os.path.isdir(link.path):
            if is_system_dir_name(link.name):
                return
            error = self.enter(link.path, real, link.parent.ancestors)
            if error is not None:
                yield error
        elif has_image_extension(link.name):
            yield from self.file(link.path, real, is_link=True)

    # -- roots ---------------------------------------------------------

    def root(self, path: str) -> Iterator[ImageFile | FileError]:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            yield FileError(path, ErrorReason.VANISHED, "the folder or file does not exist")
            return
        except OSError as exc:
            yield _error_from_os(path, exc, "root")
            return
        real = os.path.realpath(path)
        if stat.S_ISDIR(st.st_mode):
            error = self.enter(path, real, ())
            if error is not None:
                yield error
        elif stat.S_ISREG(st.st_mode):
            if has_image_extension(path):
                yield from self.file(path, real, is_link=False)
            else:
                yield FileError(
                    path, ErrorReason.UNSUPPORTED, "not an image file name (unknown extension)"
                )
        else:
            yield FileError(path, ErrorReason.IO_ERROR, "neither a regular file nor a folder")


def walk(
    roots: Sequence[str | os.PathLike[str]],
    *,
    include_hidden: bool = False,
    follow_symlinks: bool = True,
    cancel: threading.Event | None = None,
) -> Iterator[ImageFile | FileError]:
    """Yield every image file under ``roots``, once, in a deterministic order.

    Problems (unreadable folders, symlink loops, vanished files, missing
    roots) are yielded as FileError and the walk goes on. A symlink that
    leads back to one of its own ancestor folders is reported once as
    SYMLINK_LOOP; a link to a folder already walked by another route is
    skipped silently. Hidden entries (and, on Windows, entries with the
    hidden or system attribute) are skipped unless ``include_hidden``.
    With ``follow_symlinks=False`` symbolic links are ignored entirely,
    except for the roots themselves. Setting ``cancel`` stops the walk
    quietly at the next folder.
    """
    for batch in walk_batches(roots, include_hidden=include_hidden,
                              follow_symlinks=follow_symlinks, cancel=cancel):
        yield from batch


def walk_batches(
    roots: Sequence[str | os.PathLike[str]],
    *,
    include_hidden: bool = False,
    follow_symlinks: bool = True,
    cancel: threading.Event | None = None,
) -> Iterator[list[ImageFile | FileError]]:
    """``walk``'s items a folder at a time (what a rescan of 100k files
    wants: no per-file step between the walk and its caller)."""
    walker = _Walker(include_hidden, follow_symlinks)
    resolved: list[str] = []
    for raw in roots:
        path = os.path.abspath(os.fsdecode(os.fspath(raw)))
        resolved.append(path)
        if os.path.exists(path):
            walker.root_keys.append(_path_key(os.path.realpath(path)))
    for path in resolved:
        if cancelled(cancel):
            return
        yield list(walker.root(path))
        while walker.stack:
            if cancelled(cancel):
                logger.debug("walk cancelled")
                return
            yield walker.scan_dir(walker.stack.pop())
    # Links last, across all roots, so real paths win over linked ones.
    while walker.stack or walker.links:
        if cancelled(cancel):
            logger.debug("walk cancelled")
            return
        if walker.stack:
            yield walker.scan_dir(walker.stack.pop())
        else:
            yield list(walker.follow(walker.links.popleft()))

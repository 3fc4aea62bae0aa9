"""A scan's distinct contents, stored by column.

A content is one picture's bytes: a file, or several byte-identical
copies. The similarity graph's nodes are contents; ``ContentTable`` keeps
them as columns so that a library of 100k photos costs no Python object
per file until a group asks for one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from imgdedupe.core.records import ImageFile
from imgdedupe.core.storage.store import CachedFile


@dataclass(frozen=True, slots=True)
class Content:
    """One distinct content: its byte-identical files, sorted by path.

    ``digest`` is the BLAKE2b content hash when it is known (always for
    files that have a byte copy, and for anything a "Not duplicates" mark
    may concern); None otherwise, because hashing every file costs a full
    read that matching does not need."""

    files: tuple[ImageFile, ...]
    width: int | None
    height: int | None
    digest: str | None = None


class ContentTable(Sequence[Content]):
    """A graph's contents stored by column, each Content made on demand.

    A rescan of 100k photos puts ~100k contents in its graph (every one in
    a pair above the slider's floor), yet a result reads a few thousand of
    them: building a frozen Content and ImageFile per file took 0.3 s of
    such a rescan. Columns are also what the scan memo (scan.memo)
    saves and loads without a Python object per file. Immutable.
    """

    __slots__ = ("_paths", "_sizes", "_mtimes", "_starts", "_widths", "_heights", "_digests")

    def __init__(self, paths: Sequence[str], sizes: Sequence[int] | np.ndarray,
                 mtimes: Sequence[int] | np.ndarray, starts: Sequence[int] | np.ndarray,
                 widths: Sequence[int | None] | np.ndarray,
                 heights: Sequence[int | None] | np.ndarray,
                 digests: Sequence[str | None]) -> None:
        """Content i's files are ``paths[starts[i]:starts[i + 1]]`` (and
        their sizes and mtimes); ``starts`` has one entry more than there
        are contents. A width or height of None (or -1) and a digest of
        None (or "") are unknown. Numbers are kept as int64 arrays, so a
        memo's columns load without a Python int per file."""
        self._paths, self._digests = paths, digests
        self._sizes, self._mtimes = _int64(sizes), _int64(mtimes)
        self._starts = _int64(starts)
        self._widths, self._heights = _int64(widths), _int64(heights)
        if not (len(paths) == len(self._sizes) == len(self._mtimes) == self._starts[-1]
                and len(self._starts) - 1 == len(self._widths) == len(self._heights)
                == len(digests)):
            raise ValueError("ContentTable columns disagree in length")

    def columns(self) -> tuple[Sequence[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                               np.ndarray, Sequence[str | None]]:
        """Paths, sizes, mtimes, starts, widths, heights (-1: unknown) and
        digests (None or "": unknown), shared, not copied."""
        return (self._paths, self._sizes, self._mtimes, self._starts, self._widths,
                self._heights, self._digests)

    def __len__(self) -> int:
        return len(self._starts) - 1

    @overload
    def __getitem__(self, index: int) -> Content: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Content, ...]: ...

    def __getitem__(self, index: int | slice) -> Content | tuple[Content, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        n = len(self)
        if not -n <= index < n:
            raise IndexError(index)
        index %= n
        first, end = int(self._starts[index]), int(self._starts[index + 1])
        files = tuple(ImageFile(self._paths[j], int(self._sizes[j]), int(self._mtimes[j]))
                      for j in range(first, end))
        width, height = int(self._widths[index]), int(self._heights[index])
        return Content(files, None if width < 0 else width, None if height < 0 else height,
                       self._digests[index] or None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # unhashable, like the lists it holds

    def copied(self) -> Iterator[Content]:
        """The contents with more than one file (byte copies), in order."""
        for i in np.flatnonzero(np.diff(self._starts) > 1).tolist():
            yield self[i]

    def digests(self) -> list[str | None]:
        return [d or None for d in self._digests]

    def with_digests(self, by_path: dict[str, str]) -> ContentTable:
        """A copy whose contents know the given {path: content hash}."""
        digests = self.digests()
        starts = self._starts.tolist()
        for i in range(len(self)):
            for j in range(starts[i], starts[i + 1]):
                if self._paths[j] in by_path:
                    digests[i] = by_path[self._paths[j]]
                    break
        return ContentTable(self._paths, self._sizes, self._mtimes, starts, self._widths,
                            self._heights, digests)


def _int64(values: Sequence[int | None] | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(np.int64, copy=False)
    return np.array([-1 if v is None else v for v in values], dtype=np.int64)



class PixelSizes(dict):
    """Content key -> (width, height): as decoded by this scan (set by the
    embedding step), else as the cache knows it. Looked up on demand: a
    rescan needs the sizes of the grouped files only, not of all 100k."""

    def __init__(self, files_of: Mapping[str, Sequence[CachedFile]]) -> None:
        super().__init__()
        self._files_of = files_of

    def __missing__(self, key: str) -> tuple[int | None, int | None]:
        # Copies share their content's pixel size; any member may know it.
        for c in self._files_of[key]:
            if c.width:
                return c.width, c.height
        return None, None


def content_table(keys: Sequence[str], files_of: Mapping[str, Sequence[CachedFile]],
                  pixel_sizes: PixelSizes, digests: Mapping[str, str]) -> ContentTable:
    """The table of the contents ``keys``, column by column (no object per
    file). ``files_of``: content key -> its byte-identical files, path
    order; ``digests``: content hashes known beyond the keys themselves (a
    key is the content hash, or "id:<file id>" for a file no one hashed)."""
    paths: list[str] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    starts = [0]
    widths: list[int | None] = []
    heights: list[int | None] = []
    decoded = pixel_sizes.get  # sizes this scan decoded; [key] falls back to the cache
    for key in keys:
        files = files_of[key]
        if len(files) == 1:  # the common case, without a call per file
            c = files[0]
            paths.append(c.path)
            sizes.append(c.size)
            mtimes.append(c.mtime_ns)
            width, height = decoded(key) or (c.width, c.height)
        else:
            paths += [c.path for c in files]
            sizes += [c.size for c in files]
            mtimes += [c.mtime_ns for c in files]
            width, height = pixel_sizes[key]
        starts.append(len(paths))
        widths.append(width)
        heights.append(height)
    known = [digests.get(key) or (None if key.startswith("id:") else key) for key in keys]
    return ContentTable(paths, sizes, mtimes, starts, widths, heights, known)

"""The similarity graph of one scan, and the groups it gives at a threshold.

A scan scores candidate pairs once, down to a floor below any threshold
the user can choose, and keeps them here. Regrouping at another threshold
(the window's slider) is then a filter plus the star grouping: no decode,
no model, no index. The scan's own result is made by the same function,
so the command line and the window can never disagree.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, overload

import numpy as np

from imgdedupe.core.groups.keeper import keeper_order_key, suggest_keeper
from imgdedupe.core.groups.stars import greedy_star_groups
from imgdedupe.core.model import calibration
from imgdedupe.core.records import Group, Member

# The lowest similarity the slider offers. Pairs are kept down to here.
FLOOR_SCORE = 70.0


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    size: int
    mtime_ns: int


class FileLike(Protocol):
    """A file as a group member needs it: graph.FileInfo, store.CachedFile."""

    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Content:
    """One distinct content: its byte-identical files, sorted by path.

    ``digest`` is the BLAKE2b content hash when it is known (always for
    files that have a byte copy, and for anything a "Not duplicates" mark
    may concern); None otherwise, because hashing every file costs a full
    read that matching does not need."""

    files: tuple[FileInfo, ...]
    width: int | None
    height: int | None
    digest: str | None = None


class ContentTable(Sequence[Content]):
    """A graph's contents stored by column, each Content made on demand.

    A rescan of 100k photos puts ~100k contents in its graph (every one in
    a pair above the slider's floor), yet a result reads a few thousand of
    them: building a frozen Content and FileInfo per file took 0.3 s of
    such a rescan. Columns are also what the scan memo (core.scan_memo)
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
        files = tuple(FileInfo(self._paths[j], int(self._sizes[j]), int(self._mtimes[j]))
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


@dataclass(frozen=True)
class SimilarityGraph:
    """Immutable: safe to hand from the scan thread to the GUI thread.

    ``pairs`` index ``contents`` (i < j); ``cosines`` are their exact
    rotation-aware scores, all >= the cosine of ``floor_score``."""

    backbone: str
    contents: ContentTable
    pairs: np.ndarray  # (M, 2) integers: int64, or int32 from a scan memo
    cosines: np.ndarray  # (M,) float32
    floor_score: float = FLOOR_SCORE

    def pair_scores(self) -> np.ndarray:
        """Every kept pair's similarity on the 0-100 scale (for a histogram)."""
        return calibration.cosine_to_score(self.backbone, self.cosines)


IgnoreMarks = Iterable[frozenset[str]]  # each: content digests marked "not duplicates"


def groups_at(graph: SimilarityGraph, threshold: float,
              ignored: IgnoreMarks = ()) -> tuple[Group, ...]:
    """Similar groups at ``threshold`` (0-100), then exact-copy groups for
    byte copies no similar group took, in a deterministic order.

    A pair whose two contents share an ignore mark is dropped, so a group
    the user called "Not duplicates" stays apart across rescans."""
    if threshold < graph.floor_score - 1e-9:
        raise ValueError(f"threshold {threshold} is below the scan's floor "
                         f"{graph.floor_score}; rescan to go lower")
    min_cosine = calibration.score_to_cosine(graph.backbone, threshold)
    keep = graph.cosines >= min_cosine
    keep &= _not_ignored(graph, ignored)
    pairs, cosines = graph.pairs[keep], graph.cosines[keep]
    groups = _similar_groups(graph, pairs, cosines, min_cosine)
    grouped = {m.path for g in groups for m in g.members}
    groups += [g for g in exact_groups(graph.contents.copied()) if g.members[0].path not in grouped]
    groups.sort(key=lambda g: (g.members[0].path, g.kind))
    return tuple(groups)


def exact_groups(contents: Iterable[Content]) -> list[Group]:
    """Byte-identical files; copies share their content's pixel size."""
    groups = []
    for content in contents:
        if len(content.files) > 1:
            members = tuple(_member(f, 100.0, 0, content) for f in content.files)
            groups.append(Group("exact", members, suggest_keeper(members)))
    groups.sort(key=lambda g: g.members[0].path)
    return groups


def _not_ignored(graph: SimilarityGraph, ignored: IgnoreMarks) -> np.ndarray:
    keep = np.ones(len(graph.pairs), dtype=bool)
    marks_of: dict[str, set[int]] = {}
    for n, mark in enumerate(ignored):
        for digest in mark:
            marks_of.setdefault(digest, set()).add(n)
    if not marks_of:
        return keep
    digests = graph.contents.digests()
    for row, (a, b) in enumerate(graph.pairs.tolist()):
        marks_a = marks_of.get(digests[a] or "")
        if marks_a and marks_a & marks_of.get(digests[b] or "", set()):
            keep[row] = False
    return keep


def _member(f: FileInfo, similarity: float, copy_set: int | None, content: Content) -> Member:
    return Member(f.path, round(float(similarity), 2), copy_set, f.size, content.width,
                  content.height, f.mtime_ns)


def _similar_groups(graph: SimilarityGraph, pairs: np.ndarray, cosines: np.ndarray,
                    min_cosine: float) -> list[Group]:
    contents = graph.contents

    def tie_break(node: int) -> tuple:
        first = contents[node].files[0]
        return keeper_order_key(_member(first, 0, None, contents[node]))

    stars = greedy_star_groups(len(contents), pairs, cosines, min_cosine, tie_break)
    # One interpolation for all members, not one numpy call each.
    linked_cosines = [cosine for _, linked in stars for _, cosine in linked]
    score_of = dict(zip(linked_cosines, calibration.cosine_to_score(
        graph.backbone, np.asarray(linked_cosines)).tolist(), strict=True))
    groups = []
    for reference, linked in stars:
        members = star_members(
            (contents[node].files, 100.0 if node == reference else score_of[cosine],
             contents[node].width, contents[node].height)
            for node, cosine in [(reference, 1.0), *linked])
        groups.append(Group("similar", members, suggest_keeper(members)))
    return groups


def star_members(contents: Iterable[tuple[Sequence[FileLike], float, int | None, int | None]]
                 ) -> tuple[Member, ...]:
    """One group's members from its contents, reference first: (files,
    similarity, width, height) each. A content's byte copies share a
    ``copy_set`` number, counted from 0 within the group; a lone file has
    none. The similar and the near-exact groups both number them so."""
    members: list[Member] = []
    copy_sets = 0
    for files, similarity, width, height in contents:
        copy_set = None
        if len(files) > 1:
            copy_set, copy_sets = copy_sets, copy_sets + 1
        members += [Member(f.path, round(float(similarity), 2), copy_set, f.size, width, height,
                           f.mtime_ns) for f in files]
    return tuple(members)


def with_digests(graph: SimilarityGraph, digests: dict[str, str]) -> SimilarityGraph:
    """A copy whose contents know the given {path: content hash}: what a
    new "Not duplicates" mark needs to take effect without a rescan."""
    return replace(graph, contents=graph.contents.with_digests(digests))


def drop_paths(groups: Iterable[Group], gone: Collection[str]) -> tuple[Group, ...]:
    """Groups without the files in ``gone`` (moved to the trash): a group
    left with one member is no group, and a removed keeper is re-suggested."""
    if not gone:
        return tuple(groups)
    kept = []
    for group in groups:
        members = tuple(m for m in group.members if m.path not in gone)
        if len(members) < 2:
            continue
        keeper = group.keeper if any(m.path == group.keeper for m in members) \
            else suggest_keeper(members)
        kept.append(Group(group.kind, members, keeper))
    return tuple(kept)

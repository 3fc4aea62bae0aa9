"""Reviewing thousands of groups: their order, filters and totals. No Qt.

"Space to free" is one definition everywhere (the sort, the summary line,
the "Accept all in this filter" confirmation): a group frees its marked
members when it has any, else the members accepting its suggestion would
mark (all but the suggested keeper, never a protected photo, none in a
similar-shot group). A file in two groups is counted once in a total.
Marked files are exactly what "Move N marked to trash…" moves.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from imgdedupe.core.actions.decisions import Decisions
from imgdedupe.core.groups.graph import SimilarityGraph
from imgdedupe.core.records import Group, Member
from imgdedupe.core.units import human_size


class SortOrder(Enum):
    SPACE = "space to free"
    SIZE = "size"
    FOLDER = "folder"
    CAPTURE_DATE = "capture date"


class MarksFilter(Enum):
    ANY = "all groups"
    MARKED = "with marks"
    UNMARKED = "without marks"


def to_free(group: Group, decisions: Decisions) -> list[Member]:
    """The members ``group`` frees: its marks, else its suggestion's."""
    marked = decisions.marked_in(group)
    if marked or not group.deletable:
        return marked
    suggested = set(decisions.suggested_marks(group))
    return [m for m in group.members if m.path in suggested]


# Sizes count each photo's companions (its RAW, sidecars, Live Photo video):
# they go to the trash with it, as the confirmation says.
def space_to_free(group: Group, decisions: Decisions) -> int:
    return sum(m.size_with_companions for m in to_free(group, decisions))


def group_size(group: Group) -> int:
    return sum(m.size_with_companions for m in group.members)


def group_folder(group: Group) -> str:
    """The first folder (A to Z) that holds one of the group's photos."""
    return min(os.path.dirname(m.path) for m in group.members)


def capture_times(graph: SimilarityGraph | None) -> dict[str, float]:
    """{path: EXIF capture time} of every file whose time the scan read."""
    if graph is None:
        return {}
    paths, starts = graph.contents.columns()[0], graph.contents.columns()[3].tolist()
    known = np.flatnonzero(~np.isnan(np.asarray(graph.moments, dtype=np.float64)))
    moments = graph.moments.tolist()
    return {paths[j]: moments[i] for i in known.tolist() for j in range(starts[i], starts[i + 1])}


def group_time(group: Group, times: Mapping[str, float]) -> tuple[float, bool]:
    """The group's earliest capture time, and True; or, when no member's
    capture time is known, its earliest file modification time, and False."""
    known = [times[m.path] for m in group.members if m.path in times]
    if known:
        return min(known), True
    return min(m.mtime_ns for m in group.members) / 1e9, False


def sort_groups(groups: Iterable[Group], order: SortOrder, decisions: Decisions,
                times: Mapping[str, float] | None = None) -> list[Group]:
    """Most space to free or largest first; folders A to Z; oldest first.
    Ties keep the scan's order, so every order is deterministic."""
    groups = list(groups)
    if order is SortOrder.SPACE:
        return sorted(groups, key=lambda g: -space_to_free(g, decisions))
    if order is SortOrder.SIZE:
        return sorted(groups, key=lambda g: -group_size(g))
    if order is SortOrder.FOLDER:
        return sorted(groups, key=group_folder)
    return sorted(groups, key=lambda g: group_time(g, times or {})[0])


def in_folder(group: Group, folder: str) -> bool:
    """Whether a photo of ``group`` lies in ``folder`` or below it."""
    prefix = os.path.join(folder, "")
    return any(m.path.startswith(prefix) for m in group.members)


def filter_groups(groups: Iterable[Group], decisions: Decisions, folder: str | None = None,
                  marks: MarksFilter = MarksFilter.ANY) -> list[Group]:
    kept = []
    for group in groups:
        if folder is not None and not in_folder(group, folder):
            continue
        if marks is not MarksFilter.ANY and \
                bool(decisions.marked_in(group)) != (marks is MarksFilter.MARKED):
            continue
        kept.append(group)
    return kept


def folders_of(groups: Iterable[Group], roots: Sequence[str] = ()) -> list[str]:
    """The folders a filter may choose: the scanned roots and every folder
    that directly holds a grouped photo, A to Z."""
    return sorted({*roots, *(os.path.dirname(m.path) for g in groups for m in g.members)})


@dataclass(frozen=True)
class Summary:
    groups: int
    of_groups: int  # before the filters
    to_free: int  # bytes, each file once
    exact: int  # bytes of to_free in exact-copy groups
    marked: int  # files marked in these groups
    marked_bytes: int

    def text(self) -> str:
        """"1,240 groups · 8.3 GB to free · 3.1 GB in exact copies · 12 marked (40 MB)"."""
        shown = f"{self.groups:,}" if self.groups == self.of_groups else \
            f"{self.groups:,} of {self.of_groups:,}"
        parts = [f"{shown} group{'s' if self.of_groups != 1 else ''}",
                 f"{human_size(self.to_free)} to free",
                 f"{human_size(self.exact)} in exact copies"]
        if self.marked:
            parts.append(f"{self.marked:,} marked ({human_size(self.marked_bytes)})")
        return " · ".join(parts)


def summarize(groups: Sequence[Group], decisions: Decisions,
              of_groups: int | None = None) -> Summary:
    freed: dict[str, int] = {}
    exact: dict[str, int] = {}
    marked: dict[str, int] = {}
    for group in groups:
        for m in to_free(group, decisions):
            freed[m.path] = m.size_with_companions
            if group.tier == "exact":
                exact[m.path] = m.size_with_companions
        for m in decisions.marked_in(group):
            marked[m.path] = m.size_with_companions
    return Summary(len(groups), len(groups) if of_groups is None else of_groups,
                  sum(freed.values()), sum(exact.values()), len(marked), sum(marked.values()))


class RunningSummary:
    """summarize() kept up to date as marks change: only the groups whose
    members' marks changed are counted again (a mark at 100k groups cost
    the whole count, 0.6 s, at every key press). Protection or other groups
    need a new one."""

    def __init__(self, groups: Sequence[Group], decisions: Decisions,
                 of_groups: int | None = None) -> None:
        self._groups = list(groups)
        self._decisions = decisions
        self._of = len(self._groups) if of_groups is None else of_groups
        self._index: dict[str, list[int]] = {}
        for n, group in enumerate(self._groups):
            for m in group.members:
                self._index.setdefault(m.path, []).append(n)
        self._seen = decisions.marked
        self._parts: list[list[Member]] = [[] for _ in self._groups]
        self._freed: dict[str, int] = {}  # path -> how many groups free it
        self._exact: dict[str, int] = {}
        self._sizes = {m.path: m.size_with_companions for g in self._groups for m in g.members}
        self._totals = [0, 0]  # bytes to free, of them in exact copies
        self._marked = {p for p in self._seen if p in self._index}
        for n in range(len(self._groups)):
            self._count(n, +1)

    def _count(self, n: int, sign: int) -> None:
        group = self._groups[n]
        if sign > 0:
            self._parts[n] = to_free(group, self._decisions)
        for m in self._parts[n]:
            for column, counts in ((0, self._freed), (1, self._exact)):
                if column and group.tier != "exact":
                    continue
                before = counts.get(m.path, 0)
                counts[m.path] = before + sign
                if (before == 0) != (before + sign == 0):  # first or last group to free it
                    self._totals[column] += sign * m.size_with_companions

    def summary(self) -> Summary:
        """The summary now; counts again only what the marks changed."""
        now = self._decisions.marked
        changed = now ^ self._seen
        self._seen = now
        for path in changed:
            if path in self._index:
                (self._marked.add if path in now else self._marked.discard)(path)
        for n in sorted({n for path in changed for n in self._index.get(path, ())}):
            self._count(n, -1)
            self._count(n, +1)
        return Summary(len(self._groups), self._of, self._totals[0], self._totals[1],
                       len(self._marked), sum(self._sizes[p] for p in self._marked))


def accept_plan(groups: Iterable[Group], decisions: Decisions,
                similar_shots: bool = False) -> tuple[list[Group], int, int]:
    """What "Accept all in this filter" would do, tried on a copy: the
    groups it accepts, and how many files (and bytes) are then marked in
    them, each file once."""
    chosen = [g for g in groups if g.deletable or similar_shots]
    trial = decisions.copy()
    for group in chosen:
        trial.accept_suggestion(group, similar_shots)
    marks = {m.path: m.size_with_companions for g in chosen for m in trial.marked_in(g)}
    return chosen, len(marks), sum(marks.values())


def describe_time(seconds: float, captured: bool = True) -> str:
    """A capture time as the camera's clock wrote it (images.capture_time
    reads it as UTC, so UTC gives it back unshifted); a file's
    modification time (not ``captured``) in local time."""
    if not math.isfinite(seconds):
        return "unknown"
    return time.strftime("%Y-%m-%d %H:%M", (time.gmtime if captured else time.localtime)(seconds))

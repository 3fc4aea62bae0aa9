"""The similarity graph of one scan, and the groups it gives at a threshold.

A scan scores candidate pairs once, down to a floor below any threshold
the user can choose, and keeps them here. Regrouping at another threshold
(the window's slider) is then a filter plus the star grouping: no decode,
no model, no index. The scan's own result is made by the same function,
so the command line and the window can never disagree.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from imgdedupe.core.groups.contents import Content, ContentTable
from imgdedupe.core.groups.keeper import keeper_order_key, suggest_keeper
from imgdedupe.core.groups.stars import greedy_star_groups
from imgdedupe.core.model import calibration
from imgdedupe.core.records import FileLike, Group, IgnoreMark, ImageFile, Member

# The lowest similarity the slider offers. Pairs are kept down to here.
FLOOR_SCORE = 70.0
# Bump when the groups made from the same scored pairs change (the star
# grouping, exact-copy groups, keeper rules, member scores): the scan memo
# is keyed by it, so an upgrade regroups instead of replaying old groups.
GROUPING_VERSION = 1


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


def groups_at(graph: SimilarityGraph, threshold: float,
              ignore_marks: Iterable[IgnoreMark] = ()) -> tuple[Group, ...]:
    """Similar groups at ``threshold`` (0-100), then exact-copy groups for
    byte copies no similar group took, in a deterministic order.

    A pair whose two contents share an ignore mark is dropped, so a group
    the user called "Not duplicates" stays apart across rescans."""
    if threshold < graph.floor_score - 1e-9:
        raise ValueError(f"threshold {threshold} is below the scan's floor "
                         f"{graph.floor_score}; rescan to go lower")
    min_cosine = calibration.score_to_cosine(graph.backbone, threshold)
    keep = graph.cosines >= min_cosine
    keep &= _not_ignored(graph, ignore_marks)
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


def _not_ignored(graph: SimilarityGraph, ignore_marks: Iterable[IgnoreMark]) -> np.ndarray:
    keep = np.ones(len(graph.pairs), dtype=bool)
    marks_of: dict[str, set[int]] = {}
    for n, mark in enumerate(ignore_marks):
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


def _member(f: ImageFile, similarity: float, copy_set: int | None, content: Content) -> Member:
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

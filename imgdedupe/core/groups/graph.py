"""The similarity graph of one scan, and the groups it gives at a threshold.

A scan scores candidate pairs once, down to a floor below any threshold
the user can choose, verifies each (verify: near_duplicate, similar_shot
or not the same picture) and keeps them here. Regrouping at another
threshold (the window's slider) is then a filter plus the star grouping:
no decode, no model, no index. The scan's own result is made by the same
function, so the command line and the window can never disagree.

A pair the verification did not call the same picture or the same scene
never groups, however high its cosine: two watches are not duplicates.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from imgdedupe.core.files.companions import with_companions
from imgdedupe.core.groups.contents import Content, ContentTable
from imgdedupe.core.groups.keeper import keeper_order_key, suggest_keeper
from imgdedupe.core.groups.stars import greedy_star_groups, linked_groups
from imgdedupe.core.model import calibration
from imgdedupe.core.records import (
    Companion,
    FileLike,
    Group,
    IgnoreMark,
    ImageFile,
    Member,
    Tier,
)
from imgdedupe.core.verify.tiers import NEAR_DUPLICATE, SAME_GROUP, SIMILAR_SHOT

# The lowest similarity the slider offers. Pairs are kept, and verified,
# down to here: every pair costs a verification (docs/quality.md), and
# below 80 the embedding proposes several times more pairs (Caltech-101:
# 32,193 at 70, 13,021 at 80) for few more copies.
FLOOR_SCORE = 80.0
# Bump when the groups made from the same scored pairs change (the star
# grouping, exact-copy groups, keeper rules, member scores): the scan memo
# is keyed by it, so an upgrade regroups instead of replaying old groups.
# 2: tiers (near-duplicate groups first, then similar shots); 3: no group
# takes two photos of one "Not duplicates" mark.
GROUPING_VERSION = 3
SAME_BYTES = "same bytes"


@dataclass(frozen=True)
class SimilarityGraph:
    """Immutable: safe to hand from the scan thread to the GUI thread.

    ``pairs`` index ``contents`` (i < j); ``cosines`` are their exact
    rotation-aware scores, all >= the cosine of ``floor_score``; ``tiers``
    their verdicts (verify.tiers codes: 2 near_duplicate, 1 similar_shot,
    0 not the same picture, -1 not verified, 3 joined by verified ones) with
    ``reasons`` in words; ``moments``: each content's capture time;
    ``companions``: each photo's companion files (files.companions), given
    to its members. Found afresh by every scan, so never memoised."""

    backbone: str
    contents: ContentTable
    pairs: np.ndarray  # (M, 2) integers: int64, or int32 from a scan memo
    cosines: np.ndarray  # (M,) float32
    tiers: np.ndarray  # (M,) int8
    reasons: tuple[str, ...]  # (M,)
    moments: np.ndarray  # (len(contents),) float64: EXIF capture times, NaN unknown
    floor_score: float = FLOOR_SCORE
    companions: Mapping[str, tuple[Companion, ...]] = field(default_factory=dict)
    # Compare across folders only: the scan's roots, when only photos under
    # different ones may group (across_only); empty: everything may.
    across: tuple[str, ...] = ()

    def pair_scores(self) -> np.ndarray:
        """Every kept pair's similarity on the 0-100 scale (for a histogram)."""
        return calibration.cosine_to_score(self.backbone, self.cosines)


def groups_at(graph: SimilarityGraph, threshold: float,
              ignore_marks: Iterable[IgnoreMark] = ()) -> tuple[Group, ...]:
    """Groups at ``threshold`` (0-100), in a deterministic order:
    near-duplicate groups of the pairs verified as the same picture, then
    similar-shot groups of the same-scene pairs among the photos left, then
    exact-copy groups for byte copies no other group took.

    A pair whose two contents share an ignore mark is dropped, and no group
    takes two contents of one mark, so a group the user called "Not
    duplicates" stays apart across rescans, also when a new copy matches
    both."""
    if threshold < graph.floor_score - 1e-9:
        raise ValueError(f"threshold {threshold} is below the scan's floor "
                         f"{graph.floor_score}; rescan to go lower")
    min_cosine = calibration.score_to_cosine(graph.backbone, threshold)
    keep = graph.cosines >= min_cosine
    marks_of = _marks_of(graph, ignore_marks)
    keep &= _not_ignored(graph, marks_of)
    near = keep & ((graph.tiers == NEAR_DUPLICATE) | (graph.tiers == SAME_GROUP))
    groups, stars = _similar_groups(graph, near, min_cosine, "near_duplicate", components=True,
                                    marks_of=marks_of)
    # Similar shots join photos, or whole near-duplicate groups: a burst
    # of which one frame was also exported twice is one similar-shot group
    # of every frame and copy (for review), beside the group of the
    # frame's copies (where a copy may be marked).
    unit = np.arange(len(graph.contents))
    copies_of: dict[int, list[int]] = {}
    for reference, linked in stars:
        unit[[node for node, _ in linked]] = reference
        copies_of[reference] = [node for node, _ in linked]
    similar = keep & (graph.tiers == SIMILAR_SHOT)
    # A unit stands for its whole near-duplicate group: it carries their marks.
    unit_marks = dict(marks_of)
    for reference, copies in copies_of.items():
        unit_marks[reference] = frozenset().union(marks_of.get(reference, frozenset()),
                                                  *(marks_of.get(c, frozenset()) for c in copies))
    groups += _similar_groups(graph, similar, min_cosine, "similar_shot", unit=unit,
                              copies_of=copies_of, marks_of=unit_marks)[0]
    grouped = {m.path for g in groups for m in g.members}
    groups += [g for g in exact_groups(graph.contents.copied()) if g.members[0].path not in grouped
               and (not graph.across or spans_roots((m.path for m in g.members), graph.across))]
    groups.sort(key=lambda g: (g.members[0].path, g.kind))
    return with_companions(groups, graph.companions)


def root_of(path: str, roots: Sequence[str]) -> str | None:
    """The root (an absolute folder, or a file given as a root) that holds
    ``path``: the deepest one when roots nest, None when none does."""
    best = None
    for root in roots:
        inside = path == root or path.startswith(os.path.join(root, ""))
        if inside and (best is None or len(root) > len(best)):
            best = root
    return best


def spans_roots(paths: Iterable[str], roots: Sequence[str]) -> bool:
    """Whether ``paths`` lie under at least two different roots."""
    seen: set[str | None] = set()
    for path in paths:
        seen.add(root_of(path, roots))
        if len(seen) > 1:
            return True
    return False


def across_only(graph: SimilarityGraph, roots: Sequence[str]) -> SimilarityGraph:
    """The graph of "compare across folders only": just the pairs whose
    photos lie under different roots (a content's byte copies count for
    every root they lie in), and byte-copy groups only when their copies
    span two roots. Filtered here, before grouping, so that every grouping
    (the scan's, the slider's, the command line's) sees the same pairs, and
    no group ever forms of one folder's photos alone."""
    roots = tuple(roots)
    contents = graph.contents
    paths, starts = contents.columns()[0], contents.columns()[3].tolist()
    roots_of = [frozenset(root_of(paths[j], roots) for j in range(starts[i], starts[i + 1]))
                for i in range(len(contents))]
    keep = np.array([len(roots_of[a] | roots_of[b]) > 1 for a, b in graph.pairs.tolist()],
                    dtype=bool).reshape(-1)
    return replace(graph, pairs=graph.pairs[keep].reshape(-1, 2), cosines=graph.cosines[keep],
                   tiers=graph.tiers[keep],
                   reasons=tuple(r for r, k in zip(graph.reasons, keep.tolist(), strict=True)
                                 if k),
                   across=roots)


def exact_groups(contents: Iterable[Content]) -> list[Group]:
    """Byte-identical files; copies share their content's pixel size."""
    groups = []
    for content in contents:
        if len(content.files) > 1:
            members = tuple(_member(f, 100.0, 0, content) for f in content.files)
            groups.append(Group("exact", members, suggest_keeper(members), "exact", SAME_BYTES))
    groups.sort(key=lambda g: g.members[0].path)
    return groups


def _marks_of(graph: SimilarityGraph, ignore_marks: Iterable[IgnoreMark]
              ) -> dict[int, frozenset[int]]:
    """Each content's "Not duplicates" marks (by number), for the contents
    that have any."""
    by_digest: dict[str, set[int]] = {}
    for n, mark in enumerate(ignore_marks):
        for digest in mark:
            by_digest.setdefault(digest, set()).add(n)
    if not by_digest:
        return {}
    return {node: frozenset(by_digest[digest])
            for node, digest in enumerate(graph.contents.digests())
            if digest is not None and digest in by_digest}


def _not_ignored(graph: SimilarityGraph, marks_of: dict[int, frozenset[int]]) -> np.ndarray:
    keep = np.ones(len(graph.pairs), dtype=bool)
    if not marks_of:
        return keep
    for row, (a, b) in enumerate(graph.pairs.tolist()):
        marks_a = marks_of.get(a)
        if marks_a and not marks_a.isdisjoint(marks_of.get(b, ())):
            keep[row] = False
    return keep


def _member(f: ImageFile, similarity: float, copy_set: int | None, content: Content) -> Member:
    return Member(f.path, round(float(similarity), 2), copy_set, f.size, content.width,
                  content.height, f.mtime_ns)


def _similar_groups(graph: SimilarityGraph, rows: np.ndarray, min_cosine: float,
                    tier: Tier, components: bool = False, unit: np.ndarray | None = None,
                    copies_of: dict[int, list[int]] | None = None,
                    marks_of: dict[int, frozenset[int]] | None = None
                    ) -> tuple[list[Group], list[tuple[int, list[tuple[int, float]]]]]:
    """Groups of the pairs at ``rows`` (a mask), all of ``tier``: stars, or
    whole connected ``components`` (stars.linked_groups); and the stars. A
    group's reason is that of its weakest pair: the least evidence.
    ``unit`` maps each content to the one standing for it (its
    near-duplicate group's reference): pairs join those, once each, by
    their most similar pair, and a group lists each one's ``copies_of``
    after it, at its similarity."""
    contents = graph.contents
    row_numbers = np.flatnonzero(rows)
    pairs, cosines = graph.pairs[row_numbers], graph.cosines[row_numbers]
    if unit is not None and len(pairs):
        pairs = np.sort(unit[pairs], axis=1)
        apart = pairs[:, 0] != pairs[:, 1]
        # Ascending: where two rows join the same units, the more similar
        # (written last) is the one kept, by the stars and reason_of alike.
        order = np.flatnonzero(apart)[np.argsort(cosines[apart], kind="stable")]
        pairs, cosines, row_numbers = pairs[order], cosines[order], row_numbers[order]
    reason_of = {(a, b): graph.reasons[row] for (a, b), row
                 in zip(pairs.tolist(), row_numbers.tolist(), strict=True)}

    def tie_break(node: int) -> tuple:
        first = contents[node].files[0]
        return keeper_order_key(_member(first, 0, None, contents[node]))

    moments = graph.moments.tolist()
    marks = marks_of or {}

    def marked(node: int) -> frozenset[int]:
        return marks.get(node, frozenset())

    stars = (linked_groups(pairs, cosines, tie_break,
                           lambda node: None if moments[node] != moments[node] else moments[node],
                           marked)
             if components else
             greedy_star_groups(len(contents), pairs, cosines, min_cosine, tie_break, marked))
    # Each group's weakest verified pair, in one pass over the pairs.
    verified = graph.tiers[row_numbers] != SAME_GROUP
    group_of = {node: n for n, (reference, linked) in enumerate(stars)
                for node in (reference, *(m for m, _ in linked))}
    weakest: dict[int, tuple[float, tuple[int, int]]] = {}
    for key, cosine in zip(map(tuple, pairs[verified].tolist()), cosines[verified].tolist(),
                           strict=True):
        n = group_of.get(key[0])
        if n is not None and n == group_of.get(key[1]) and (n not in weakest
                                                              or cosine < weakest[n][0]):
            weakest[n] = (cosine, key)
    # One interpolation for all members, not one numpy call each.
    linked_cosines = [cosine for _, linked in stars for _, cosine in linked]
    score_of = dict(zip(linked_cosines, calibration.cosine_to_score(
        graph.backbone, np.asarray(linked_cosines)).tolist(), strict=True))
    groups = []
    for n, (reference, linked) in enumerate(stars):
        nodes = [(node, 100.0 if node == reference else score_of[cosine])
                 for node, cosine in [(reference, 1.0), *linked]]
        if copies_of:
            nodes = [(copy, score) for node, score in nodes
                     for copy in [node, *copies_of.get(node, ())]]
        members = star_members((contents[node].files, score, contents[node].width,
                                contents[node].height) for node, score in nodes)
        # A group joined only by implied pairs (a "Not duplicates" mark
        # dropped the verified ones) has no verdict of its own to show.
        reason = reason_of[weakest[n][1]] if n in weakest else \
            "the same picture as the rest of its group"
        if len(nodes) > 2:
            reason += f" (the weakest link among {len(nodes)} photos)"
        groups.append(Group("similar", members, suggest_keeper(members), tier, reason))
    return groups, stars


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
        if any(m.path == group.keeper for m in members):
            kept.append(replace(group, members=members))
        else:  # the reason spoke of the removed keeper: none until the rules run again
            kept.append(replace(group, members=members, keeper=suggest_keeper(members),
                                keeper_reason=""))
    return tuple(kept)

"""Reviewing thousands of groups (core.actions.review_order): each sort
order, each filter, the summary line's numbers and "Accept all"'s plan."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgdedupe.core.actions.decisions import Decisions
from imgdedupe.core.actions.review_order import (
    MarksFilter,
    RunningSummary,
    SortOrder,
    accept_plan,
    capture_times,
    filter_groups,
    folders_of,
    group_time,
    sort_groups,
    space_to_free,
    summarize,
)
from imgdedupe.core.groups.contents import ContentTable
from imgdedupe.core.groups.graph import SimilarityGraph
from imgdedupe.core.groups.protection import Protection
from imgdedupe.core.records import Group, Member

MB = 1024 * 1024


def member(path: str, size: int, mtime_s: int = 0, wh: tuple[int, int] = (100, 100)) -> Member:
    return Member(path, 95.0, None, size, wh[0], wh[1], mtime_s * 10**9)


def group(tier: str, *members: Member) -> Group:
    # The first member is the suggested keeper (the tests choose it).
    return Group("similar" if tier != "exact" else "exact", members, members[0].path, tier,
                 "test")


# Space to free (all but the keeper): A 1 MB, B 8 MB, C 3 MB; D is a
# similar shot (frees nothing unless marked). Total sizes: A 11, B 10, C 6.
A = group("near_duplicate", member("/lib/zoo/a.jpg", 10 * MB, 300),
          member("/dump/a/a.jpg", 1 * MB, 200))
B = group("exact", member("/lib/city/b.jpg", 2 * MB, 100), member("/dump/b.jpg", 2 * MB, 900),
          member("/dump/more/b.jpg", 6 * MB, 900))
C = group("near_duplicate", member("/camera/c.jpg", 3 * MB, 500),
          member("/lib/beach/c.jpg", 3 * MB, 50))
D = group("similar_shot", member("/lib/zoo/d1.jpg", 4 * MB, 10),
          member("/lib/zoo/d2.jpg", 4 * MB, 20))
GROUPS = [A, B, C, D]


def names(groups: list[Group]) -> list[str]:
    return ["ABCD"[GROUPS.index(g)] for g in groups]


def test_space_to_free_is_the_suggestion_then_the_marks() -> None:
    d = Decisions(GROUPS)
    assert [space_to_free(g, d) for g in GROUPS] == [1 * MB, 8 * MB, 3 * MB, 0]
    d.mark("/lib/zoo/a.jpg")  # a mark replaces the suggestion: the marked files free
    assert space_to_free(A, d) == 10 * MB
    d.mark("/lib/zoo/d2.jpg")
    assert space_to_free(D, d) == 4 * MB


def test_protected_photos_free_nothing() -> None:
    d = Decisions(GROUPS, Protection.of(["/dump/more"]))
    # The protected copy becomes the keeper; the two others free 2 MB each.
    assert space_to_free(B, d) == 4 * MB
    d = Decisions(GROUPS, Protection.of(["/dump"]))
    assert space_to_free(B, d) == 2 * MB  # /lib/city/b.jpg alone


@pytest.mark.parametrize(("order", "expected"), [
    (SortOrder.SPACE, "BCAD"),  # 8, 3, 1, 0 MB to free
    (SortOrder.SIZE, "ABDC"),  # 11, 10, 8, 6 MB in all
    (SortOrder.FOLDER, "CBAD"),  # /camera, /dump, /dump/a, /lib/zoo: each's first folder
])
def test_each_sort_order(order: SortOrder, expected: str) -> None:
    d = Decisions(GROUPS)
    # Shuffled first: the order comes from the sort, not from the input.
    assert "".join(names(sort_groups([D, C, B, A], order, d))) == expected


def test_ties_keep_the_input_order() -> None:
    d = Decisions(GROUPS)
    same = group("exact", member("/lib/zoo/e.jpg", 4 * MB), member("/lib/zoo/f.jpg", 4 * MB))
    assert sort_groups([D, same], SortOrder.FOLDER, d) == [D, same]
    assert sort_groups([same, D], SortOrder.FOLDER, d) == [same, D]


def test_capture_date_order_uses_exif_and_falls_back_to_mtime() -> None:
    d = Decisions(GROUPS)
    times = {"/camera/c.jpg": 5.0, "/lib/beach/c.jpg": 7.0}  # only C's photos carry one
    order = sort_groups(GROUPS, SortOrder.CAPTURE_DATE, d, times)
    # C at 5 s (EXIF), D at 10 s, B at 100 s and A at 200 s (mtimes).
    assert names(order) == ["C", "D", "B", "A"]
    assert group_time(C, times) == (5.0, True)
    assert group_time(A, times) == (200.0, False)


def test_capture_times_come_from_the_graph_for_every_copy() -> None:
    table = ContentTable(["/a.jpg", "/a copy.jpg", "/b.jpg"], [1, 1, 2], [0, 0, 0], [0, 2, 3],
                         [10, 10], [10, 10], [None, None])
    graph = SimilarityGraph("efficientnet-lite0", table, np.zeros((0, 2), np.int64),
                            np.zeros(0, np.float32), np.zeros(0, np.int8), (),
                            np.array([1234.5, np.nan]))
    assert capture_times(graph) == {"/a.jpg": 1234.5, "/a copy.jpg": 1234.5}
    assert capture_times(None) == {}


def test_filters_by_folder_and_by_marks() -> None:
    d = Decisions(GROUPS)
    assert names(filter_groups(GROUPS, d, folder="/lib/zoo")) == ["A", "D"]
    assert names(filter_groups(GROUPS, d, folder="/dump/more")) == ["B"]
    assert names(filter_groups(GROUPS, d, folder="/lib/zo")) == []  # a folder, not a prefix
    d.mark("/camera/c.jpg")
    assert names(filter_groups(GROUPS, d, marks=MarksFilter.MARKED)) == ["C"]
    assert names(filter_groups(GROUPS, d, marks=MarksFilter.UNMARKED)) == ["A", "B", "D"]
    assert names(filter_groups(GROUPS, d, "/lib", MarksFilter.MARKED)) == ["C"]
    assert folders_of([A], roots=["/lib"]) == ["/dump/a", "/lib", "/lib/zoo"]


def test_the_summary_line_counts_each_file_once() -> None:
    d = Decisions(GROUPS)
    summary = summarize(GROUPS, d)
    assert (summary.groups, summary.to_free, summary.exact) == (4, 12 * MB, 8 * MB)
    assert summary.text() == "4 groups · 12.0 MB to free · 8.0 MB in exact copies"
    d.mark("/lib/zoo/d2.jpg")
    d.mark("/dump/a/a.jpg")
    summary = summarize([A, D], d, of_groups=4)
    assert (summary.to_free, summary.exact, summary.marked, summary.marked_bytes) == (
        5 * MB, 0, 2, 5 * MB)
    assert summary.text() == ("2 of 4 groups · 5.0 MB to free · 0 B in exact copies · "
                              "2 marked (5.0 MB)")
    # A file in two groups is one file to free.
    twice = group("similar_shot", member("/dump/b.jpg", 2 * MB), member("/x/b.jpg", 2 * MB))
    d2 = Decisions([B, twice])
    d2.mark("/dump/b.jpg")
    assert summarize([B, twice], d2).to_free == 2 * MB


def test_accept_plan_counts_what_accepting_marks() -> None:
    d = Decisions(GROUPS, Protection.of(["/dump/more"]))
    chosen, files, size = accept_plan(GROUPS, d)
    assert names(chosen) == ["A", "B", "C"]  # no similar shots unless asked
    # /dump/a/a 1 MB; /lib/city/b and /dump/b 2 MB each (the protected copy
    # is kept); /lib/beach/c 3 MB.
    assert (files, size) == (4, 8 * MB)
    assert not d.marked  # a plan only
    chosen, files, size = accept_plan(GROUPS, d, similar_shots=True)
    assert names(chosen) == ["A", "B", "C", "D"] and (files, size) == (5, 12 * MB)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["mark", "keep", "accept", "accept_shots", "clear"]),
                          st.integers(0, 20)), max_size=25),
       st.booleans())
def test_the_running_summary_always_equals_a_full_count(ops, protect: bool) -> None:  # noqa: ANN001
    twice = group("similar_shot", member("/dump/b.jpg", 2 * MB), member("/x/b.jpg", 5 * MB))
    groups = [*GROUPS, twice]
    d = Decisions(groups, Protection.of(["/dump/more"]) if protect else Protection())
    running = RunningSummary(groups, d, 9)
    paths = sorted({m.path for g in groups for m in g.members})
    for op, n in ops:
        g = groups[n % len(groups)]
        if op == "mark":
            d.mark(paths[n % len(paths)])
        elif op == "keep":
            d.keep(paths[n % len(paths)])
        elif op == "accept":
            d.accept_suggestion(g)
        elif op == "accept_shots":
            d.accept_suggestion(g, similar_shots=True)
        else:
            d.clear(g)
        assert running.summary() == summarize(groups, d, 9)


def test_companions_count_in_every_size_the_review_shows() -> None:
    """A marked JPEG takes its RAW and sidecar to the trash: the row's "to
    free", the summary line, its running copy and "Accept all" count them,
    as the confirmation does."""
    from imgdedupe.core.records import Companion

    raw = Companion("/dump/e.CR2", 20 * MB, 0, "raw")
    xmp = Companion("/dump/e.xmp", 1000, 0, "sidecar")
    keeper = member("/lib/e.jpg", 3 * MB)
    copy = Member("/dump/e.jpg", 95.0, None, 2 * MB, 100, 100, 0, (raw, xmp))
    e = group("near_duplicate", keeper, copy)
    d = Decisions([e])
    with_them = 2 * MB + 20 * MB + 1000
    assert space_to_free(e, d) == with_them
    assert summarize([e], d).to_free == with_them
    running = RunningSummary([e], d)
    assert running.summary().to_free == with_them
    d.mark("/dump/e.jpg")
    assert summarize([e], d).marked_bytes == running.summary().marked_bytes == with_them
    assert accept_plan([e], Decisions([e]))[2] == with_them

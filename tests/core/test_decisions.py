"""Keep/delete marks: rules pick the right keeper, and no sequence of
operations can ever mark every member of a group."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from imgdedupe.core.actions.decisions import Decisions, Rule, best_member, kept_members
from imgdedupe.core.records import Group, Member


def member(path: str, size: int = 100, wh: tuple[int, int] = (100, 100),
           mtime: int = 0) -> Member:
    return Member(path, 95.0, None, size, wh[0], wh[1], mtime)


def group(*members: Member, tier: str = "near_duplicate") -> Group:
    from imgdedupe.core.groups.keeper import suggest_keeper

    return Group("similar", members, suggest_keeper(members), tier, "test")


BIG = member("/a/big.jpg", size=500, wh=(4000, 3000), mtime=30)
LARGE_FILE = member("/b/large.png", size=9000, wh=(1000, 750), mtime=20)
OLD = member("/c/old.jpg", size=200, wh=(1000, 750), mtime=10)
NEW = member("/d/sub/new.jpg", size=300, wh=(1000, 750), mtime=40)
G = group(BIG, LARGE_FILE, OLD, NEW)


def test_each_rule_keeps_its_choice_and_marks_the_rest() -> None:
    expected = {Rule.SUGGESTED: BIG, Rule.HIGHEST_RESOLUTION: BIG, Rule.LARGEST_FILE: LARGE_FILE,
                Rule.OLDEST: OLD, Rule.NEWEST: NEW}
    for rule, keeper in expected.items():
        decisions = Decisions([G])
        assert decisions.apply_rule(G, rule)
        assert decisions.marked == {m.path for m in G.members} - {keeper.path}, rule


def test_folder_rule_keeps_the_member_in_that_folder_and_refuses_when_none_is() -> None:
    decisions = Decisions([G])
    assert best_member(G, Rule.IN_FOLDER, "/d") == NEW
    assert decisions.apply_rule(G, Rule.IN_FOLDER, "/d")
    assert not decisions.is_marked(NEW.path) and len(decisions.marked) == 3
    assert not decisions.apply_rule(G, Rule.IN_FOLDER, "/nowhere")
    assert len(decisions.marked) == 3  # unchanged
    # "/d/sub" is inside "/d" but "/d/su" is not a folder prefix match.
    assert best_member(G, Rule.IN_FOLDER, "/d/su") is None


def test_the_folder_rule_keeps_every_image_inside_the_chosen_folder() -> None:
    """"Keep the images in this folder" (the review's defect: choosing
    samples/ marked scan_0042_bw.jpg, inside it, because the rule kept one
    member only)."""
    scan = member("/samples/Archive/scan_0042.jpg", wh=(800, 600))
    scan_bw = member("/samples/Archive/scan_0042_bw.jpg", wh=(800, 600))
    backup = member("/backup/scan_0042.jpg", wh=(800, 600))
    both = group(scan, scan_bw, backup)
    decisions = Decisions([both])
    assert kept_members(both, Rule.IN_FOLDER, "/samples") == {scan.path, scan_bw.path}
    assert decisions.apply_rule(both, Rule.IN_FOLDER, "/samples")
    assert decisions.marked == {backup.path}
    # Every member inside the folder: all kept, nothing marked.
    assert decisions.apply_rule(both, Rule.IN_FOLDER, "/")
    assert decisions.marked == frozenset()
    assert decisions.apply_rule_to_all(Rule.IN_FOLDER, "/backup") == 1
    assert decisions.marked == {scan.path, scan_bw.path}


def test_marking_the_last_kept_member_is_refused() -> None:
    decisions = Decisions([G])
    for m in G.members[:-1]:
        assert decisions.mark(m.path)
    assert not decisions.can_mark(NEW.path)
    assert not decisions.mark(NEW.path)
    assert not decisions.toggle(NEW.path)
    assert not decisions.is_marked(NEW.path)


def test_regrouping_repairs_a_group_that_would_be_all_marked() -> None:
    small_a, small_b = member("/x/a.jpg"), member("/x/b.jpg", size=50)
    decisions = Decisions([group(BIG, small_a, small_b)])
    decisions.mark(small_a.path)
    decisions.mark(small_b.path)
    # A higher threshold splits off {a, b}: both marked, so one is unmarked.
    split = group(small_a, small_b)
    unmarked = decisions.set_groups([split])
    assert unmarked == [split.keeper]
    assert decisions.marked == {small_a.path, small_b.path} - {split.keeper}


def test_marks_on_files_no_longer_shown_are_dropped() -> None:
    decisions = Decisions([G])
    decisions.mark(OLD.path)
    decisions.set_groups([group(BIG, NEW)])
    assert decisions.marked == frozenset()


operations = st.lists(st.tuples(st.sampled_from(["mark", "keep", "toggle", "rule", "all",
                                                 "regroup"]),
                                 st.integers(0, 7), st.sampled_from(list(Rule)[:5])),
                      max_size=40)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_no_sequence_of_operations_marks_a_whole_group(ops: list) -> None:
    files = [member(f"/p/{n}.jpg", size=100 + n, mtime=n) for n in range(8)]
    layouts = [[group(*files[:4]), group(*files[4:])],
               [group(*files[:2]), group(*files[2:6]), group(*files[6:])],
               [group(*files)]]
    decisions = Decisions(layouts[0])
    shown = layouts[0]
    for n, (op, i, rule) in enumerate(ops):
        path = files[i].path
        if op == "mark":
            decisions.mark(path)
        elif op == "keep":
            decisions.keep(path)
        elif op == "toggle":
            decisions.toggle(path)
        elif op == "rule":
            decisions.apply_rule(shown[i % len(shown)], rule)
        elif op == "all":
            decisions.apply_rule_to_all(rule)
        else:
            shown = layouts[n % len(layouts)]
            decisions.set_groups(shown)
        for g in shown:
            assert len(decisions.marked_in(g)) < len(g.members)


def test_apply_to_all_never_marks_inside_similar_shots_unless_asked():
    copies = group(member("/x/a.jpg", size=900), member("/x/a_small.jpg", size=100))
    shots = group(member("/y/burst1.jpg", size=900), member("/y/burst2.jpg", size=100),
                  tier="similar_shot")
    decisions = Decisions([copies, shots])
    assert decisions.apply_rule_to_all(Rule.LARGEST_FILE) == 1
    assert decisions.marked == {"/x/a_small.jpg"}
    # Asked for explicitly, the tier is marked too.
    assert decisions.apply_rule_to_all(Rule.LARGEST_FILE,
                                       tiers={"near_duplicate", "similar_shot"}) == 2
    assert decisions.marked == {"/x/a_small.jpg", "/y/burst2.jpg"}

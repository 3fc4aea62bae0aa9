"""Protected folders: no rule, key or "Apply to all" ever marks a protected
photo; a group's suggested keeper is a protected photo when it has one;
groups whose photos are all protected are recognised (and hidden)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgdedupe.core.actions.decisions import Decisions, Rule
from imgdedupe.core.groups.keeper import keeper_order_key
from imgdedupe.core.groups.protection import Protection
from imgdedupe.core.records import Group, Member
from tests.core.test_decisions import group, member

BACKUP = "/photos/backup"
PROTECTION = Protection.of([BACKUP])


# The library's copy is the best by every rule but one, so each rule that
# prefers another member would keep it, and mark the protected ones.
LIBRARY = member("/photos/library/a.jpg", size=900, wh=(4000, 3000), mtime=30)
BACKED_UP = member("/photos/backup/a.jpg", size=200, wh=(1000, 750), mtime=10)
BACKED_UP_DEEP = member("/photos/backup/2020/a (1).jpg", size=300, wh=(1000, 750), mtime=40)
ELSEWHERE = member("/photos/phone/a.jpg", size=9000, wh=(1000, 750), mtime=50)
MIXED = group(LIBRARY, BACKED_UP, BACKED_UP_DEEP, ELSEWHERE)
SHOTS = group(member("/photos/library/burst1.jpg", wh=(4000, 3000)),
              member("/photos/backup/burst2.jpg", wh=(1000, 750)), tier="similar_shot")
ALL_PROTECTED = group(member("/photos/backup/x.jpg", wh=(2000, 1500)),
                      member("/photos/backup/old/x.jpg", wh=(1000, 750)), tier="exact")
GROUPS = (MIXED, SHOTS, ALL_PROTECTED)
PROTECTED_PATHS = {m.path for g in GROUPS for m in g.members if m.path.startswith(BACKUP + "/")}

RULES = [(rule, "/photos/phone" if rule is Rule.IN_FOLDER else None) for rule in Rule]


def decisions() -> Decisions:
    return Decisions(GROUPS, PROTECTION)


def test_protection_covers_its_folders_and_below_only() -> None:
    assert PROTECTION.covers("/photos/backup/a.jpg")
    assert PROTECTION.covers("/photos/backup/2020/a.jpg")
    assert not PROTECTION.covers("/photos/backup2/a.jpg")  # a name that only starts alike
    assert not PROTECTION.covers("/photos/library/a.jpg")
    assert not Protection().covers("/photos/backup/a.jpg")
    assert Protection.of(["/a", "/a/", "/b"]).folders == ("/a", "/b")


@pytest.mark.parametrize(("rule", "folder"), RULES, ids=[r.name for r, _ in RULES])
def test_no_rule_marks_a_protected_photo(rule: Rule, folder: str | None) -> None:
    d = decisions()
    for g in GROUPS:
        d.apply_rule(g, rule, folder)
    assert d.marked, "the rule marked nothing: the test proves nothing"
    assert not d.marked & PROTECTED_PATHS


@pytest.mark.parametrize(("rule", "folder"), RULES, ids=[r.name for r, _ in RULES])
def test_apply_to_all_marks_no_protected_photo_in_any_tier(rule: Rule,
                                                           folder: str | None) -> None:
    d = decisions()
    changed = d.apply_rule_to_all(rule, folder, tiers={"exact", "near_duplicate",
                                                       "similar_shot"})
    assert changed and d.marked
    assert not d.marked & PROTECTED_PATHS


def test_marking_by_hand_refuses_a_protected_photo() -> None:
    d = decisions()
    assert not d.can_mark(BACKED_UP.path)
    assert not d.mark(BACKED_UP.path)
    assert not d.toggle(BACKED_UP.path)
    assert not d.is_marked(BACKED_UP.path)
    assert d.mark(ELSEWHERE.path)  # the others still can be


def test_accepting_the_suggestion_keeps_a_protected_photo_and_marks_no_other() -> None:
    d = decisions()
    assert d.accept_suggestion(MIXED)
    # The suggestion keeps the best protected photo, not the library's larger one.
    assert d.marked == {LIBRARY.path, ELSEWHERE.path}
    assert not d.accept_suggestion(SHOTS)  # similar shots only when asked
    assert d.accept_suggestion(SHOTS, similar_shots=True)
    assert not d.marked & PROTECTED_PATHS


def test_the_keeper_prefers_a_protected_photo() -> None:
    assert MIXED.keeper == LIBRARY.path  # unprotected, the sharpest copy wins
    kept = PROTECTION.with_keeper(MIXED)
    # The best of the protected photos by the grouping's own order, and a
    # reason that names why (not the chain's, about the photo it chose).
    assert kept.keeper == min((BACKED_UP, BACKED_UP_DEEP), key=keeper_order_key).path
    assert kept.keeper_reason == (f"kept: in a protected folder (the rules chose "
                                  f"{os.path.basename(LIBRARY.path)}, which is not)")
    assert Protection().with_keeper(MIXED) is MIXED
    already = Protection.of(["/photos/library"]).with_keeper(MIXED)
    assert already is MIXED  # its keeper is protected already


def test_protecting_a_folder_unmarks_what_it_covers() -> None:
    d = Decisions(GROUPS)
    d.apply_rule_to_all(Rule.HIGHEST_RESOLUTION, tiers={"exact", "near_duplicate"})
    assert d.marked & PROTECTED_PATHS
    dropped = d.set_protection(PROTECTION)
    assert dropped and set(dropped) <= PROTECTED_PATHS
    assert not d.marked & PROTECTED_PATHS
    assert d.is_protected(BACKED_UP.path)


def test_all_protected_groups_are_recognised() -> None:
    assert PROTECTION.all_protected(ALL_PROTECTED)
    assert not PROTECTION.all_protected(MIXED)
    assert not Protection().all_protected(ALL_PROTECTED)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["mark", "toggle", "keep", "rule", "all", "accept"]),
                          st.integers(0, 9), st.sampled_from(list(Rule))), max_size=30))
def test_no_sequence_of_operations_marks_a_protected_photo(ops) -> None:  # noqa: ANN001
    d = decisions()
    paths = sorted({m.path for g in GROUPS for m in g.members})
    for op, n, rule in ops:
        path, g = paths[n % len(paths)], GROUPS[n % len(GROUPS)]
        folder = "/photos" if rule is Rule.IN_FOLDER else None
        if op == "mark":
            d.mark(path)
        elif op == "toggle":
            d.toggle(path)
        elif op == "keep":
            d.keep(path)
        elif op == "rule":
            d.apply_rule(g, rule, folder)
        elif op == "all":
            d.apply_rule_to_all(rule, folder, tiers={"exact", "near_duplicate", "similar_shot"})
        else:
            d.accept_suggestion(g, similar_shots=True)
        assert not d.marked & PROTECTED_PATHS
        for each in GROUPS:  # and the old invariant still holds
            assert not all(m.path in d.marked for m in each.members)


def test_a_protected_jpeg_never_displaces_the_cameras_raw() -> None:
    """Protecting a backup of JPEGs had the library's camera JPEG, its RAW
    companion riding along, suggested for the trash: the RAW exists nowhere
    else. The camera's pair stays the keeper; the protected copy is kept too."""
    from imgdedupe.core.records import Companion

    raw = Companion("/photos/library/IMG_1.CR2", 25_000_000, 0, "raw")
    shot = Member("/photos/library/IMG_1.JPG", 95.0, None, 300, 4000, 3000, 5, (raw,))
    backup = member("/photos/backup/IMG_1.JPG", size=300, wh=(4000, 3000))
    elsewhere = member("/photos/phone/IMG_1.jpg", size=100, wh=(2000, 1500))
    pair = Group("similar", (shot, backup, elsewhere), shot.path, "near_duplicate", "t")
    assert PROTECTION.with_keeper(pair) is pair
    lone_raw = member("/photos/library/DSC_1.DNG", size=20_000_000, wh=(6000, 4000))
    edit = member("/photos/backup/DSC_1_bright.jpg", size=400, wh=(6000, 4000))
    group_of_raw = Group("similar", (lone_raw, edit), lone_raw.path, "near_duplicate", "t")
    assert PROTECTION.with_keeper(group_of_raw) is group_of_raw
    # A protected camera pair does take the keeper from another one.
    protected_pair = Member("/photos/backup/IMG_1.JPG", 95.0, None, 300, 4000, 3000, 5,
                            (Companion("/photos/backup/IMG_1.CR2", 1, 0, "raw"),))
    both = Group("similar", (shot, protected_pair), shot.path, "near_duplicate", "t")
    assert PROTECTION.with_keeper(both).keeper == protected_pair.path


def test_a_folder_protected_or_scanned_through_a_link_is_the_same_folder(tmp_path) -> None:
    real = tmp_path / "Backup"
    (real / "2020").mkdir(parents=True)
    link = tmp_path / "bk"
    link.symlink_to(real)
    photo_in_real = str(real / "2020" / "a.jpg")
    photo_via_link = str(link / "2020" / "a.jpg")
    for protected in (str(link), str(real)):
        protection = Protection.of([protected])
        assert protection.covers(photo_in_real) and protection.covers(photo_via_link)
    # A photo file that is itself a link into the folder is not followed.
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(b"x")
    (tmp_path / "pointer.jpg").symlink_to(real / "2020" / "a.jpg")
    assert not Protection.of([str(real)]).covers(str(tmp_path / "pointer.jpg"))


def test_among_protected_photos_the_keeper_rules_ranking_decides() -> None:
    """The keeper rules rank every member; a protected keeper is the best
    protected one by that ranking (by file size, the grouping's order had
    kept "a (1).jpg", a copy, over the original)."""
    from dataclasses import replace

    ranked = replace(MIXED, keeper_ranking=(LIBRARY.path, BACKED_UP.path, ELSEWHERE.path,
                                            BACKED_UP_DEEP.path))
    assert min((BACKED_UP, BACKED_UP_DEEP), key=keeper_order_key) == BACKED_UP_DEEP
    assert PROTECTION.with_keeper(ranked).keeper == BACKED_UP.path


def test_choose_keepers_ranks_every_member_best_first() -> None:
    from imgdedupe.core.groups.keeper_rules import KeeperChain, choose_keepers
    from imgdedupe.core.images.photo_facts import PhotoFacts

    g = group(member("/p/a (1).jpg", wh=(1000, 750)), member("/p/a.jpg", wh=(1000, 750)),
              member("/p/a_small.jpg", wh=(500, 375)), member("/p/b.jpg", wh=(2000, 1500)))
    (chosen,) = choose_keepers([g], KeeperChain(("pixels", "name", "path")),
                               lambda m: PhotoFacts("JPEG"))
    assert chosen.keeper_ranking == ("/p/b.jpg", "/p/a.jpg", "/p/a (1).jpg", "/p/a_small.jpg")
    assert chosen.keeper == chosen.keeper_ranking[0]

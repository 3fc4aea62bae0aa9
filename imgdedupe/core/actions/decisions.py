"""Which files the user has marked for deletion, and the rules that mark them.

The one invariant: no group may ever have every member marked. Every way
of marking (a toggle, a rule, "apply the suggestion to all", a regroup at
another threshold) goes through this class, which refuses or repairs
anything that would break it. The delete step checks it again on disk.

Safety follows the tier: a rule applied to all groups marks only inside
exact and near-duplicate groups unless the caller names similar shots
too; a similar shot is another photo, marked only when the user asks.

A photo in a protected folder (groups.protection) is never marked, by
any path: mark() refuses it, a rule keeps it, and new protection unmarks
what it now covers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Sequence
from enum import Enum

from imgdedupe.core.groups.keeper import keeper_order_key
from imgdedupe.core.groups.protection import NO_PROTECTION, Protection
from imgdedupe.core.records import DELETABLE_TIERS, Group, Member


class Rule(Enum):
    """Auto-select: keep the best member by one criterion, mark the rest."""

    SUGGESTED = "the suggested keeper"
    HIGHEST_RESOLUTION = "the highest resolution"
    LARGEST_FILE = "the largest file"
    OLDEST = "the oldest"
    NEWEST = "the newest"
    IN_FOLDER = "the ones in a chosen folder…"  # "…": it asks for the folder


def _in_folder(member: Member, folder: str) -> bool:
    folder = os.path.join(os.path.abspath(folder), "")
    return os.path.abspath(member.path).startswith(folder)


def best_member(group: Group, rule: Rule, folder: str | None = None) -> Member | None:
    """The member ``rule`` keeps; ties go to the suggested keeper (the
    keeper rules' choice, which prefers the original: "the highest
    resolution" keeps the upright copy, not a turned one of equal pixels),
    then to a fixed order, so the choice is deterministic. None when
    IN_FOLDER matches none (IN_FOLDER keeps every member in the folder: see
    kept_members)."""
    members: Sequence[Member] = group.members
    key: Callable[[Member], tuple]

    def tie(m: Member) -> tuple:
        return (m.path != group.keeper, *keeper_order_key(m))

    if rule is Rule.SUGGESTED:
        return next(m for m in members if m.path == group.keeper)
    if rule is Rule.HIGHEST_RESOLUTION:
        def key(m: Member) -> tuple:
            return (-(m.width or 0) * (m.height or 0), *tie(m))
    elif rule is Rule.LARGEST_FILE:
        def key(m: Member) -> tuple:
            return (-m.size, *tie(m))
    elif rule is Rule.OLDEST:
        def key(m: Member) -> tuple:
            return (m.mtime_ns, *tie(m))
    elif rule is Rule.NEWEST:
        def key(m: Member) -> tuple:
            return (-m.mtime_ns, *tie(m))
    else:
        if folder is None:
            raise ValueError("the folder rule needs a folder")
        members = [m for m in members if _in_folder(m, folder)]
        if not members:
            return None
        key = tie
    return min(members, key=key)


def kept_members(group: Group, rule: Rule, folder: str | None = None) -> set[str]:
    """The paths ``rule`` keeps in ``group``: one member, or for IN_FOLDER
    every member inside the folder ("Keep the images in this folder": two
    copies both inside it are both kept; the folder is the user's, not a
    place to pick one from). Empty when the rule keeps none."""
    if rule is Rule.IN_FOLDER:
        if folder is None:
            raise ValueError("the folder rule needs a folder")
        return {m.path for m in group.members if _in_folder(m, folder)}
    best = best_member(group, rule, folder)
    return {best.path} if best is not None else set()


class Decisions:
    """Paths marked for deletion, checked against the groups on show."""

    def __init__(self, groups: Iterable[Group] = (),
                 protection: Protection = NO_PROTECTION) -> None:
        self._marked: set[str] = set()
        self._groups: tuple[Group, ...] = ()
        self._group_index: dict[str, list[int]] = {}
        self.protection = protection
        self.set_groups(groups)

    def copy(self) -> Decisions:
        """Another Decisions with the same groups, protection and marks (to
        try something out, e.g. what "Accept all" would mark)."""
        other = Decisions(protection=self.protection)
        other._groups, other._group_index = self._groups, self._group_index
        other._marked = set(self._marked)
        return other

    def set_protection(self, protection: Protection) -> list[str]:
        """Protect other folders; returns the paths it unmarked (every mark
        on a photo the new folders cover)."""
        self.protection = protection
        dropped = sorted(p for p in self._marked if protection.covers(p))
        self._marked.difference_update(dropped)
        return dropped

    def is_protected(self, path: str) -> bool:
        return self.protection.covers(path)

    @property
    def marked(self) -> frozenset[str]:
        return frozenset(self._marked)

    def is_marked(self, path: str) -> bool:
        return path in self._marked

    def set_groups(self, groups: Iterable[Group]) -> list[str]:
        """Adopt new groups (a rescan or the slider). Marks on files that no
        longer sit in any group are dropped; a group that would now be
        wholly marked keeps its suggested keeper. Returns the paths unmarked."""
        self._groups = tuple(groups)
        self._group_index = {}
        for n, group in enumerate(self._groups):
            for member in group.members:
                self._group_index.setdefault(member.path, []).append(n)
        shown = {p for p in self._group_index if not self.protection.covers(p)}
        dropped = sorted(self._marked - shown)
        self._marked &= shown
        for group in self._groups:
            if all(m.path in self._marked for m in group.members):
                self._marked.discard(group.keeper)
                dropped.append(group.keeper)
        return dropped

    def _groups_of(self, path: str) -> list[Group]:
        return [self._groups[n] for n in self._group_index.get(path, ())]

    def can_mark(self, path: str) -> bool:
        """False when marking ``path`` would leave one of its groups empty,
        or when ``path`` is protected."""
        if self.protection.covers(path):
            return False
        for group in self._groups_of(path):
            others = [m for m in group.members if m.path != path]
            if all(m.path in self._marked for m in others):
                return False
        return True

    def mark(self, path: str) -> bool:
        """Mark for deletion; False (and nothing changes) if it would mark a
        whole group, if ``path`` is protected, or if it is in no group on
        show (a mark is only ever on a file the user can see marked)."""
        if path in self._marked:
            return True
        if path not in self._group_index or not self.can_mark(path):
            return False
        self._marked.add(path)
        return True

    def keep(self, path: str) -> None:
        self._marked.discard(path)

    def toggle(self, path: str) -> bool:
        """Flip the mark; returns whether the path is now marked."""
        if path in self._marked:
            self.keep(path)
            return False
        return self.mark(path)

    def apply_rule(self, group: Group, rule: Rule, folder: str | None = None) -> bool:
        """Keep ``rule``'s choice in ``group`` and mark the rest, except
        protected photos. False when the rule finds no member to keep (then
        nothing changes)."""
        if rule is Rule.SUGGESTED:  # a protected member is the one to keep
            group = self.protection.with_keeper(group)
        kept = kept_members(group, rule, folder)
        if not kept:
            return False
        for member in group.members:
            self._marked.discard(member.path)
        for member in group.members:
            if member.path not in kept and not self.protection.covers(member.path) \
                    and member.path in self._group_index:  # only ever a file on show
                self._marked.add(member.path)
        # A file in two groups: repair the others it touches (not every
        # group: "Accept all" over 100k groups would be quadratic).
        for member in group.members:
            for other in self._groups_of(member.path):
                if all(m.path in self._marked for m in other.members):
                    self._marked.discard(other.keeper)
        return True

    def apply_rule_to_all(self, rule: Rule, folder: str | None = None,
                          tiers: Collection[str] = DELETABLE_TIERS) -> int:
        """Apply to every group of ``tiers`` (by default exact copies and
        near-duplicates, never similar shots); returns how many groups it
        changed."""
        return sum(self.apply_rule(g, rule, folder) for g in self._groups if g.tier in tiers)

    def suggested_marks(self, group: Group) -> list[str]:
        """What accepting ``group``'s suggestion marks: every member but the
        suggested keeper and the protected ones."""
        group = self.protection.with_keeper(group)
        return [m.path for m in group.members
                if m.path != group.keeper and not self.protection.covers(m.path)]

    def accept_suggestion(self, group: Group, similar_shots: bool = False) -> bool:
        """Keep the suggested keeper, mark the rest (never a protected photo).
        A similar-shot group is other photos: left alone (False) unless
        ``similar_shots`` says the user asked."""
        if not group.deletable and not similar_shots:
            return False
        return self.apply_rule(group, Rule.SUGGESTED)

    def clear(self, group: Group | None = None) -> None:
        paths = {m.path for m in group.members} if group else set(self._marked)
        self._marked -= paths

    def marked_in(self, group: Group) -> list[Member]:
        return [m for m in group.members if m.path in self._marked]

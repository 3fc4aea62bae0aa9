"""Protected folders: "never mark anything here" (a backup, a master library).

A protected photo is never marked for deletion: actions.decisions refuses
every mark on one, whichever rule, key or "Apply to all" asks. A group
with protected members suggests keeping one of them (a copy of the backup
elsewhere is the one to let go), and a group whose members are all
protected has nothing to act on, so the window and the command line hide
it unless asked.

A folder may be any folder, inside a scanned one or not; it covers
everything below it. Folders are compared both as given and with symbolic
links resolved (a backup protected through a link, `--protect ~/bk`, or
scanned through one, is the same folder), and so is the folder a photo
lies in; a photo file that is itself a link is not followed: a link into a
protected folder is a file of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace

from imgdedupe.core.files.companions import RAW_EXTENSIONS
from imgdedupe.core.groups.keeper import keeper_order_key
from imgdedupe.core.records import Group, Member


def _camera_original(member: Member) -> bool:
    """A RAW file, or a photo with its RAW beside it (files.companions)."""
    return os.path.splitext(member.path)[1].lower() in RAW_EXTENSIONS or \
        any(c.kind == "raw" for c in member.companions)


def _folder(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


@dataclass(frozen=True)
class Protection:
    """The protected folders, absolute, without duplicates, in order."""

    folders: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The compared forms, made once, and each path's answer remembered:
        # covers() runs for every member of every listed group at each mark
        # (the review's summary line), 300k calls at 100k groups.
        forms = dict.fromkeys(form for f in self.folders
                              for form in (_folder(f), _folder(os.path.realpath(f))))
        object.__setattr__(self, "_prefixes", tuple(
            (form, os.path.join(form, "")) for form in forms))
        object.__setattr__(self, "_answers", {})

    @classmethod
    def of(cls, folders: Iterable[str]) -> Protection:
        unique: list[str] = []
        for folder in folders:
            folder = os.path.abspath(folder)
            if folder not in unique:
                unique.append(folder)
        return cls(tuple(unique))

    def __bool__(self) -> bool:
        return bool(self.folders)

    def covers(self, path: str) -> bool:
        """Whether ``path`` lies in (or is) a protected folder."""
        if not self.folders:
            return False
        answers: dict[str, bool] = self._answers  # type: ignore[attr-defined]
        answer = answers.get(path)
        if answer is None:
            if len(answers) > 2_000_000:  # a bound, far above any library's groups
                answers.clear()
            head, name = os.path.split(_folder(path))
            targets = {os.path.join(head, name),
                       os.path.join(_folder(os.path.realpath(head)), name)}
            answer = answers[path] = any(
                target == folder or target.startswith(prefix) for target in targets
                for folder, prefix in self._prefixes)  # type: ignore[attr-defined]
        return answer

    def protected_in(self, group: Group) -> list[str]:
        return [m.path for m in group.members if self.covers(m.path)]

    def all_protected(self, group: Group) -> bool:
        """A group with nothing to act on: every member is protected."""
        return bool(self.folders) and all(self.covers(m.path) for m in group.members)

    def with_keeper(self, group: Group) -> Group:
        """``group`` whose suggested keeper is protected when any member is
        (the best protected member by the keeper rules' ranking, or by the
        grouping's own order where no rules ran), else unchanged. The
        reason says so: the chain's reason was about the member it chose,
        which is no longer the keeper."""
        protected = [m for m in group.members if self.covers(m.path)]
        if not protected or any(m.path == group.keeper for m in protected):
            return group
        kept = next((m for m in group.members if m.path == group.keeper), None)
        if kept is not None and _camera_original(kept) and \
                not any(_camera_original(m) for m in protected):
            # A protected JPEG copy never displaces the camera's RAW (or the
            # photo shot with it): the RAW exists nowhere else. Both stay.
            return group
        displaced = os.path.basename(group.keeper)
        covered = {m.path for m in protected}
        # The best protected photo by the keeper rules' own ranking, where
        # they ran; else by the grouping's order (pixels, size, age).
        best = next((p for p in group.keeper_ranking if p in covered), None) or \
            min(protected, key=keeper_order_key).path
        return replace(group, keeper=best,
                       keeper_reason=f"kept: in a protected folder (the rules chose "
                                     f"{displaced}, which is not)")

    def apply(self, groups: Iterable[Group]) -> tuple[Group, ...]:
        """Every group with a protected keeper where it has protected members."""
        if not self.folders:
            return tuple(groups)
        return tuple(self.with_keeper(g) for g in groups)


NO_PROTECTION = Protection()

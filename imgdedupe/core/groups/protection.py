"""Protected folders: "never mark anything here" (a backup, a master library).

A protected photo is never marked for deletion: actions.decisions refuses
every mark on one, whichever rule, key or "Apply to all" asks. A group
with protected members suggests keeping one of them (a copy of the backup
elsewhere is the one to let go), and a group whose members are all
protected has nothing to act on, so the window and the command line hide
it unless asked.

A folder may be any folder, inside a scanned one or not; it covers
everything below it. Paths are compared as absolute paths, never resolved
through symbolic links: a link into a protected folder is a file of its
own, and protecting it would need its own folder protected.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace

from imgdedupe.core.groups.keeper import keeper_order_key
from imgdedupe.core.records import Group


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
        object.__setattr__(self, "_prefixes", tuple(
            (_folder(f), os.path.join(_folder(f), "")) for f in self.folders))
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
            target = _folder(path)
            answer = answers[path] = any(target == folder or target.startswith(prefix)
                                         for folder, prefix in self._prefixes)  # type: ignore[attr-defined]
        return answer

    def protected_in(self, group: Group) -> list[str]:
        return [m.path for m in group.members if self.covers(m.path)]

    def all_protected(self, group: Group) -> bool:
        """A group with nothing to act on: every member is protected."""
        return bool(self.folders) and all(self.covers(m.path) for m in group.members)

    def with_keeper(self, group: Group) -> Group:
        """``group`` whose suggested keeper is protected when any member is
        (the best protected member by the grouping's own order: pixels, size,
        age), else unchanged. The reason says so: the chain's reason was
        about the member it chose, which is no longer the keeper."""
        protected = [m for m in group.members if self.covers(m.path)]
        if not protected or any(m.path == group.keeper for m in protected):
            return group
        displaced = os.path.basename(group.keeper)
        return replace(group, keeper=min(protected, key=keeper_order_key).path,
                       keeper_reason=f"kept: in a protected folder (the rules chose "
                                     f"{displaced}, which is not)")

    def apply(self, groups: Iterable[Group]) -> tuple[Group, ...]:
        """Every group with a protected keeper where it has protected members."""
        if not self.folders:
            return tuple(groups)
        return tuple(self.with_keeper(g) for g in groups)


NO_PROTECTION = Protection()

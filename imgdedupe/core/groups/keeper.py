"""A quick, fixed keeper order from the members' records alone: the
grouping's tie-break and the keeper a group is first made with.

The keeper a user sees is chosen afterwards by the configurable chain of
groups.keeper_rules (which may read EXIF), on every scan and regroup. The
engine only *suggests* a keeper; nothing here deletes anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from imgdedupe.core.records import Member


def keeper_order_key(member: Member) -> tuple:
    """Sort key: best keeper first.

    Highest resolution, then largest file (less compressed), then oldest
    (most likely the original), then path, so ties are deterministic.
    """
    pixels = (member.width or 0) * (member.height or 0)
    return (-pixels, -member.size, member.mtime_ns, member.path)


def suggest_keeper(members: Sequence[Member]) -> str:
    if not members:
        raise ValueError("a group has at least one member")
    return min(members, key=keeper_order_key).path

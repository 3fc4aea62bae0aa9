"""Ignore marks: the user's word that photos are not duplicates.

The window's "Not duplicates" makes one. A mark is keyed by the content
hashes of its photos (records.IgnoreMark), so renaming or moving a file
keeps it; the scan drops every pair whose two photos share a mark
(groups.graph.groups_at). Marks are user decisions: the store migrates
them, never drops them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from imgdedupe.core.actions.trashing import ActionError
from imgdedupe.core.files.hashing import content_hash
from imgdedupe.core.records import FileLike
from imgdedupe.core.storage.store import Store


def _digest(item: str | FileLike, store: Store | None = None) -> str:
    known = None if isinstance(item, str) else getattr(item, "content_hash", None)
    if known is not None:
        return known
    path = item if isinstance(item, str) else item.path
    before = os.stat(path)
    digest = content_hash(path)
    after = os.stat(path)
    if store is not None and (before.st_size, before.st_mtime_ns) == (after.st_size,
                                                                      after.st_mtime_ns):
        store.remember_content_hash(path, after.st_size, after.st_mtime_ns, digest)
    return digest


def add_ignore_mark(store: Store, members: Iterable[str | FileLike]) -> int:
    """Remember that these files are not duplicates of each other, by
    content hash so renames and moves keep the mark. Returns the mark id.
    Raises DecodeError when a file cannot be read to hash it."""
    digests = frozenset(_digest(m, store) for m in members)
    if len(digests) < 2:
        raise ActionError("these files have the same bytes: they are duplicates by definition")
    for mark_id, existing in store.ignore_marks().items():
        if existing == digests:
            return mark_id
    return store.add_ignore_mark(sorted(digests))


def remove_ignore_marks(store: Store, mark_id: int | None = None,
           members: Iterable[str | FileLike] = ()) -> int:
    """Forget one mark by id, and/or every mark that holds two or more of
    ``members``' contents. Returns how many marks were removed."""
    removed = 0
    if mark_id is not None:
        removed += store.remove_ignore_mark(mark_id)
    digests = {_digest(m) for m in members}
    if digests:
        for other, existing in store.ignore_marks().items():
            if len(existing & digests) >= 2:
                removed += store.remove_ignore_mark(other)
    return removed

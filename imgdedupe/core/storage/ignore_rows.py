"""The "Not duplicates" marks (schema version 2's user decisions): each a
set of content hashes the user said are not duplicates of each other.

A mixin of store.Store, kept apart so store.py stays readable; the SQL is
still only the storage package's. Marks are user decisions: written
durably, migrated, never dropped by the cache's housekeeping.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import NamedTuple


class IgnoreMarkRow(NamedTuple):
    """One mark as the window lists it: when it was made, its contents, and
    the files the cache knows with those contents (by path; a content no
    longer on disk has none)."""

    mark_id: int
    created: float
    content_hashes: frozenset[str]
    paths: tuple[str, ...]


class IgnoreRows:
    _conn: sqlite3.Connection
    _durable: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def add_ignore_mark(self, content_hashes: Iterable[str]) -> int:
        with self._durable() as conn:
            cur = conn.execute("INSERT INTO ignore_marks(created) VALUES (?)", (time.time(),))
            mark_id = int(cur.lastrowid or 0)
            conn.executemany("INSERT OR IGNORE INTO ignore_members(mark_id, content_hash) "
                             "VALUES (?, ?)", ((mark_id, h) for h in content_hashes))
        return mark_id

    def remember_content_hash(self, path: str, size: int, mtime_ns: int, digest: str) -> None:
        """A mark's file hashed now: its row learns the hash for exactly that
        size and mtime (as a scan's hashing would), so the list of hidden
        groups can name it. A row of another size or mtime is left alone."""
        with self._durable() as conn:
            conn.execute("UPDATE files SET content_hash = ? "
                         "WHERE path = ? AND size = ? AND mtime_ns = ?",
                         (digest, os.fsencode(path), size, mtime_ns))

    def remove_ignore_mark(self, mark_id: int) -> bool:
        with self._durable() as conn:
            cur = conn.execute("DELETE FROM ignore_marks WHERE id = ?", (mark_id,))
        return cur.rowcount > 0

    def ignore_marks(self) -> dict[int, frozenset[str]]:
        """Mark id -> the content hashes the user said are not duplicates.
        ``ignore_marks().values()`` is what ``graph.groups_at`` takes."""
        marks: dict[int, set[str]] = {}
        for mark_id, digest in self._conn.execute(
                "SELECT mark_id, content_hash FROM ignore_members ORDER BY mark_id"):
            marks.setdefault(mark_id, set()).add(digest)
        return {k: frozenset(v) for k, v in marks.items()}

    def ignore_mark_rows(self) -> list[IgnoreMarkRow]:
        """Every mark, newest first, with the paths of its contents (one
        pass: each member row, with the files that hold its content)."""
        hashes: dict[int, set[str]] = {}
        paths: dict[int, list[str]] = {}
        for mark_id, digest, path in self._conn.execute(
                "SELECT m.mark_id, m.content_hash, f.path FROM ignore_members m "
                "LEFT JOIN files f ON f.content_hash = m.content_hash ORDER BY f.path"):
            hashes.setdefault(mark_id, set()).add(digest)
            if path is not None:  # paths are stored as bytes
                paths.setdefault(mark_id, []).append(os.fsdecode(path))
        return [IgnoreMarkRow(mark_id, created, frozenset(hashes.get(mark_id, ())),
                              tuple(paths.get(mark_id, ())))
                for mark_id, created in self._conn.execute(
                    "SELECT id, created FROM ignore_marks ORDER BY created DESC, id DESC")]

"""The verification stage's rows (schema version 4): each file's
verification picture and capture time, and each verified pair's evidence.

A mixin of store.Store, kept apart so store.py stays readable; the SQL is
still only the storage package's. Both kinds of row carry the version of
the algorithm that made them: a row of another version reads as missing,
so an upgrade recomputes instead of trusting old evidence.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager

Picture = tuple[bytes, float | None]  # (JPEG, capture time or None)


class VerificationRows:
    _conn: sqlite3.Connection
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _write_batches: Callable[[str, Iterable[tuple]], None]

    def put_pictures(self, version: str,
                     rows: Iterable[tuple[int, bytes, float | None]]) -> None:
        """Store (file_id, picture, capture time)."""
        self._write_batches(
            "INSERT OR REPLACE INTO pictures(file_id, version, picture, taken) "
            "VALUES (?, ?, ?, ?)", ((i, version, p, t) for i, p, t in rows))

    def put_hashes(self, rows: Iterable[tuple[int, bytes]]) -> None:
        """Store (file_id, quarter-turn hashes) beside a stored picture."""
        self._write_batches("UPDATE pictures SET hashes = ? WHERE file_id = ?",
                            ((h, i) for i, h in rows))

    def picture_hashes(self, version: str, file_ids: Sequence[int]
                       ) -> dict[int, bytes | None]:
        """Each stored picture's quarter-turn hashes (None: not made yet)."""
        return {row[0]: row[1] for row in self._chunked(
            "SELECT file_id, hashes FROM pictures WHERE version = ? AND file_id IN ({})",
            version, file_ids)}

    def pictures(self, version: str, file_ids: Sequence[int]) -> dict[int, Picture]:
        return {row[0]: (row[1], row[2]) for row in self._chunked(
            "SELECT file_id, picture, taken FROM pictures WHERE version = ? AND file_id IN ({})",
            version, file_ids)}

    def capture_times(self, file_ids: Sequence[int]) -> dict[int, float | None]:
        """Capture times of files that have a picture of any version."""
        return {row[0]: row[1] for row in self._chunked(
            "SELECT file_id, taken FROM pictures WHERE file_id IN ({})", None, file_ids)}

    def put_evidence(self, version: str, rows: Iterable[tuple[int, int, bytes]]) -> None:
        """Store (file_a, file_b, evidence) with file_a < file_b."""
        self._write_batches(
            "INSERT OR REPLACE INTO pair_evidence(file_a, file_b, version, evidence) "
            "VALUES (?, ?, ?, ?)", ((a, b, version, e) for a, b, e in rows))

    def evidence(self, version: str, file_ids: Sequence[int]
                 ) -> dict[tuple[int, int], bytes]:
        """The stored evidence of every pair of ``version`` whose first
        file is in ``file_ids``."""
        return {(row[0], row[1]): row[2] for row in self._chunked(
            "SELECT file_a, file_b, evidence FROM pair_evidence "
            "WHERE version = ? AND file_a IN ({})", version, file_ids)}

    def _chunked(self, sql: str, version: str | None, ids: Sequence[int]) -> Iterator[tuple]:
        ids = list(ids)
        for start in range(0, len(ids), 900):  # SQLite's variable limit
            chunk = ids[start:start + 900]
            args: list[object] = [] if version is None else [version]
            yield from self._conn.execute(sql.format(",".join("?" * len(chunk))), args + chunk)

"""The cache's queries: the ``Store`` class, one connection's reads and writes.

Rows are keyed by path + size + mtime_ns, so an unchanged file is never
hashed, decoded or embedded twice. Vectors are float16 blobs keyed by
(file, model id): vectors of different models are never mixed. Paths are
stored as the bytes ``os.fsencode`` gives, because file names that are not
valid UTF-8 cannot be stored as SQLite TEXT.

Opening the file (its pragmas, the schema and its migrations, what to do
with a damaged or unusable file) is db.py's: the queries here assume a
connection that already has the current schema. Between them the two
modules hold all of the app's SQL.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, cast

import numpy as np

from imgdedupe.core.errors import DatabaseError
from imgdedupe.core.records import ImageFile
from imgdedupe.core.storage.db import (
    STAMP,
    DatabaseRebuilt,
    connect,
    guard_queries,
    is_damage,
    rebuild,
    unusable,
)
from imgdedupe.core.storage.ignore_rows import IgnoreRows
from imgdedupe.core.storage.verification_rows import VerificationRows

log = logging.getLogger(__name__)

BATCH = 500  # rows per transaction: fewer fsyncs, yet a crash loses little


class CachedFile(NamedTuple):
    """A file row as the cache knows it after ``sync_files``. A named tuple,
    not a frozen dataclass: a rescan builds one per file, and a frozen
    dataclass costs 0.7 us more each (70 ms for 100k files)."""

    file_id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    width: int | None
    height: int | None
    error_reason: str | None
    error_detail: str | None


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One file of a trash action. ``state``: pending (about to move),
    done, failed (not moved), undone, unknown (gone, place not known)."""

    row_id: int
    batch_id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    state: str
    expected_path: str | None  # where the backend said it would put it
    trash_path: str | None
    reason: str | None
    updated: float


@dataclass(frozen=True)
class BatchRow:
    batch_id: int
    created: float
    description: str
    states: dict[str, int]  # journal rows per state
    bytes_done: int  # bytes still in the trash (state done)


def _encode(path: str) -> bytes:
    return os.fsencode(path)


def _decode(blob: bytes) -> str:
    return os.fsdecode(blob)


def to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f2").tobytes()


def from_blob(blob: bytes, dim: int) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f2").reshape(-1, dim)


@guard_queries  # damage a query finds is handled like damage found at open
class Store(VerificationRows, IgnoreRows):
    """One connection; open one Store per thread (sqlite3 objects must not
    cross threads)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._conn = connect(self.path)  # raises DatabaseError

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._failure(exc) from exc
        try:
            yield self._conn
        except sqlite3.Error as exc:
            # A full disk or a read-only device fails the statement, not
            # the file: SQLite rolls back (it may already have) and the
            # cache stays as the last commit left it. Damage: _failure.
            self._rollback()
            raise self._failure(exc) from exc
        except BaseException:
            self._rollback()
            raise
        try:
            self._conn.execute(STAMP)  # names this database in the -wal (db.STAMP)
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._failure(exc) from exc

    def _failure(self, exc: sqlite3.Error) -> DatabaseError:
        """The sentence to raise for a failed statement. A damaged file is
        moved aside and rebuilt first (db.rebuild); what was running stops."""
        if not is_damage(exc):
            return unusable(self.path, exc)
        self._rollback()
        self._conn.close()
        self._conn, sentence = rebuild(self.path, exc)
        return DatabaseRebuilt(f"{sentence}; what was running stopped: run it again")

    def _rollback(self) -> None:
        if self._conn.in_transaction:  # SQLite ends some failed ones itself
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error as exc:  # the original error is the one to report
                log.warning("rollback failed on %s: %s", self.path, exc)

    def _write_batches(self, sql: str, rows: Iterable[tuple]) -> None:
        batch: list[tuple] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                with self._transaction() as conn:
                    conn.executemany(sql, batch)
                batch = []
        if batch:
            with self._transaction() as conn:
                conn.executemany(sql, batch)

    # -- files ---------------------------------------------------------
    def sync_files(self, files: Sequence[ImageFile]) -> list[CachedFile]:
        """Record the walked files and return their cached state, in order.

        A file whose size or mtime changed loses its hash, size, error and
        vectors: it is a different file now.
        """
        return self.sync_tree((), files)

    def sync_tree(self, roots: Sequence[str], files: Sequence[ImageFile]) -> list[CachedFile]:
        """``sync_files``, and forget the files below ``roots`` that this
        walk did not see (their vectors go with them), in one pass;
        ``files`` holds each path once, as the walk yields them.

        The rows below the roots come from one range scan per root of the
        path index, not from two lookups per file: on a rescan of 100k
        cached files this took the sync (and purge) from 0.9 s to 0.25 s.
        """
        now = time.time()
        keys = [_encode(f.path) for f in files]
        known = self._rows_below(roots)
        rows = list(map(known.get, keys))
        outside = [key for key, row in zip(keys, rows, strict=True) if row is None]
        matched = len(keys) - len(outside)
        stale: list[tuple[int]] = []
        if len(known) > matched:  # rows below the roots that the walk missed
            seen = set(keys)
            stale = [(row[0],) for key, row in known.items() if key not in seen]
        if outside:  # walked files outside the ranges (file roots), new files
            found = self._rows_at(outside)
            rows = [found.get(key) if row is None else row
                    for key, row in zip(keys, rows, strict=True)]
        changed: list[tuple] = []
        new: dict[bytes, tuple] = {}
        for n, (key, f, row) in enumerate(zip(keys, files, rows, strict=True)):
            if row is None:
                new[key] = (key, f.size, f.mtime_ns, now)
            elif row[1] != f.size or row[2] != f.mtime_ns:
                changed.append((f.size, f.mtime_ns, now, key))
                rows[n] = (row[0], f.size, f.mtime_ns, None, None, None, None, None)
        self._record_changes(changed, list(new.values()), stale)
        if new:
            found = self._rows_at(list(new))
            rows = [found[key] if row is None else row
                    for key, row in zip(keys, rows, strict=True)]
        make = CachedFile._make
        complete = cast(list[tuple], rows)  # every file has its row by now
        return [make((r[0], f.path, *r[1:])) for r, f in zip(complete, files, strict=True)]

    _ROW = "id, size, mtime_ns, content_hash, width, height, error_reason, error_detail"

    def _rows_below(self, roots: Sequence[str]) -> dict[bytes, tuple]:
        """path -> row (see _ROW) of every file below the roots."""
        rows: dict[bytes, tuple] = {}
        for root in roots:
            prefix = _encode(os.path.join(os.path.abspath(root), ""))
            # Byte range [prefix, prefix + 0xff): every path below the root.
            cursor = self._conn.execute(
                f"SELECT path, {self._ROW} FROM files WHERE path >= ? AND path < ?",
                (prefix, prefix + b"\xff"))
            rows.update((row[0], row[1:]) for row in cursor)
        return rows

    def has_files_in(self, folder: str) -> bool:
        """Whether a scan has seen a file directly in ``folder`` (its
        subfolders do not count: scanning them does not scan it)."""
        prefix = _encode(os.path.join(os.path.abspath(folder), ""))
        return self._conn.execute(
            "SELECT 1 FROM files WHERE path >= ? AND path < ? "
            "AND instr(substr(path, ?), ?) = 0 LIMIT 1",
            (prefix, prefix + b"\xff", len(prefix) + 1, _encode(os.sep))).fetchone() is not None

    def _rows_at(self, keys: Sequence[bytes]) -> dict[bytes, tuple]:
        """path -> row (see _ROW) of the given encoded paths that are known."""
        rows: dict[bytes, tuple] = {}
        for start in range(0, len(keys), 900):  # SQLite's variable limit
            chunk = keys[start:start + 900]
            marks = ",".join("?" * len(chunk))
            cursor = self._conn.execute(
                f"SELECT path, {self._ROW} FROM files WHERE path IN ({marks})", chunk)
            rows.update((row[0], row[1:]) for row in cursor)
        return rows

    def _record_changes(self, changed: list[tuple], new: list[tuple],
                        stale: list[tuple[int]]) -> None:
        self._write_batches("DELETE FROM embeddings WHERE file_id = "
                            "(SELECT id FROM files WHERE path = ?)", ((c[3],) for c in changed))
        self._write_batches(
            "UPDATE files SET size = ?, mtime_ns = ?, last_seen = ?, content_hash = NULL, "
            "width = NULL, height = NULL, error_reason = NULL, error_detail = NULL "
            "WHERE path = ?",
            changed,
        )
        # OR IGNORE: another writer (a second process, or the window's own
        # connection) may have added the row since _rows_at looked.
        self._write_batches(
            "INSERT OR IGNORE INTO files(path, size, mtime_ns, last_seen) VALUES (?, ?, ?, ?)",
            new)
        self._write_batches("DELETE FROM files WHERE id = ?", stale)


    def cached_hash(self, path: str, size: int, mtime_ns: int) -> str | None:
        """The content hash a scan computed for ``path`` as it was at that
        size and mtime, if it computed one (files sharing a size)."""
        row = self._conn.execute(
            "SELECT content_hash FROM files WHERE path = ? AND size = ? AND mtime_ns = ?",
            (_encode(path), size, mtime_ns)).fetchone()
        return None if row is None else row[0]

    def set_hashes(self, rows: Iterable[tuple[int, str]]) -> None:
        self._write_batches("UPDATE files SET content_hash = ? WHERE id = ?",
                            ((h, i) for i, h in rows))

    def set_sizes(self, rows: Iterable[tuple[int, int, int]]) -> None:
        """Store (file_id, width, height) of decoded images."""
        self._write_batches("UPDATE files SET width = ?, height = ? WHERE id = ?",
                            ((w, h, i) for i, w, h in rows))

    def set_errors(self, rows: Iterable[tuple[int, str, str]]) -> None:
        """Remember why a file failed, so an unchanged bad file is reported
        again without being decoded again."""
        self._write_batches("UPDATE files SET error_reason = ?, error_detail = ? WHERE id = ?",
                            ((r, d, i) for i, r, d in rows))

    # -- vectors -------------------------------------------------------
    def put_vectors(self, model_id: str,
                    rows: Iterable[tuple[int, np.ndarray, np.ndarray | None]]) -> None:
        """Store (file_id, upright (dim,), rotated (3, dim) or None)."""
        self._write_batches(
            "INSERT OR REPLACE INTO embeddings(file_id, model_id, upright, rotated) "
            "VALUES (?, ?, ?, ?)",
            ((i, model_id, to_blob(u), None if r is None else to_blob(r)) for i, u, r in rows),
        )

    def get_vectors(self, model_id: str, file_ids: Sequence[int], dim: int
                    ) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
        out: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        for start in range(0, len(file_ids), 900):
            chunk = list(file_ids[start:start + 900])
            marks = ",".join("?" * len(chunk))
            for file_id, upright, rotated in self._conn.execute(
                f"SELECT file_id, upright, rotated FROM embeddings WHERE model_id = ? "
                f"AND file_id IN ({marks})", [model_id, *chunk]
            ):
                out[file_id] = (
                    from_blob(upright, dim)[0],
                    None if rotated is None else from_blob(rotated, dim),
                )
        return out

    def vector_ids(self, model_id: str, rotations: bool) -> set[int]:
        """Files with a cached vector of ``model_id`` (and its rotations, if
        asked), from the covering indexes: no vector is read."""
        ids = {row[0] for row in self._conn.execute(
            "SELECT file_id FROM embeddings WHERE model_id = ?", (model_id,))}
        if rotations:
            ids.difference_update(row[0] for row in self._conn.execute(
                "SELECT file_id FROM embeddings WHERE model_id = ? AND rotated IS NULL",
                (model_id,)))
        return ids

    def vector_version(self, model_id: str) -> str:
        """Changes whenever a vector of ``model_id`` is written or deleted,
        and differs between databases: a key for what is derived from them."""
        epoch, changes = self._vector_changes(model_id)
        return f"{epoch}:{changes}"

    def _vector_changes(self, model_id: str) -> tuple[str, int]:
        """The database's epoch and the triggers' count of changes to the
        model's vectors."""
        (epoch,) = self._conn.execute(
            "SELECT value FROM cache_meta WHERE key = 'epoch'").fetchone()
        row = self._conn.execute(
            "SELECT value FROM cache_meta WHERE key = ?", (f"vectors:{model_id}",)).fetchone()
        return str(epoch), 0 if row is None else int(row[0])

    def vector_counts(self, model_id: str) -> tuple[str, int, int]:
        """(the database's epoch, the change counter behind vector_version,
        how many vectors the model holds): what pairs.cache.Lineage compares."""
        epoch, changes = self._vector_changes(model_id)
        (rows,) = self._conn.execute(
            "SELECT COUNT(*) FROM embeddings WHERE model_id = ?", (model_id,)).fetchone()
        return epoch, changes, int(rows)

    def known_digest(self, key: str) -> str | None:
        """A file digest remembered under ``key`` (weights.DigestCache)."""
        row = self._conn.execute("SELECT value FROM cache_meta WHERE key = ?",
                                 (f"sha256:{key}",)).fetchone()
        return None if row is None else str(row[0])

    def remember_digest(self, key: str, digest: str) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO cache_meta VALUES (?, ?)",
                         (f"sha256:{key}", digest))

    def all_vectors(self, model_id: str, dim: int) -> tuple[list[CachedFile], np.ndarray]:
        """Every cached upright vector of one model, for "find similar"."""
        files: list[CachedFile] = []
        vectors: list[np.ndarray] = []
        for row in self._conn.execute(
            "SELECT f.id, f.path, f.size, f.mtime_ns, f.content_hash, f.width, f.height, "
            "e.upright FROM embeddings e JOIN files f ON f.id = e.file_id "
            "WHERE e.model_id = ? ORDER BY f.path", (model_id,)
        ):
            files.append(CachedFile(row[0], _decode(row[1]), row[2], row[3], row[4], row[5],
                                    row[6], None, None))
            vectors.append(from_blob(row[7], dim)[0])
        matrix = np.stack(vectors) if vectors else np.zeros((0, dim), dtype=np.float16)
        return files, matrix


    def counts(self) -> dict[str, int]:
        return {
            "files": self._conn.execute("SELECT count(*) FROM files").fetchone()[0],
            "embeddings": self._conn.execute("SELECT count(*) FROM embeddings").fetchone()[0],
        }

    # -- action journal (user decisions: see the version 2 migration) ---
    @contextmanager
    def _durable(self) -> Iterator[sqlite3.Connection]:
        # A journal row must reach the disk before the file moves, even on
        # power loss; WAL with synchronous=NORMAL only survives app crashes.
        self._conn.execute("PRAGMA synchronous = FULL")
        try:
            with self._transaction() as conn:
                yield conn
        finally:
            # Closed if a damaged file could not be rebuilt (_failure).
            with suppress(sqlite3.ProgrammingError):
                self._conn.execute("PRAGMA synchronous = NORMAL")

    def begin_batch(self, description: str = "") -> int:
        with self._durable() as conn:
            cur = conn.execute("INSERT INTO action_batches(created, description) VALUES (?, ?)",
                               (time.time(), description))
        return int(cur.lastrowid or 0)

    def journal_pending(self, batch_id: int, path: str, size: int, mtime_ns: int,
                        content_hash: str | None) -> int:
        with self._durable() as conn:
            cur = conn.execute(
                "INSERT INTO action_journal(batch_id, path, size, mtime_ns, content_hash, "
                "state, updated) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                (batch_id, _encode(path), size, mtime_ns, content_hash, time.time()))
        return int(cur.lastrowid or 0)

    def journal_expect(self, row_id: int, expected_path: str) -> None:
        with self._durable() as conn:
            conn.execute("UPDATE action_journal SET expected_path = ?, updated = ? WHERE id = ?",
                         (_encode(expected_path), time.time(), row_id))

    def journal_set(self, row_id: int, state: str, trash_path: str | None = None,
                    reason: str | None = None) -> None:
        with self._durable() as conn:
            conn.execute(
                "UPDATE action_journal SET state = ?, trash_path = ?, reason = ?, updated = ? "
                "WHERE id = ?",
                (state, None if trash_path is None else _encode(trash_path), reason,
                 time.time(), row_id))

    def journal_rows(self, batch_id: int | None = None,
                     states: Sequence[str] | None = None) -> list[JournalRow]:
        where: list[str] = []
        args: list[int | str] = []
        if batch_id is not None:
            where.append("batch_id = ?")
            args.append(batch_id)
        if states is not None:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(states)
        sql = ("SELECT id, batch_id, path, size, mtime_ns, content_hash, state, expected_path, "
               "trash_path, reason, updated FROM action_journal")
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [JournalRow(r[0], r[1], _decode(r[2]), r[3], r[4], r[5], r[6],
                           None if r[7] is None else _decode(r[7]),
                           None if r[8] is None else _decode(r[8]), r[9], r[10])
                for r in self._conn.execute(sql + " ORDER BY id", args)]

    def batches(self, limit: int | None = None) -> list[BatchRow]:
        """Newest first."""
        rows = self._conn.execute(
            "SELECT id, created, description FROM action_batches ORDER BY id DESC LIMIT ?",
            (-1 if limit is None else limit,)).fetchall()
        out = []
        for batch_id, created, description in rows:
            states = dict(self._conn.execute(
                "SELECT state, count(*) FROM action_journal WHERE batch_id = ? GROUP BY state",
                (batch_id,)).fetchall())
            (done_bytes,) = self._conn.execute(
                "SELECT coalesce(sum(size), 0) FROM action_journal "
                "WHERE batch_id = ? AND state = 'done'", (batch_id,)).fetchone()
            out.append(BatchRow(batch_id, created, description, states, done_bytes))
        return out

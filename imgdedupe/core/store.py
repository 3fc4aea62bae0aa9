"""The SQLite cache: the only module that speaks SQL.

Rows are keyed by path + size + mtime_ns, so an unchanged file is never
hashed, decoded or embedded twice. Vectors are float16 blobs keyed by
(file, model id): vectors of different models are never mixed. Paths are
stored as the bytes ``os.fsencode`` gives, because file names that are not
valid UTF-8 cannot be stored as SQLite TEXT.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatabaseError
from .records import ImageFile

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BATCH = 500  # rows per transaction: fewer fsyncs, yet a crash loses little

# Ordered migrations; index i takes the schema from version i to i + 1.
# Version 1 holds cache tables only. Tables of user decisions (ignore lists,
# the action journal) must get real migrations, never a drop.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        path BLOB NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        content_hash TEXT,
        width INTEGER,
        height INTEGER,
        error_reason TEXT,
        error_detail TEXT,
        last_seen REAL NOT NULL
    );
    CREATE INDEX files_by_size ON files(size);
    CREATE TABLE embeddings (
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        model_id TEXT NOT NULL,
        upright BLOB NOT NULL,
        rotated BLOB,
        PRIMARY KEY (file_id, model_id)
    );
    CREATE INDEX embeddings_by_model ON embeddings(model_id);
    """,
)


@dataclass(frozen=True, slots=True)
class CachedFile:
    """A file row as the cache knows it after ``sync_files``."""

    file_id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    width: int | None
    height: int | None
    error_reason: str | None
    error_detail: str | None


def _encode(path: str) -> bytes:
    return os.fsencode(path)


def _decode(blob: bytes) -> str:
    return os.fsdecode(blob)


def to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f2").tobytes()


def from_blob(blob: bytes, dim: int) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f2").reshape(-1, dim)


class Store:
    """One connection; open one Store per thread (sqlite3 objects must not
    cross threads)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._conn = self._open_checked()

    # -- opening -------------------------------------------------------
    def _open_checked(self) -> sqlite3.Connection:
        parent = self.path.parent
        if not parent.is_dir():
            raise DatabaseError(
                f"the database folder {parent} does not exist; create it or choose another --db"
            )
        if not os.access(parent, os.W_OK):
            raise DatabaseError(
                f"the database folder {parent} is not writable; choose another --db")
        if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
            raise DatabaseError(f"the database {self.path} is not readable and writable")
        try:
            return self._connect_and_migrate()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise DatabaseError(
                    f"the database {self.path} is in use by another process") from exc
            # A cache is worth less than a working app: move the damaged
            # file aside (never delete it) and start again.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning("cache database %s is damaged (%s); moved it to %s and rebuilt it",
                        self.path, exc, aside)
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(self.path) + suffix)
                if src.exists():
                    os.replace(src, Path(str(aside) + suffix))
            try:
                return self._connect_and_migrate()
            except sqlite3.Error as exc2:
                raise DatabaseError(f"cannot create the database {self.path}: {exc2}") from exc2

    def _connect_and_migrate(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open the database {self.path}: {exc}") from exc
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # Reading the schema forces SQLite to parse the header, so a
            # file that is not a database fails here, not mid-scan.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            self._migrate(conn)
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            # Written by a newer imgdedupe. Every table is a pure cache, so
            # rebuilding is safe; the newer app will rebuild it again.
            log.warning("cache %s has schema %d (newer than %d); rebuilding it",
                        self.path, version, SCHEMA_VERSION)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DROP TABLE IF EXISTS embeddings")
            conn.execute("DROP TABLE IF EXISTS files")
            conn.execute("PRAGMA user_version = 0")
            conn.execute("COMMIT")
            version = 0
        for target in range(version, SCHEMA_VERSION):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

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
        except sqlite3.OperationalError as exc:
            raise DatabaseError(f"the database {self.path} is busy: {exc}") from exc
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._conn.execute("ROLLBACK")
            raise DatabaseError(f"cannot write to the database {self.path}: {exc}") from exc

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
        now = time.time()
        by_path = {_encode(f.path): f for f in files}
        known: dict[bytes, tuple] = {}
        paths = list(by_path)
        for start in range(0, len(paths), 900):  # SQLite's variable limit
            chunk = paths[start:start + 900]
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(
                f"SELECT path, id, size, mtime_ns FROM files WHERE path IN ({marks})", chunk
            ):
                known[row[0]] = row[1:]
        changed = [
            (f.size, f.mtime_ns, now, key)
            for key, f in by_path.items()
            if key in known and (known[key][1], known[key][2]) != (f.size, f.mtime_ns)
        ]
        self._write_batches("DELETE FROM embeddings WHERE file_id = "
                            "(SELECT id FROM files WHERE path = ?)", ((c[3],) for c in changed))
        self._write_batches(
            "UPDATE files SET size = ?, mtime_ns = ?, last_seen = ?, content_hash = NULL, "
            "width = NULL, height = NULL, error_reason = NULL, error_detail = NULL "
            "WHERE path = ?",
            changed,
        )
        self._write_batches(
            "INSERT INTO files(path, size, mtime_ns, last_seen) VALUES (?, ?, ?, ?)",
            ((key, f.size, f.mtime_ns, now) for key, f in by_path.items() if key not in known),
        )
        result: list[CachedFile] = []
        rows: dict[bytes, tuple] = {}
        for start in range(0, len(paths), 900):
            chunk = paths[start:start + 900]
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(
                "SELECT path, id, size, mtime_ns, content_hash, width, height, error_reason, "
                f"error_detail FROM files WHERE path IN ({marks})", chunk
            ):
                rows[row[0]] = row[1:]
        for f in files:
            r = rows[_encode(f.path)]
            result.append(CachedFile(r[0], f.path, r[1], r[2], r[3], r[4], r[5], r[6], r[7]))
        return result

    def purge_missing(self, roots: Sequence[str], seen: Iterable[str]) -> int:
        """Forget files under ``roots`` that this walk did not see."""
        seen_keys = {_encode(p) for p in seen}
        stale: list[tuple[int]] = []
        for root in roots:
            prefix = _encode(os.path.join(os.path.abspath(root), ""))
            # Byte range [prefix, prefix + 0xff): every path below the root.
            for file_id, path in self._conn.execute(
                "SELECT id, path FROM files WHERE path >= ? AND path < ?",
                (prefix, prefix + b"\xff"),
            ):
                if path not in seen_keys:
                    stale.append((file_id,))
        self._write_batches("DELETE FROM files WHERE id = ?", stale)
        return len(stale)

    def forget_paths(self, paths: Iterable[str]) -> None:
        self._write_batches("DELETE FROM files WHERE path = ?", ((_encode(p),) for p in paths))

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

    def integrity_ok(self) -> bool:
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def counts(self) -> dict[str, int]:
        return {
            "files": self._conn.execute("SELECT count(*) FROM files").fetchone()[0],
            "embeddings": self._conn.execute("SELECT count(*) FROM embeddings").fetchone()[0],
        }

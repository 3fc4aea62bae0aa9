"""Opening the cache database: the schema, its migrations, and what happens
when the file cannot be used.

Apart from the store's queries, ownership.py's look at a file before it
is opened and salvage.py's copy of the user's rows out of a damaged one,
this is the package's only SQL: the ordered migrations, run each time a
connection opens. Opening is a module of its
own because it alone decides the file's fate: a damaged file is moved
aside (never deleted) and rebuilt; a full disk, a read-only device or
another process's lock leave the file where it is and become a sentence
for the user (a DatabaseError); a newer schema that holds the user's
decisions is refused, never dropped. ``store.Store`` gets its connection
from ``connect`` and reports failed writes through ``unusable``, and damage
a query finds mid-run through ``rebuild``, so the user reads the same
sentences whether opening, reading or writing failed.

The path is the user's to choose (``--db``, ``IMGDEDUPE_DB``), so a file
there is first proven ours (ownership.py): only a file that is ours, or
SQLite too damaged to tell, is ever written or moved aside.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from imgdedupe.core.errors import DatabaseError
from imgdedupe.core.storage import salvage
from imgdedupe.core.storage.ownership import (
    Identity,
    checked_identity,
    identity,
    identity_of,
    not_ours,
    refuse_what_is_not_sqlite,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

SCHEMA_VERSION = 5  # == len(_MIGRATIONS)
BUSY_TIMEOUT_S = 10.0  # how long a write waits for another connection's transaction

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
    # Version 2: user decisions (actions.trashing, .ignore_marks). Unlike the cache above these
    # can never be rebuilt: a later version must migrate them (ALTER TABLE,
    # or copy into a new table then rename), never drop them, and _migrate
    # refuses to rebuild a newer database that holds them. Paths are fsencode
    # bytes like files.path.
    """
    CREATE TABLE action_batches (
        id INTEGER PRIMARY KEY,
        created REAL NOT NULL,
        description TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE action_journal (
        id INTEGER PRIMARY KEY,
        batch_id INTEGER NOT NULL REFERENCES action_batches(id),
        path BLOB NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        content_hash TEXT,
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'done', 'failed', 'undone', 'unknown')),
        expected_path BLOB,
        trash_path BLOB,
        reason TEXT,
        updated REAL NOT NULL
    );
    CREATE INDEX action_journal_by_batch ON action_journal(batch_id);
    CREATE INDEX action_journal_by_state ON action_journal(state);
    CREATE TABLE ignore_marks (
        id INTEGER PRIMARY KEY,
        created REAL NOT NULL
    );
    CREATE TABLE ignore_members (
        mark_id INTEGER NOT NULL REFERENCES ignore_marks(id) ON DELETE CASCADE,
        content_hash TEXT NOT NULL,
        PRIMARY KEY (mark_id, content_hash)
    );
    CREATE INDEX ignore_members_by_hash ON ignore_members(content_hash);
    """,
    # Version 3: what a rescan needs without loading a single vector.
    # Covering indexes answer "which files have vectors of this model" from
    # a few MB of index; the NULL-rotations index holds only the (rare) rows
    # stored without rotations. cache_meta counts every change to each
    # model's vectors (triggers, so no writer can forget to count), plus a
    # random epoch so counts of a rebuilt database never match old caches.
    # The pair cache beside the database (pairs.cache) is
    # keyed by them. Dropped first: an older imgdedupe may have left them.
    """
    DROP INDEX IF EXISTS embeddings_by_model;
    CREATE INDEX embeddings_by_model ON embeddings(model_id, file_id);
    CREATE INDEX embeddings_without_rotations ON embeddings(model_id, file_id)
        WHERE rotated IS NULL;
    DROP TABLE IF EXISTS cache_meta;
    CREATE TABLE cache_meta (key TEXT PRIMARY KEY, value NOT NULL);
    INSERT INTO cache_meta VALUES ('epoch', lower(hex(randomblob(16))));
    CREATE TRIGGER embeddings_inserted AFTER INSERT ON embeddings BEGIN
        INSERT INTO cache_meta VALUES ('vectors:' || NEW.model_id, 1)
            ON CONFLICT(key) DO UPDATE SET value = value + 1;
    END;
    CREATE TRIGGER embeddings_updated AFTER UPDATE ON embeddings BEGIN
        INSERT INTO cache_meta VALUES ('vectors:' || NEW.model_id, 1)
            ON CONFLICT(key) DO UPDATE SET value = value + 1;
        INSERT INTO cache_meta VALUES ('vectors:' || OLD.model_id, 1)
            ON CONFLICT(key) DO UPDATE SET value = value + 1;
    END;
    CREATE TRIGGER embeddings_deleted AFTER DELETE ON embeddings BEGIN
        INSERT INTO cache_meta VALUES ('vectors:' || OLD.model_id, 1)
            ON CONFLICT(key) DO UPDATE SET value = value + 1;
    END;
    """,
    # Version 4: pair verification (verify). Each file's verification
    # picture (the grey network input as a small JPEG) and capture time,
    # and the geometric evidence of each verified pair of files, both keyed
    # by the algorithm's version. Like the vectors they belong to one
    # (path, size, mtime_ns): the trigger drops them when a file changes
    # in place, the foreign keys when its row goes.
    """
    DROP TABLE IF EXISTS pictures;
    CREATE TABLE pictures (
        file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
        version TEXT NOT NULL,
        picture BLOB NOT NULL,
        taken REAL
    );
    DROP TABLE IF EXISTS pair_evidence;
    CREATE TABLE pair_evidence (
        file_a INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        file_b INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        version TEXT NOT NULL,
        evidence BLOB NOT NULL,
        PRIMARY KEY (file_a, file_b)
    );
    CREATE INDEX pair_evidence_by_b ON pair_evidence(file_b);
    CREATE TRIGGER file_changed AFTER UPDATE OF size, mtime_ns ON files BEGIN
        DELETE FROM pictures WHERE file_id = NEW.id;
        DELETE FROM pair_evidence WHERE file_a = NEW.id OR file_b = NEW.id;
    END;
    """,
    # Version 5: the picture's perceptual hashes in its four quarter turns
    # (images.phash.quarter_turn_hashes, 4 x 8 bytes): rotated copies are
    # found from them (pairs.rotated) instead of three more forwards.
    """
    ALTER TABLE pictures ADD COLUMN hashes BLOB;
    """,
)
USER_TABLES = ("action_batches", "action_journal", "ignore_marks", "ignore_members")
# The tables a database of each schema version has: what makes a file ours.
_TABLES_AT = [frozenset[str]()]
for _migration in _MIGRATIONS:
    _TABLES_AT.append(_TABLES_AT[-1] | set(re.findall(r"CREATE TABLE (\w+)", _migration)))
# Every write transaction of the store ends with this (store._transaction):
# it rewrites a row that carries the database's epoch, so a -wal always
# holds a page that names its database, and a -wal of another database
# can be told apart from ours after a crash (_check_after_crash).
STAMP = ("INSERT INTO cache_meta(key, value) SELECT 'stamp', value || ':' || "
         "hex(randomblob(4)) FROM cache_meta WHERE key = 'epoch' "
         "ON CONFLICT(key) DO UPDATE SET value = excluded.value")


class DatabaseRebuilt(DatabaseError):
    """The database was found damaged while in use, moved aside and
    rebuilt (the user's decisions copied over where readable). What was
    running stopped; running it again works."""


class _ForeignWal(sqlite3.DatabaseError):
    """The -wal beside the database was written for another database."""


def _statements(script: str) -> Iterator[str]:
    """Split a migration into statements; trigger bodies hold ';' too."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {statement!r}")


# -- what an sqlite3 error says about the file ---------------------------------
# Primary result codes (the low byte of sqlite_errorcode) that mean the file
# itself is damaged. Anything else (SQLITE_FULL, SQLITE_READONLY,
# SQLITE_IOERR, SQLITE_BUSY, SQLITE_CANTOPEN...) is about the disk or
# another process, and moving the file aside would not help.
_DAMAGE_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
_FULL, _READONLY, _BUSY, _LOCKED = 13, 8, 5, 6


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the file itself is damaged."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        # Raised by us (a failed integrity check, a foreign -wal). The
        # sqlite3 module's own errors without a code (ProgrammingError,
        # InterfaceError) are bugs, not damage: never move a file for them.
        return type(exc) is sqlite3.DatabaseError or isinstance(exc, _ForeignWal)
    return code & 0xFF in _DAMAGE_CODES


def _primary_code(exc: sqlite3.Error) -> int:
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


def _is_busy(exc: sqlite3.Error) -> bool:
    """Another connection holds the lock (older sqlite3 modules give no code)."""
    return _primary_code(exc) in (_BUSY, _LOCKED) or "locked" in str(exc)


def _no_space_left(path: Path) -> bool:
    try:
        st = os.statvfs(path.parent)
    except (OSError, AttributeError):  # AttributeError: Windows has no statvfs
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def unusable(path: Path, exc: sqlite3.Error) -> DatabaseError:
    """The DatabaseError (a sentence for the user) for a database that
    cannot be opened or written although it is not damaged."""
    code = _primary_code(exc)
    text = str(exc)
    # With no space at all SQLite cannot even size its shared-memory file
    # and says "disk I/O error": the free space tells the two apart.
    if code == _FULL or "disk is full" in text or _no_space_left(path):
        return DatabaseError(f"cannot write to the database {path}: the disk is full; free "
                             "some space or choose another --db (what is cached stays intact)")
    if code == _READONLY or "readonly" in text:
        return DatabaseError(f"cannot write to the database {path}: it is read-only; choose "
                             "another --db (what is cached stays intact)")
    if _is_busy(exc):
        return DatabaseError(f"the database {path} is in use by another process")
    return DatabaseError(f"cannot use the database {path}: {text}")


# -- opening ---------------------------------------------------------------------
def connect(path: Path) -> sqlite3.Connection:
    """A connection to ``path`` with the current schema, in autocommit
    mode (the store opens its own transactions). Raises DatabaseError."""
    parent = path.parent
    if not parent.is_dir():
        raise DatabaseError(
            f"the database folder {parent} does not exist; create it or choose another --db"
        )
    if not os.access(parent, os.W_OK):
        raise DatabaseError(
            f"the database folder {parent} is not writable; choose another --db")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise DatabaseError(f"the database {path} is not readable and writable")
    refuse_what_is_not_sqlite(path)
    try:
        return _connect_when_free(path)
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            # A full disk, a read-only or failing device, another
            # process's lock: the file is fine, so it stays where it is
            # (moving it aside would hide the user's undo history).
            raise unusable(path, exc) from exc
        conn, sentence = rebuild(path, exc)
        log.warning("%s", sentence)  # and the scan goes on, on the new database
        return conn


def rebuild(path: Path, exc: sqlite3.Error) -> tuple[sqlite3.Connection, str]:
    """Move the damaged database at ``path`` aside (never deleted), create
    a new one, copy the user's decisions into it where readable: a cache
    is worth less than a working app. The caller has closed its
    connection. Returns the new connection and a sentence saying what
    happened; raises DatabaseError when that fails too."""
    foreign = isinstance(exc, _ForeignWal)
    try:
        aside = salvage.move_aside(path, foreign_wal=foreign)
    except OSError as err:
        raise DatabaseError(f"the database {path} is damaged ({exc}) and cannot be moved "
                            f"aside: {err.strerror or err}; choose another --db") from err
    try:
        conn = _connect_and_migrate(path)
    except sqlite3.Error as exc2:
        raise DatabaseError(f"cannot create the database {path}: {exc2}") from exc2
    # A foreign -wal holds the other database's pages: read the file alone.
    counts = salvage.recover_rows(conn, aside, USER_TABLES, with_wal=not foreign)
    if counts is None:
        kept = f"your undo history and 'Not duplicates' marks stay in {aside}"
    else:
        kept = (f"recovered undo-journal entries: {counts['action_journal']}, "
                f"'Not duplicates' marks: {counts['ignore_marks']}")
    return conn, (f"the cache database {path} was damaged ({exc}); moved it to {aside}, "
                  f"rebuilt it and {kept}")


def guard_queries(cls: type[_T]) -> type[_T]:
    """Send the sqlite3 errors of each public method of ``cls`` (the store)
    to its ``_failure``, which rebuilds a damaged file and returns the
    sentence to raise: SQLite checks each page as a query reads it, so
    damage can surface in any of them, not only at open."""

    def guard(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                # ProgrammingError and the like are bugs: they stay raw.
                if is_damage(exc) or isinstance(exc, sqlite3.OperationalError):
                    raise self._failure(exc) from exc
                raise
        return guarded

    for name, method in inspect.getmembers(cls, inspect.isfunction):
        if not name.startswith("_") and name != "close":
            setattr(cls, name, guard(method))
    return cls


# -- is the file ours? ----------------------------------------------------------
def _is_ours(version: int, tables: frozenset[str]) -> bool:
    if version == 0:  # new (or emptied by the rebuild of a newer schema)
        return tables <= {"cache_meta"}
    if version <= SCHEMA_VERSION:
        return _TABLES_AT[version] <= tables
    return "files" in tables  # a newer imgdedupe's (_migrate)


def _connect_when_free(path: Path) -> sqlite3.Connection:
    # Some steps of opening (switching a new file to WAL, recovering a
    # WAL another process left) answer SQLITE_BUSY at once, without
    # waiting on busy_timeout, while another process opens the same
    # file: wait for it here, as long as busy_timeout would.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            return _connect_and_migrate(path)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _wal_size(wal: Path) -> int:
    """The -wal file's size, 0 if none, also when the last other connection
    removes it meanwhile (a search opened the cache as a scan closed it)."""
    try:
        return wal.stat().st_size
    except FileNotFoundError:
        return 0


def _connect_and_migrate(path: Path) -> sqlite3.Connection:
    # SQLite deletes the WAL file when the last connection closes, so a
    # WAL left behind means a session that crashed (or one still open).
    unclean = _wal_size(Path(str(path) + "-wal")) > 0
    # Whose file it is, before SQLite opens it to write (switching to WAL
    # rewrites the header) or applies a -wal to it.
    on_disk = identity(path) if path.exists() else None
    if on_disk is not None and not _is_ours(on_disk.version, on_disk.tables):
        again = checked_identity(path)
        if again is None or not _is_ours(again.version, again.tables):
            raise not_ours(path, "it is another program's SQLite database")
        on_disk = None  # read torn: compare no epoch with it
    if unclean:
        _check_after_crash(path, on_disk)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open the database {path}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        # Reading the schema forces SQLite to parse the header, so a
        # file that is not a database fails here, not mid-scan.
        seen = identity_of(conn)
        if not _is_ours(seen.version, seen.tables):
            raise not_ours(path, "it is another program's SQLite database")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _check_after_crash(path: Path, on_disk: Identity | None) -> None:
    """Damage that SQLite's own checks miss, after a session that did not
    close (or beside one still open). Raises sqlite3.DatabaseError.

    SQLite cannot tell whose a -wal is: it applies any valid one to the
    file beside it, and pages of another database (a copied or restored
    file next to an old -wal) become ours. The epoch in the stamp every
    write leaves in the -wal (STAMP) must be the file's own.

    integrity_check, not quick_check: pages from another database can be
    sound b-trees each while tables and their indexes disagree, which only
    integrity_check sees (0.65 s for a 100k-file cache, against 0.35 s;
    only after a crash). Damage from a disk that lost writes is found too.

    The check reads through a read-only connection: closing the last
    read-write one checkpoints the -wal into the file, which would write
    another database's pages into ours before it is moved aside.
    """
    check = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True,
                            timeout=BUSY_TIMEOUT_S)
    try:
        seen = identity_of(check)
        if on_disk is not None and not _is_ours(seen.version, seen.tables):
            raise _ForeignWal("the -wal beside it makes it another database")
        if on_disk is not None and on_disk.epoch is not None:
            names = {on_disk.epoch}
            if "cache_meta" in seen.tables:
                stamp = dict(check.execute(
                    "SELECT key, value FROM cache_meta WHERE key IN ('epoch', 'stamp')"))
                names = {str(stamp.get("epoch")), str(stamp.get("stamp", on_disk.epoch))[:32]}
            # Read the file again before calling it foreign: a page another
            # process was checkpointing can read torn once, not twice.
            if names != {on_disk.epoch} and identity(path) == on_disk:
                raise _ForeignWal(f"the -wal beside it belongs to another database "
                                  f"(epoch {sorted(names - {on_disk.epoch})[0]})")
        problem = check.execute("PRAGMA integrity_check(1)").fetchone()[0]
        if problem != "ok":
            raise sqlite3.DatabaseError(f"integrity_check failed: {problem}")
    finally:
        check.close()


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        # Written by a newer imgdedupe. The cache tables can be rebuilt
        # (the newer app will rebuild them again), but the user's undo
        # history and "Not duplicates" marks must never be dropped.
        marks = ",".join("?" * len(USER_TABLES))
        if conn.execute(f"SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                        f"AND name IN ({marks})", USER_TABLES).fetchone()[0]:
            raise DatabaseError(
                f"the database {path} was written by a newer imgdedupe (schema "
                f"{version}) and holds your undo history and 'Not duplicates' marks; "
                "use that version, or choose another --db")
        log.warning("cache %s has schema %d (newer than %d); rebuilding it",
                    path, version, SCHEMA_VERSION)
        conn.execute("BEGIN IMMEDIATE")
        for table in ("pair_evidence", "pictures", "embeddings", "files"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute("PRAGMA user_version = 0")
        conn.execute("COMMIT")
        version = 0
    for target in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: two processes opening one
            # new database both saw version 0, and the other may have
            # run this step meanwhile ("table files already exists").
            if conn.execute("PRAGMA user_version").fetchone()[0] > target:
                conn.execute("COMMIT")
                continue
            for statement in _statements(_MIGRATIONS[target]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a full disk may have ended it already
                conn.execute("ROLLBACK")
            raise

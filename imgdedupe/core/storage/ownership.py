"""Whose file is at the cache path, asked before anything is written to it.

The path is the user's to choose (``--db``, ``IMGDEDUPE_DB``) and may name
a photo, a document or another program's database. db.connect refuses
those with the sentence ``not_ours`` gives; only a file that is ours (or
SQLite too damaged to tell) is ever opened for writing or moved aside.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import NamedTuple

from imgdedupe.core.errors import DatabaseError

SQLITE_HEADER = b"SQLite format 3\x00"


class Identity(NamedTuple):
    version: int  # PRAGMA user_version
    tables: frozenset[str]
    epoch: str | None  # cache_meta's, from schema version 3 on


def not_ours(path: Path, what: str) -> DatabaseError:
    return DatabaseError(
        f"{path} is not an imgdedupe database ({what}); imgdedupe never renames, moves or "
        "overwrites a file it did not make: choose another --db (a new file, or an "
        "imgdedupe cache)")


def refuse_what_is_not_sqlite(path: Path) -> None:
    """Raise ``not_ours`` for a file that is not SQLite at all: a photo, a
    document. Reads 16 bytes; nothing else is touched."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        return  # SQLite says it cannot open it; nothing is moved
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block a read
        raise not_ours(path, "it is not a regular file")
    with open(path, "rb") as handle:
        head = handle.read(len(SQLITE_HEADER))
    # Zero-length: SQLite makes it a new database. A prefix of the header:
    # a cache cut short, damaged SQLite to move aside.
    if not SQLITE_HEADER.startswith(head):
        raise not_ours(path, "it is not an SQLite file")


def identity(path: Path) -> Identity | None:
    """Who the file is, read from the file alone (immutable: no -wal, no
    lock, nothing written); None if it cannot be read, which only the
    locked connection may call damage (another process may be writing)."""
    return _identity_at(path.absolute().as_uri() + "?immutable=1")


def identity_of(conn: sqlite3.Connection) -> Identity:
    """Who the database behind ``conn`` is (with its -wal, for a normal
    connection). Raises sqlite3.DatabaseError when it cannot be read.
    One read transaction: another connection migrating a new database
    must not show its version from before and its tables from after."""
    conn.execute("BEGIN")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = frozenset(row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite^_%' ESCAPE '^'"))
        epoch = None
        if "cache_meta" in tables:
            row = conn.execute("SELECT value FROM cache_meta WHERE key = 'epoch'").fetchone()
            epoch = None if row is None else str(row[0])
    finally:
        if conn.in_transaction:  # read only: nothing to keep
            conn.execute("ROLLBACK")
    return Identity(version, tables, epoch)


def checked_identity(path: Path) -> Identity | None:
    """``identity`` read again through SQLite's locks (read-only: it never
    writes or checkpoints): the file alone reads torn while another
    connection checkpoints into it, so a verdict of "not ours" from it is
    asked again here before it refuses the file. None if unreadable."""
    return _identity_at(path.absolute().as_uri() + "?mode=ro")


def _identity_at(uri: str) -> Identity | None:
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error:
        return None
    try:
        return identity_of(conn)
    except sqlite3.Error:
        return None
    finally:
        conn.close()

"""What is saved from a damaged cache database: the file itself, moved
aside and never deleted, and the user's decisions (the undo journal, the
"Not duplicates" marks), copied into the new database where readable.

db.rebuild calls both, at open or when a query finds damage mid-run. The
cache tables are not copied: a damaged cache is only an optimisation, and
the next scan fills a new one.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

# A user table's rows need their parent row (foreign keys are on). A child
# whose parent was on a damaged page gets a placeholder parent, so an undo
# batch or a mark keeps every row that survived.
_PARENTS = {"action_journal": ("batch_id", "action_batches"),
            "ignore_members": ("mark_id", "ignore_marks")}
RECOVERED = "recovered from a damaged cache"


def move_aside(path: Path, foreign_wal: bool = False) -> Path:
    """Rename the database and its -wal and -shm to ``NAME.corrupt-TIME``
    (never over an earlier one) and return that name. A -wal that belongs
    to another database becomes ``….foreign-wal``: SQLite would apply a
    ``-wal`` beside the kept file to it again if anyone opened it."""
    stamp = int(time.time())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    suffixes = ("", "-wal", "-shm", ".foreign-wal", ".foreign-shm")
    n = 1
    while any(os.path.lexists(f"{aside}{s}") for s in suffixes):
        n += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for suffix in ("", "-wal", "-shm"):
        source = f"{path}{suffix}"
        if os.path.lexists(source):
            kept = f".foreign{suffix}" if foreign_wal and suffix else suffix
            os.replace(source, f"{aside}{kept}")
    return aside


def recover_rows(conn: sqlite3.Connection, aside: Path, tables: Sequence[str],
                 with_wal: bool) -> dict[str, int] | None:
    """Copy the readable rows of ``tables`` (parents first) from the file
    moved aside into ``conn``'s new, empty tables; rows per table, or None
    when the new database could not take them. ``with_wal``: read the
    file with its -wal (the last commits of a crash), else the file alone."""
    # Read-only with its -wal (closing never checkpoints into it); the
    # file alone otherwise, which creates no -shm beside it.
    with_wal = with_wal and os.path.exists(f"{aside}-wal")
    uri = aside.absolute().as_uri() + ("?mode=ro" if with_wal else "?immutable=1")
    try:
        old = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        log.warning("cannot read %s to recover from it: %s", aside, exc)
        return {table: 0 for table in tables}
    try:
        found = {table: _readable_rows(old, conn, table) for table in tables}
    finally:
        old.close()
    for child, (key, parent) in _PARENTS.items():
        if child in found and parent in found:
            _add_missing_parents(found, child, key, parent)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for table in tables:
            columns, rows = found[table]
            if rows:
                conn.executemany(
                    f"INSERT OR IGNORE INTO {table}({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})", rows)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        log.warning("cannot copy the decisions of %s into the new database: %s", aside, exc)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return None
    return {table: len(found[table][1]) for table in tables}


def _readable_rows(old: sqlite3.Connection, new: sqlite3.Connection,
                   table: str) -> tuple[list[str], list[tuple]]:
    """(columns both databases have, the rows that can be read). A scan
    stops at a damaged page: the rows past it are read from the other end."""
    wanted = [row[1] for row in new.execute(f"PRAGMA table_info({table})")]
    try:
        have = {row[1] for row in old.execute(f"PRAGMA table_info({table})")}
    except sqlite3.Error:
        return wanted, []
    columns = [c for c in wanted if c in have]
    if not columns:  # an older schema without this table
        return wanted, []
    rows: dict[int, tuple] = {}
    for order in ("ASC", "DESC"):
        try:
            for row in old.execute(f"SELECT rowid, {', '.join(columns)} FROM {table} "
                                   f"ORDER BY rowid {order}"):
                rows[row[0]] = row[1:]
        except sqlite3.Error as exc:
            log.warning("rows of %s lost to damage: %s", table, exc)
            continue
        break
    return columns, [rows[k] for k in sorted(rows)]


def _add_missing_parents(found: dict[str, tuple[list[str], list[tuple]]], child: str,
                         key: str, parent: str) -> None:
    child_columns, child_rows = found[child]
    parent_columns, parent_rows = found[parent]
    if key not in child_columns or "id" not in parent_columns:
        return
    at = child_columns.index(key)
    have = {row[parent_columns.index("id")] for row in parent_rows}
    missing = sorted({row[at] for row in child_rows} - have)
    defaults = {"created": time.time(), "description": RECOVERED}
    for parent_id in missing:
        parent_rows.append(tuple(parent_id if c == "id" else defaults.get(c)
                                 for c in parent_columns))

"""Turn a ScanResult into JSON or into text for people. No Qt, no I/O
beyond the stream it is given."""

from __future__ import annotations

import csv
import json
from collections.abc import Collection, Sequence
from typing import TextIO

from . import __version__
from .core.records import FileError, Group
from .core.scan.events import ScanResult
from .core.units import human_size

JSON_FORMAT = 1


def group_to_dict(group: Group) -> dict:
    return {
        "kind": group.kind,
        "reference": group.reference,
        "keeper": group.keeper,
        "members": [
            {
                "path": m.path,
                "similarity": m.similarity,
                "exact": m.exact,
                "copy_set": m.copy_set,
                "keeper": m.path == group.keeper,
                "size": m.size,
                "width": m.width,
                "height": m.height,
                "mtime_ns": m.mtime_ns,
            }
            for m in group.members
        ],
    }


def error_to_dict(error: FileError) -> dict:
    return {"path": error.path, "reason": error.reason, "detail": error.detail}


def result_to_dict(result: ScanResult) -> dict:
    stats = result.stats
    return {
        "format": JSON_FORMAT,
        "imgdedupe": __version__,
        "backbone": result.backbone,
        "model_id": result.model_id,
        "threshold": result.threshold,
        "notices": [{"code": n.code, "message": n.message} for n in result.notices],
        "groups": [group_to_dict(g) for g in result.groups],
        "errors": [error_to_dict(e) for e in result.errors],
        "stats": {
            "files_seen": stats.files_seen,
            "unique_contents": stats.unique_contents,
            "embedded": stats.embedded,
            "from_cache": stats.from_cache,
            "failed": stats.failed,
            "groups": len(result.groups),
            "duplicates": sum(len(g.members) - 1 for g in result.groups),
            "timings_s": stats.timings,
        },
    }


def write_json(result: ScanResult, stream: TextIO) -> None:
    # ensure_ascii keeps non-UTF-8 file names (surrogate escapes) as valid
    # JSON \\u escapes instead of failing to encode them.
    json.dump(result_to_dict(result), stream, indent=2, ensure_ascii=True)
    stream.write("\n")


def printable(path: str) -> str:
    """A path safe to print even when its name is not valid UTF-8."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def write_text(result: ScanResult, stream: TextIO) -> None:
    for notice in result.notices:
        stream.write(f"Note: {notice.message}\n\n")
    for n, group in enumerate(result.groups, 1):
        label = "exact copies" if group.kind == "exact" else "similar images"
        stream.write(f"Group {n}: {len(group.members)} {label}\n")
        for m in group.members:
            mark = "keep" if m.path == group.keeper else "    "
            dims = f"{m.width}x{m.height}" if m.width else "?x?"
            exact = "exact" if m.exact else "     "
            stream.write(f"  [{mark}] {m.similarity:5.1f}  {exact}  {dims:>11}  "
                         f"{human_size(m.size):>9}  {printable(m.path)}\n")
        stream.write("\n")
    if result.errors:
        stream.write(f"{len(result.errors)} file(s) could not be used:\n")
        for e in result.errors:
            stream.write(f"  {printable(e.path)}: {e.reason} ({e.detail})\n")
        stream.write("\n")
    s = result.stats
    duplicates = sum(len(g.members) - 1 for g in result.groups)
    total = sum(s.timings.values())
    stream.write(
        f"{s.files_seen} images seen, {len(result.groups)} groups, {duplicates} duplicates, "
        f"{len(result.errors)} unreadable. Embedded {s.embedded}, {s.from_cache} from cache, "
        f"{total:.1f} s ({result.backbone}, threshold {result.threshold:g}).\n"
    )
    stream.write("Nothing was changed on disk: the keep marks are suggestions.\n")


CSV_COLUMNS = ("group", "kind", "path", "similarity", "exact", "keeper", "marked_for_deletion",
               "size", "width", "height")


def write_csv(groups: Sequence[Group], stream: TextIO, marked: Collection[str] = ()) -> None:
    """One row per member; ``group`` numbers rows of the same group from 1."""
    writer = csv.writer(stream)
    writer.writerow(CSV_COLUMNS)
    for number, group in enumerate(groups, 1):
        for m in group.members:
            writer.writerow((number, group.kind, m.path, m.similarity, int(m.exact),
                             int(m.path == group.keeper), int(m.path in marked), m.size,
                             m.width or "", m.height or ""))

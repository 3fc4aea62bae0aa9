"""Turn a ScanResult into JSON or into text for people. No Qt, no I/O
beyond the stream it is given."""

from __future__ import annotations

import csv
import json
import unicodedata
from collections.abc import Collection, Sequence
from typing import TextIO

from . import __version__
from .core.groups.protection import NO_PROTECTION, Protection
from .core.records import TIERS, FileError, Group
from .core.scan.events import ScanResult
from .core.units import human_size

# 2: groups have "tier" and "reason"; similar shots suggest no keeper.
# 3: groups have "keeper_reason", why the keeper was chosen (groups.keeper_rules),
#    and each member lists its "companions" (path, kind, size): they move with it.
JSON_FORMAT = 3

TIER_TITLES = {
    "exact": "Exact copies (the same bytes)",
    "near_duplicate": "Near-duplicates (the same picture: edited, resized, cropped or "
                      "re-encoded copies)",
    "similar_shot": "Similar shots (the same scene taken again: for review, nothing is "
                    "suggested for deletion)",
}


def suggested_keeper(group: Group) -> str | None:
    """The member to keep when the others are duplicates of it; a similar
    shot is a photo of its own, so none is suggested there."""
    return group.keeper if group.deletable else None


def keeper_reason(group: Group) -> str | None:
    """Why the suggested keeper ("kept: 2× the pixels of IMG_1.jpg");
    None where none is suggested or no rule chose it."""
    return (group.keeper_reason or None) if suggested_keeper(group) is not None else None


def group_to_dict(group: Group, protection: Protection = NO_PROTECTION) -> dict:
    """One group; ``protected`` members lie in a protected folder (never
    to be deleted; the keeper is one of them when any is)."""
    keeper = suggested_keeper(group)
    return {
        "kind": group.kind,
        "tier": group.tier,
        "reason": group.reason,
        "reference": group.reference,
        "keeper": keeper,
        "keeper_reason": keeper_reason(group),
        "members": [
            {
                "path": m.path,
                "similarity": m.similarity,
                "exact": m.exact,
                "copy_set": m.copy_set,
                "keeper": m.path == keeper,
                "protected": protection.covers(m.path),
                # What the suggestion would delete: never the keeper, never
                # a protected photo, nothing among similar shots.
                "suggested_for_deletion": keeper is not None and m.path != keeper
                and not protection.covers(m.path),
                "size": m.size,
                "width": m.width,
                "height": m.height,
                "mtime_ns": m.mtime_ns,
                "companions": [{"path": c.path, "kind": c.kind, "size": c.size}
                               for c in m.companions],
            }
            for m in group.members
        ],
    }


def error_to_dict(error: FileError) -> dict:
    return {"path": error.path, "reason": error.reason, "detail": error.detail}


def result_to_dict(result: ScanResult, tiers: Collection[str] = TIERS,
                   protection: Protection = NO_PROTECTION, hidden_protected: int = 0) -> dict:
    """The JSON report, with the groups of ``tiers`` only; ``protection``
    flags protected members, ``hidden_protected`` counts the groups left
    out because every member is protected."""
    stats = result.stats
    groups = [g for g in result.groups if g.tier in tiers]
    return {
        "format": JSON_FORMAT,
        "imgdedupe": __version__,
        "backbone": result.backbone,
        "model_id": result.model_id,
        "threshold": result.threshold,
        "notices": [{"code": n.code, "message": n.message} for n in result.notices],
        "tiers": [t for t in TIERS if t in tiers],
        "protected_folders": list(protection.folders),
        "protected_groups_hidden": hidden_protected,
        "groups": [group_to_dict(g, protection) for g in groups],
        "errors": [error_to_dict(e) for e in result.errors],
        "stats": {
            "files_seen": stats.files_seen,
            "unique_contents": stats.unique_contents,
            "embedded": stats.embedded,
            "from_cache": stats.from_cache,
            "failed": stats.failed,
            "groups": len(groups),
            "groups_by_tier": {t: sum(g.tier == t for g in groups) for t in TIERS if t in tiers},
            "duplicates": sum(len(g.members) - 1 for g in groups if g.deletable),
            "similar_shots": sum(len(g.members) - 1 for g in groups if not g.deletable),
            "timings_s": stats.timings,
        },
    }


def write_json(result: ScanResult, stream: TextIO, tiers: Collection[str] = TIERS,
               protection: Protection = NO_PROTECTION, hidden_protected: int = 0) -> None:
    # ensure_ascii keeps non-UTF-8 file names (surrogate escapes) as valid
    # JSON \\u escapes instead of failing to encode them.
    json.dump(result_to_dict(result, tiers, protection, hidden_protected), stream, indent=2,
              ensure_ascii=True)
    stream.write("\n")


# Characters a terminal or a text widget acts on instead of showing: C0
# (ESC starts a sequence that moves the cursor or retitles the window), DEL,
# C1 (0x9b is a whole CSI), the format characters (bidi overrides reverse
# what follows, zero-width ones hide), line and paragraph separators, and
# lone surrogates (a name's bytes that are not UTF-8). Spaces, private-use
# and unassigned code points (newer emoji) are harmless and stay.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Format characters that are part of how a name is written: the joiners of
# emoji sequences and Indic scripts, and emoji tag sequences (flags).
_WRITTEN = frozenset({0x200C, 0x200D, *range(0xE0020, 0xE0080)})


def _escape(char: str) -> str:
    code = ord(char)
    if unicodedata.category(char) not in _UNSAFE_CATEGORIES or code in _WRITTEN:
        return char
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for a byte that is not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str, lines: bool = False) -> str:
    """``text`` (a path, or a message that holds paths) safe to print on a
    terminal or show in the window: control characters and bytes that are
    not UTF-8 become visible escapes (``\\x1b``, ``\\u202e``, ``\\xe9``), so a
    name can never move the cursor or reorder the line. ``lines`` keeps
    the newlines of a message of several lines. JSON keeps exact paths."""
    if text.isprintable():  # nearly every name: no work
        return text
    if lines:
        return "\n".join(printable(line) for line in text.split("\n"))
    return "".join(map(_escape, text))


def write_text(result: ScanResult, stream: TextIO, tiers: Collection[str] = TIERS,
               protection: Protection = NO_PROTECTION, hidden_protected: int = 0) -> None:
    """The groups tier by tier, each with its reason, then what could not
    be read and a summary. ``[keep]`` is the suggested keeper, ``[prot]``
    another photo in a protected folder (never to delete)."""
    for notice in result.notices:
        stream.write(f"Note: {printable(notice.message, lines=True)}\n\n")
    groups = [g for g in result.groups if g.tier in tiers]
    number = 0
    for tier in TIERS:
        of_tier = [g for g in groups if g.tier == tier]
        if not of_tier:
            continue
        stream.write(f"== {TIER_TITLES[tier]}: {len(of_tier)} group(s)\n\n")
        for group in of_tier:
            number += 1
            keeper = suggested_keeper(group)
            stream.write(f"Group {number}: {len(group.members)} photos, {group.reason}\n")
            why = keeper_reason(group)
            if why:
                stream.write(f"  {printable(why)}\n")
            for m in group.members:
                mark = "keep" if m.path == keeper else \
                    "prot" if protection.covers(m.path) else "    "
                dims = f"{m.width}x{m.height}" if m.width else "?x?"
                exact = "exact" if m.exact else "     "
                stream.write(f"  [{mark}] {m.similarity:5.1f}  {exact}  {dims:>11}  "
                             f"{human_size(m.size):>9}  {printable(m.path)}\n")
                for c in m.companions:  # they go wherever their photo goes
                    stream.write(f"{'':27}+ {c.label:<5}  {human_size(c.size):>9}  "
                                 f"{printable(c.path)}\n")
            stream.write("\n")
    if result.errors:
        stream.write(f"{len(result.errors)} file(s) could not be used:\n")
        for e in result.errors:
            stream.write(f"  {printable(e.path)}: {e.reason} ({printable(e.detail)})\n")
        stream.write("\n")
    s = result.stats
    duplicates = sum(len(g.members) - 1 for g in groups if g.deletable)
    shots = sum(len(g.members) - 1 for g in groups if not g.deletable)
    by_tier = ", ".join(f"{sum(g.tier == t for g in groups)} {t.replace('_', ' ')}"
                        for t in TIERS if t in tiers)
    total = sum(s.timings.values())
    stream.write(
        f"{s.files_seen} images seen, {len(groups)} groups ({by_tier}), {duplicates} duplicates"
        f", {shots} similar shots, {len(result.errors)} unreadable. Embedded {s.embedded}, "
        f"{s.from_cache} from cache, {total:.1f} s ({result.backbone}, threshold "
        f"{result.threshold:g}).\n"
    )
    if hidden_protected:
        stream.write(f"{hidden_protected} group(s) lie wholly in protected folders and are not "
                     "shown (--show-protected lists them).\n")
    stream.write("Nothing was changed on disk: the keep marks are suggestions.\n")


CSV_COLUMNS = ("group", "kind", "tier", "reason", "path", "similarity", "exact", "keeper",
               "marked_for_deletion", "size", "width", "height", "keeper_reason",
               "companions")


def write_csv(groups: Sequence[Group], stream: TextIO, marked: Collection[str] = ()) -> None:
    """One row per member; ``group`` numbers rows of the same group from 1.
    ``companions``: the member's companion files, one path a line."""
    writer = csv.writer(stream)
    writer.writerow(CSV_COLUMNS)
    for number, group in enumerate(groups, 1):
        for m in group.members:
            writer.writerow((number, group.kind, group.tier, group.reason, m.path, m.similarity,
                             int(m.exact), int(m.path == suggested_keeper(group)),
                             int(m.path in marked), m.size, m.width or "", m.height or "",
                             keeper_reason(group) or "",
                             "\n".join(c.path for c in m.companions)))

"""The last complete scan's answer, reused while nothing it rests on changed.

Most scans are rescans of a library that has not changed since the last
one (the window rescans on start; a user runs the CLI again). Those still
walk and stat every file, since only that shows what changed, but then
nothing else needs doing: no row to sync, no hash, no vector, no pair. At
100k files the sync, the pair cache and the graph took 0.8 s on top of the
walk's 0.4 s (docs/performance.md, ## Rescan).

The memo is keyed by everything the answer is a function of:

* the walk's output: every path, size and mtime_ns, and the walk's own
  problems. A changed, added, removed or renamed file changes it, as it
  changes the cache's own key (path + size + mtime_ns);
* the settings that shape the answer: roots, hidden files, threshold,
  rotations, "compare across folders only", the index parameters, and the calibrated cosines of the
  threshold and the slider's floor (a new calibration is a new answer);
* the model id and the store's vector version, which counts every vector
  written or deleted (database triggers) and holds the database's random
  epoch, so a rebuilt or replaced cache never matches;
* the ignore marks (the window's "Not duplicates");
* the versions of the pair search and the grouping (pairs.search,
  groups.graph), so an upgrade that changes either recomputes the answer.

A scan whose answer rests on something outside the key is not memoised:
one that could not hash a file (a permission that may be fixed without
touching the file's mtime). Unusable memos (corrupt, another version, a
full disk on writing) are ignored: the scan runs as if there were none.
Everything is numpy arrays and JSON (no pickle), written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from imgdedupe.core.groups import graph as grouping
from imgdedupe.core.groups.contents import ContentTable
from imgdedupe.core.groups.graph import SimilarityGraph
from imgdedupe.core.pairs import search
from imgdedupe.core.records import TIERS, FileError, Group, IgnoreMarks, ImageFile, Member
from imgdedupe.core.storage.cachefile import save_npz
from imgdedupe.core.verify import evidence, tiers

log = logging.getLogger(__name__)

# Bump when the layout below or what the key covers changes. 5: the graph's
# roots of "compare across folders only".
FORMAT = 5
FILE_NAME = "scan-memo.npz"


@dataclass(frozen=True)
class Memo:
    """What a rescan replays: the ScanResult's contents, less this run's
    notices and timings."""

    groups: tuple[Group, ...]
    exact_groups: tuple[Group, ...]  # what ExactGroupsReady announces on a replay
    errors: tuple[FileError, ...]
    files_seen: int
    unique_contents: int
    from_cache: int
    graph: SimilarityGraph
    ignore_marks: IgnoreMarks


def tree_digest(files: Sequence[ImageFile], walk_errors: Sequence[FileError]) -> str:
    """A digest of the walk's output, in its order (which is deterministic)."""
    h = hashlib.blake2b(digest_size=32)
    paths, sizes, mtimes = zip(*files, strict=True) if files else ((), (), ())
    h.update(_joined(paths))
    h.update(np.array(sizes, dtype=np.int64).tobytes())
    h.update(np.array(mtimes, dtype=np.int64).tobytes())
    h.update(json.dumps([[e.path, e.reason, e.detail] for e in walk_errors]).encode())
    return h.hexdigest()


def memo_key(tree: str, settings: dict, model_id: str, vector_version: str,
             ignore_marks: IgnoreMarks) -> str:
    marks = sorted(sorted(mark) for mark in ignore_marks)
    # The versions of the algorithms the answer came from: an upgrade that
    # changes how pairs are found or grouped recomputes it.
    versions = {"search": search.SEARCH_VERSION, "grouping": grouping.GROUPING_VERSION,
                "evidence": evidence.EVIDENCE_VERSION, "verify": tiers.VERIFY_VERSION}
    text = json.dumps([FORMAT, versions, tree, settings, model_id, vector_version, marks],
                      sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def load(path: Path, key: str) -> Memo | None:
    """The memo saved under ``key``, or None when there is none that fits."""
    try:
        # Opened here: np.load leaves its own file open when the zip is bad.
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes())
            if meta.get("format") != FORMAT or meta.get("key") != key:
                return None
            arrays = {name: data[name] for name in data.files if name != "meta"}
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001  # a memo is only ever an optimisation
        log.warning("ignoring the scan memo %s: %s", path, exc)
        return None
    try:
        return _memo_of(meta, arrays)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        log.warning("ignoring the scan memo %s: %s", path, exc)
        return None


def save(path: Path, key: str, memo: Memo) -> None:
    """Write the memo atomically; a failure only costs the next rescan time."""
    graph = memo.graph
    paths, sizes, mtimes, starts, widths, heights, digests = graph.contents.columns()
    file_of = {name: j for j, name in enumerate(paths)}  # groups name files by number
    meta = {
        "format": FORMAT,
        "key": key,
        "errors": [[e.path, e.reason, e.detail] for e in memo.errors],
        "counts": [memo.files_seen, memo.unique_contents, memo.from_cache],
        "graph": [graph.backbone, graph.floor_score, list(graph.across)],
        "ignore_marks": [sorted(mark) for mark in memo.ignore_marks],
    }
    arrays: dict[str, np.ndarray] = {
        # ensure_ascii: paths that are not valid UTF-8 hold lone surrogates,
        # which JSON escapes (and reads back) only so.
        "meta": np.frombuffer(json.dumps(meta, ensure_ascii=True).encode(), dtype=np.uint8),
        "paths": np.frombuffer(_joined(paths), dtype=np.uint8),
        "sizes": sizes, "mtimes": mtimes, "starts": starts, "widths": widths,
        "heights": heights,
        "digests": np.frombuffer(_joined([d or "" for d in digests]), dtype=np.uint8),
        # int32: half the bytes to read back (40 MB of pairs at 100k files).
        "pairs": np.asarray(graph.pairs, dtype=np.int32).reshape(-1, 2),
        "cosines": np.asarray(graph.cosines, dtype=np.float32),
        "tiers": np.asarray(graph.tiers, dtype=np.int8),
        "moments": np.asarray(graph.moments, dtype=np.float64),
        "reasons": np.frombuffer(_joined(graph.reasons), dtype=np.uint8),
        **_group_columns("", memo.groups, file_of),
        **_group_columns("exact_", memo.exact_groups, file_of),
    }
    save_npz(path, arrays, "scan memo")


# -- encoding ---------------------------------------------------------------

def _joined(texts: Sequence[str]) -> bytes:
    # NUL never occurs in a path or a hex digest. surrogatepass round-trips
    # any str, including the surrogate escapes of undecodable file names.
    return "\0".join(texts).encode("utf-8", "surrogatepass")


def _split(data: np.ndarray, count: int) -> list[str]:
    if count == 0:
        return []
    texts = data.tobytes().decode("utf-8", "surrogatepass").split("\0")
    if len(texts) != count:
        raise ValueError(f"expected {count} names, found {len(texts)}")
    return texts


_KINDS: tuple[Literal["exact", "similar", "near-exact"], ...] = ("exact", "similar", "near-exact")


def _group_columns(prefix: str, groups: Sequence[Group], file_of: dict[str, int]
                   ) -> dict[str, np.ndarray]:
    """Groups by column, each member a file of the graph's table: a
    library's 5,000 groups read back in milliseconds, where JSON took 26."""
    members = [m for g in groups for m in g.members]
    columns: dict[str, np.ndarray] = {
        "group_kinds": np.asarray([_KINDS.index(g.kind) for g in groups], dtype=np.uint8),
        "group_tiers": np.asarray([TIERS.index(g.tier) for g in groups], dtype=np.uint8),
        "group_reasons": np.frombuffer(_joined([g.reason for g in groups]), dtype=np.uint8),
        "group_keepers": np.asarray([file_of[g.keeper] for g in groups], dtype=np.int32),
        "group_starts": np.cumsum([0] + [len(g.members) for g in groups], dtype=np.int64),
        "member_files": np.asarray([file_of[m.path] for m in members], dtype=np.int32),
        "member_scores": np.asarray([m.similarity for m in members], dtype=np.float64),
        "member_copy_sets": np.asarray([-1 if m.copy_set is None else m.copy_set
                                        for m in members], dtype=np.int32),
        "member_widths": np.asarray([-1 if m.width is None else m.width for m in members],
                                    dtype=np.int64),
        "member_heights": np.asarray([-1 if m.height is None else m.height for m in members],
                                     dtype=np.int64),
    }
    return {prefix + name: column for name, column in columns.items()}


def _groups_of(prefix: str, arrays: dict[str, np.ndarray], table: ContentTable
               ) -> tuple[Group, ...]:
    paths, sizes, mtimes = table.columns()[:3]
    files = arrays[prefix + "member_files"]
    members = [Member(paths[j], score, None if copy_set < 0 else copy_set, size,
                      None if width < 0 else width, None if height < 0 else height, mtime)
               for j, score, copy_set, size, width, height, mtime in zip(
                   files.tolist(), arrays[prefix + "member_scores"].tolist(),
                   arrays[prefix + "member_copy_sets"].tolist(), sizes[files].tolist(),
                   arrays[prefix + "member_widths"].tolist(),
                   arrays[prefix + "member_heights"].tolist(), mtimes[files].tolist(),
                   strict=True)]
    starts = arrays[prefix + "group_starts"].tolist()
    kinds = arrays[prefix + "group_kinds"].tolist()
    keepers = arrays[prefix + "group_keepers"].tolist()
    group_tiers = arrays[prefix + "group_tiers"].tolist()
    reasons = _split(arrays[prefix + "group_reasons"], len(kinds))
    return tuple(
        Group(_KINDS[kind], tuple(members[starts[n]:starts[n + 1]]), paths[keeper],
              TIERS[tier], reason)
        for n, (kind, keeper, tier, reason) in enumerate(
            zip(kinds, keepers, group_tiers, reasons, strict=True)))


def _memo_of(meta: dict, arrays: dict[str, np.ndarray]) -> Memo:
    starts = arrays["starts"]
    table = ContentTable(
        _split(arrays["paths"], int(starts[-1])), arrays["sizes"], arrays["mtimes"], starts,
        arrays["widths"], arrays["heights"], _split(arrays["digests"], len(starts) - 1))
    backbone, floor, across = meta["graph"]
    pairs = arrays["pairs"]
    graph = SimilarityGraph(backbone, table, pairs, arrays["cosines"], arrays["tiers"],
                            tuple(_split(arrays["reasons"], len(pairs))), arrays["moments"],
                            floor, across=tuple(across))
    groups = _groups_of("", arrays, table)
    files_seen, unique_contents, from_cache = meta["counts"]
    return Memo(groups, _groups_of("exact_", arrays, table),
                tuple(FileError(*row) for row in meta["errors"]), files_seen,
                unique_contents, from_cache, graph,
                tuple(frozenset(mark) for mark in meta["ignore_marks"]))

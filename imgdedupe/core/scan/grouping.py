"""The scan's last step: the similarity graph of the scored pairs, and
the exact-copy groups, from the library's contents.

The graph holds only the contents that can group at a threshold at or
above the slider's floor (those in a pair, and byte copies); the groups
themselves are made by groups.graph.groups_at, as the window does when
the slider moves.
"""

from __future__ import annotations

import numpy as np

from imgdedupe.core.errors import DecodeError
from imgdedupe.core.files.hashing import content_hash
from imgdedupe.core.groups.contents import Content, PixelSizes, content_table
from imgdedupe.core.groups.graph import SimilarityGraph, exact_groups
from imgdedupe.core.records import Group, IgnoreMarks, ImageFile
from imgdedupe.core.scan.verify_step import Verdicts
from imgdedupe.core.storage.store import CachedFile, Store


def exact_copy_groups(files_of: dict[str, list[CachedFile]],
                      pixel_sizes: PixelSizes) -> list[Group]:
    """The groups of byte-identical files: what a scan announces first."""
    return exact_groups(_content(key, files, pixel_sizes)
                        for key, files in files_of.items() if len(files) > 1)


def _content(key: str, files: list[CachedFile], pixel_sizes: PixelSizes) -> Content:
    width, height = pixel_sizes[key]
    return Content(tuple(ImageFile(c.path, c.size, c.mtime_ns) for c in files), width, height,
                   None if key.startswith("id:") else key)


def similarity_graph(backbone: str, usable: list[str], files_of: dict[str, list[CachedFile]],
                     pixel_sizes: PixelSizes, pairs: np.ndarray, scores: np.ndarray,
                     verdicts: Verdicts, floor: float,
                     ignore_marks: IgnoreMarks, store: Store
                     ) -> tuple[SimilarityGraph, bool]:
    """The graph of the contents that can group at any threshold >= floor:
    those in a scored pair (``pairs`` index ``usable``), and byte copies.
    The other 99% of a library never group, and are left out (at 100k
    files, building them cost more than the rest of a rescan's grouping).
    Also whether every content an ignore mark may concern could be hashed."""
    # Which contents are in a pair, by a mask: np.unique (which numpy 2
    # does by hashing) took 149 ms over 2M pairs, holding the GIL.
    in_pair = np.zeros(len(usable), dtype=bool)
    in_pair[pairs.ravel()] = True
    keys = sorted({usable[i] for i in np.flatnonzero(in_pair).tolist()}
                  | {k for k, f in files_of.items() if len(f) > 1})
    node_of = {k: n for n, k in enumerate(keys)}
    remap = np.array([node_of.get(k, -1) for k in usable], dtype=np.int64)
    digests, hashed = (_digests_for_ignore_marks(keys, files_of, store) if ignore_marks
                       else ({}, True))
    nodes = content_table(keys, files_of, pixel_sizes, digests)
    graph_pairs = remap[pairs] if len(pairs) else np.zeros((0, 2), dtype=np.int64)
    moments = np.full(len(keys), np.nan)
    known = remap >= 0
    moments[remap[known]] = verdicts.moments[known]
    graph = SimilarityGraph(backbone, nodes, graph_pairs, np.asarray(scores, np.float32),
                            np.asarray(verdicts.tiers, np.int8), verdicts.reasons, moments,
                            floor)
    return graph, hashed


def _digests_for_ignore_marks(keys: list[str], files_of: dict[str, list[CachedFile]],
                              store: Store) -> tuple[dict[str, str], bool]:
    """Content hashes of the paired files that have none yet, and whether
    every one could be read. An ignore mark is keyed by content, and a
    renamed or moved file is a new row without a hash; only paired files
    are hashed, not the library."""
    digests: dict[str, str] = {}
    rows: list[tuple[int, str]] = []
    complete = True
    for key in keys:
        if key.startswith("id:"):
            files = files_of[key]
            try:
                digests[key] = content_hash(files[0].path)
            except DecodeError:
                complete = False
                continue  # unreadable now: no mark can apply to it
            rows += [(c.file_id, digests[key]) for c in files]
    store.set_hashes(rows)
    return digests, complete

""""Find similar" for the window: runs on a pool thread, returns a Group.

The query image becomes the group's first member and its neighbours
follow, best first, so the results reuse the thumbnail grid.
"""

from __future__ import annotations

import os

from ...core.images.decode import read_image_size
from ...core.pairs.similar import find_similar, folder_scanned
from ...core.records import Group, Member
from ...core.scan.config import ScanConfig
from ...core.storage.store import Store
from .scan_worker import BackboneCache

DEFAULT_K = 12


def _member(path: str, similarity: float) -> Member | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # gone since the scan: not worth showing
    width, height = read_image_size(path) or (None, None)
    return Member(path, similarity, None, st.st_size, width, height, st.st_mtime_ns)


def similar_group(path: str, config: ScanConfig, backbones: BackboneCache,
                  k: int = DEFAULT_K) -> tuple[Group, bool]:
    """The query and its ``k`` nearest cached neighbours (the query is
    embedded on the spot, cached or not), and whether the cache holds the
    query's folder. Raises DecodeError for an unreadable query,
    DatabaseError for a bad cache."""
    backbone, _ = backbones.get(config)
    with Store(config.db_path) as store:
        matches = find_similar(path, store, backbone, k=k, rotations=config.rotations)
        scanned = folder_scanned(store, path)
    query = _member(path, 100.0)
    members = [m for m in [query, *(_member(x.path, x.similarity) for x in matches)]
               if m is not None]
    # The embedding's neighbours, not verified copies: for review only.
    return Group("similar", tuple(members), path, "similar_shot",
                 "the photos most like this one, not checked as copies"), scanned

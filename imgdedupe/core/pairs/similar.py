"""Find the cached images most similar to one image ("Find similar").

The query may be any image, also one outside the scanned folders. Search
is exact: one matrix-vector product over the cached vectors is
milliseconds even for 100k images, and it needs no index to be current.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from imgdedupe.core.images.preprocess import decode_for_network, with_rotations
from imgdedupe.core.model import calibration
from imgdedupe.core.model.backbone import Backbone
from imgdedupe.core.storage.store import Store


@dataclass(frozen=True, slots=True)
class Match:
    path: str
    similarity: float  # 0-100 calibrated
    cosine: float


def find_similar(image: str, store: Store, backbone: Backbone, k: int = 10,
                 rotations: bool = True) -> list[Match]:
    """Up to ``k`` best matches, best first; the query file itself is left
    out, byte copies of it are not. Raises DecodeError for a bad query."""
    array = decode_for_network(image).array
    batch = array[None]
    queries = backbone.embed(with_rotations(batch) if rotations else batch)  # (Q, D)
    files, matrix = store.all_vectors(backbone.info.model_id, backbone.info.dim)
    if not files:
        return []
    scores = (matrix.astype(np.float32) @ queries.T).max(axis=1)
    query_real = os.path.realpath(image)
    matches: list[Match] = []
    for n in np.argsort(-scores, kind="stable"):
        f = files[n]
        if os.path.realpath(f.path) == query_real or not os.path.exists(f.path):
            continue  # the query itself, or a file deleted since the scan
        score = float(calibration.cosine_to_score(backbone.info.name, float(scores[n])))
        matches.append(Match(f.path, round(score, 2), float(scores[n])))
        if len(matches) >= k:
            break
    return matches


def folder_scanned(store: Store, image: str) -> bool:
    """Whether the cache holds the photos of ``image``'s folder: when not,
    "Find similar" offers to scan it instead of answering from elsewhere."""
    return store.has_files_in(os.path.dirname(os.path.abspath(image)))

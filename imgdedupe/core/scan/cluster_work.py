"""What runs on a Ray cluster's nodes during a clustered scan (scan.cluster).

Two steps, each a Ray Data ``map_batches`` over a batch of files:

* ``decode_batch``, a CPU task: the local decode pool's own function
  (images.decode_pool.decode_and_hash) on each path, so the network input,
  perceptual hash, capture time and verification picture are the ones a
  local scan makes. A file that fails is a row with its error, not a
  failed task: one bad file must not cost its batch.
* ``EmbedActor``, an actor (one per GPU, or per few CPUs) holding the
  single-machine backbone built from the driver's plan; it refuses to run
  if the model it loaded is not the planned one (never mix two models'
  vectors in a cache).

No Ray import here: Ray calls these on plain dicts of numpy arrays. The
224 x 224 network input stays on the cluster; only vectors, hashes,
pictures and sizes come back to the one writer.
"""

from __future__ import annotations

import math

import numpy as np

from imgdedupe.core.errors import DecodeError
from imgdedupe.core.images.decode_pool import decode_and_hash
from imgdedupe.core.images.preprocess import INPUT_SIZE
from imgdedupe.core.model.loading import BackbonePlan, build_backbone

Batch = dict[str, np.ndarray]


def decode_batch(batch: Batch) -> Batch:
    """Decode and hash every path of ``batch`` (columns key, path)."""
    keys, paths = batch["key"], batch["path"]
    n = len(paths)
    arrays = np.zeros((n, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    widths = np.zeros(n, np.int64)
    heights = np.zeros(n, np.int64)
    phashes = np.zeros(n, np.uint64)
    taken = np.full(n, math.nan)
    pictures: list[bytes] = []
    reasons: list[str] = []
    details: list[str] = []
    for i, path in enumerate(paths):
        try:
            decoded = decode_and_hash(str(path))
        except DecodeError as exc:
            pictures.append(b"")
            reasons.append(exc.reason)
            details.append(exc.detail)
            continue
        arrays[i] = decoded.array
        widths[i], heights[i] = decoded.width, decoded.height
        phashes[i] = decoded.phash
        if decoded.taken is not None:
            taken[i] = decoded.taken
        pictures.append(decoded.picture)
        reasons.append("")
        details.append("")
    return {"key": np.asarray(keys), "array": arrays, "width": widths, "height": heights,
            "phash": phashes, "taken": taken,
            "picture": np.array(pictures, dtype=object),
            "error_reason": np.array(reasons, dtype=object),
            "error_detail": np.array(details, dtype=object)}


class EmbedActor:
    """Holds the planned backbone; embeds the decoded rows of a batch."""

    def __init__(self, plan: BackbonePlan, device: str, threads: int) -> None:
        if device == "cpu" and threads:
            import torch

            torch.set_num_threads(threads)
        # build_backbone raises if the weights here give another model id.
        self.backbone = build_backbone(plan, device)

    def __call__(self, batch: Batch) -> Batch:
        ok = batch["error_reason"] == ""
        out = {name: column for name, column in batch.items() if name != "array"}
        vectors = np.zeros((len(ok), self.backbone.info.dim), np.float16)
        if ok.any():
            # float16 as the cache holds it (scan.embed_step): the same
            # numbers on the first scan and on a rescan from the cache.
            vectors[ok] = self.backbone.embed(batch["array"][ok]).astype(np.float16)
        out["vector"] = vectors
        return out

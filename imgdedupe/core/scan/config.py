"""What a scan is asked to do, and where its caches live."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from imgdedupe.core.groups.graph import FLOOR_SCORE
from imgdedupe.core.groups.keeper_rules import DEFAULT_CHAIN, KeeperChain
from imgdedupe.core.model import calibration
from imgdedupe.core.pairs import search
from imgdedupe.core.pairs.search import IndexParams


@dataclass(frozen=True)
class ScanConfig:
    roots: tuple[str, ...]
    db_path: str
    backbone: str = "resnet50"
    weights: str | None = None
    device: str = "auto"
    threshold: float = calibration.DEFAULT_THRESHOLD  # 0-100 user scale
    rotations: bool = True
    include_hidden: bool = False
    # Only pairs whose photos lie under different roots group ("what in my
    # phone dump is already in my library"): groups.graph.across_only.
    across: bool = False
    batch_size: int = 0  # 0: 16 on a CPU, 128 on a GPU
    decode_workers: int = 0  # 0: one per core
    decode_pool: str = "auto"  # threads, processes, or auto (decode_pool.choose_processes)
    allow_download: bool = False
    bundled_weights_dirs: tuple[str, ...] | None = None  # None: the app's resources/
    index: IndexParams = field(default_factory=IndexParams)
    # Chooses each group's suggested keeper after grouping; not part of the
    # scan memo's key: the memo's groups are re-chosen on every replay.
    keep_rules: KeeperChain = DEFAULT_CHAIN
    # Decode and embed on a Ray cluster: "ray://host:port", or "auto" (the
    # local one). None: on this machine. Not in the memo's key: a cluster
    # gives the vectors this machine would (scan.cluster).
    cluster: str | None = None


def cache_dir(config: ScanConfig, model_id: str) -> Path:
    """Where the index, the pair cache and the scan memo of a model live."""
    return Path(config.db_path).with_suffix(".index") / model_id.replace(":", "_")


def workers(config: ScanConfig) -> int:
    """Threads (or processes) that decode and hash: one per core by default."""
    return config.decode_workers or max(2, os.cpu_count() or 2)


def memo_settings(config: ScanConfig, roots: tuple[str, ...], name: str) -> dict:
    """The settings a scan's answer depends on (see scan.memo)."""
    floor = min(FLOOR_SCORE, config.threshold)
    return {
        "roots": roots,
        "include_hidden": config.include_hidden,
        "across": config.across,  # a toggle must never replay the other answer
        "threshold": config.threshold,
        "rotations": config.rotations,
        "index": asdict(config.index),
        # Large libraries search with FAISS when it is installed, Annoy when
        # not: installing it must not replay Annoy's answer (pairs.cache).
        "faiss": search.faiss_available(),
        "cosines": [calibration.score_to_cosine(name, score)
                    for score in (config.threshold, floor)],
    }

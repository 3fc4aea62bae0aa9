"""FAISS candidates for the largest libraries (``search.FAISS_FROM`` images up).

Same contract as the Annoy forest (``ann.StreamedForest``): the vectors are
read a chunk at a time, projected by the same PCA, and only *propose*
candidates; ``ann.rescored_pairs`` scores every candidate exactly from the
full vectors, so a threshold means the same thing whichever index ran.

The index is an inverted file of the projected vectors, uncompressed
(IVF-Flat, inner product on unit vectors = cosine): on bench_index_1m's
planted near-duplicates it was chosen over IVF-PQ and HNSW by
measurement (docs/scale.md). ``faiss-cpu`` is the optional extra
``imgdedupe[large]``, imported only here and only when a library is this
large; without it, ``search`` keeps using Annoy (and the scan says so).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from imgdedupe.core.pairs.ann import (
    QUERY_THREADS,
    READ_CHUNK,
    VectorSource,
    fit_pca,
    load_pca,
    project,
    query_sizes,
    remove_stale_indexes,
    save_pca,
    sorted_unique,
)

log = logging.getLogger(__name__)

# Cells probed per query. On bench_index_1m's planted near-duplicates at
# 100k (1,024 cells), 8 probes proposed 0.9996 of them in 9.3 s of queries,
# 16 probes 0.9998 in 33.7 s, 4 probes 0.9985, 1 probe 0.950 (docs/scale.md).
NPROBE = 8
# k-means of the cells is trained on this many vectors per cell (faiss warns
# below 39): stable enough cells, and the training's cost (sample x cells)
# stays a part of the build.
TRAIN_PER_CELL = 40
# k-means rounds (faiss's default is 25). The cells only decide which
# vectors a query scans, and several are probed; each round at 1M photos
# is a 164k x 4096 x 128 product (~170 GFLOP), the build's largest part.
TRAIN_ROUNDS = 10


def faiss_available() -> bool:
    """Whether ``faiss`` can be imported (without importing it: 0.3 s)."""
    return importlib.util.find_spec("faiss") is not None


def cells_for(count: int) -> int:
    """Inverted-list cells: a power of two near 4 sqrt(N), faiss's guideline
    (4096 at 1M), and never more than a 39th of the vectors to train on."""
    cells = int(2 ** round(np.log2(4 * np.sqrt(count))))
    return max(1, min(cells, count // 39))


def new_index(dims: int, cells: int) -> tuple[Any, Any]:
    """(quantizer, IVF-Flat index) of unit ``dims``-d vectors, untrained. The
    quantizer (the cells' centres) must be kept alive: the index borrows it."""
    import faiss

    quantizer = faiss.IndexFlatIP(dims)
    index = faiss.IndexIVFFlat(quantizer, dims, cells, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = TRAIN_ROUNDS
    index.nprobe = min(NPROBE, cells)
    return quantizer, index


class FaissCandidates:
    """PCA to ``dims`` and an IVF-Flat index of the projected upright vectors,
    saved in ``cache_dir`` under ``key`` when one is given."""

    def __init__(self, source: VectorSource, dims: int, key: str = "",
                 cache_dir: Path | None = None) -> None:
        import faiss

        faiss.omp_set_num_threads(QUERY_THREADS)
        self.mean, self.components = fit_pca(source, dims)
        cells = cells_for(source.count)
        self._quantizer, self._index = new_index(dims, cells)
        self._index.train(self._training_sample(source, cells))
        for first in range(0, source.count, READ_CHUNK):
            upright, _ = source.read(np.arange(first, min(source.count, first + READ_CHUNK)))
            self._index.add(self._project(upright))
        if cache_dir is not None:
            self._save(cache_dir, key)

    def _save(self, cache_dir: Path, key: str) -> None:
        """Kept beside the pair cache, as the Annoy forest is, so that a
        rescan that embedded a few photos searches only those in it
        (``cache.grown_pairs``); written under temp names, then renamed."""
        import faiss

        cache_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_indexes(cache_dir, key)
        index_file, pca_file = cache_dir / f"{key}.faiss", cache_dir / f"{key}.pca.npz"
        tmp = index_file.with_name(f"{index_file.name}.{os.getpid()}.tmp")
        faiss.write_index(self._index, str(tmp))
        tmp.replace(index_file)
        save_pca(pca_file, self.mean, self.components)

    @classmethod
    def cached(cls, key: str, cache_dir: Path) -> FaissCandidates | None:
        """The index saved under ``key``, or None; never builds one."""
        import faiss

        index_file, pca_file = cache_dir / f"{key}.faiss", cache_dir / f"{key}.pca.npz"
        if not (index_file.exists() and pca_file.exists()):
            return None
        found = cls.__new__(cls)
        try:
            found.mean, found.components = load_pca(pca_file)
            found._index = faiss.read_index(str(index_file))
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            log.debug("cannot load the FAISS index %s: %s", index_file, exc)
            return None
        found._index.nprobe = min(NPROBE, found._index.nlist)
        faiss.omp_set_num_threads(QUERY_THREADS)
        return found

    def neighbours_of(self, upright: np.ndarray, rotated: np.ndarray | None,
                      neighbours: int) -> list[np.ndarray]:
        """Per image, the indexed items its upright and rotated vectors find:
        the queries ``candidate_keys`` makes, for images not in the index."""
        k, k_rotated = query_sizes(neighbours)
        items = self._index.search(self._project(upright), k)[1]
        turned = None
        if rotated is not None:
            turned = self._index.search(self._project(rotated.reshape(-1, rotated.shape[-1])),
                                        k_rotated)[1].reshape(len(upright), -1)
        found = []
        for n in range(len(upright)):
            mine = items[n] if turned is None else np.concatenate([items[n], turned[n]])
            found.append(np.unique(mine[mine >= 0]).astype(np.int64))
        return found

    def _project(self, vectors: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(project(vectors, self.mean, self.components), np.float32)

    def _training_sample(self, source: VectorSource, cells: int) -> np.ndarray:
        # A fixed seed: the same vectors give the same cells, the same pairs.
        rng = np.random.default_rng(0)
        size = min(source.count, TRAIN_PER_CELL * cells)
        positions = np.sort(rng.choice(source.count, size, replace=False))
        # Read and projected a chunk at a time: the sample's full vectors
        # (262k x 1280 at 1M photos) would hold 670 MB even as float16.
        return np.concatenate([self._project(source.read(positions[i:i + READ_CHUNK])[0])
                               for i in range(0, size, READ_CHUNK)])

    def candidate_keys(self, source: VectorSource, neighbours: int) -> np.ndarray:
        """Sorted unique ``lo * count + hi`` of every candidate pair: the
        nearest items of each image's upright and rotated vectors, as
        ``StreamedForest.candidate_keys`` asks them of Annoy."""
        n = source.count
        k, k_rotated = query_sizes(neighbours)
        found: list[np.ndarray] = []
        for first in range(0, n, READ_CHUNK):
            owners = np.arange(first, min(n, first + READ_CHUNK))
            upright, rotated = source.read(owners)
            # faiss searches a whole batch on its own threads, without the GIL.
            items = [self._index.search(self._project(upright), min(k, n))[1]]
            owner_of = [np.repeat(owners, items[0].shape[1])]
            if rotated is not None:
                turned = self._project(rotated.reshape(-1, rotated.shape[-1]))
                items.append(self._index.search(turned, min(k_rotated, n))[1])
                owner_of.append(np.repeat(np.repeat(owners, rotated.shape[1]),
                                          items[1].shape[1]))
            owner = np.concatenate(owner_of)
            j = np.concatenate([i.ravel() for i in items]).astype(np.int64)
            keep = (j >= 0) & (j != owner)  # -1: fewer than k items in the probed cells
            owner, j = owner[keep], j[keep]
            found.append(sorted_unique(np.minimum(owner, j) * n + np.maximum(owner, j)))
        if not found:
            return np.zeros(0, dtype=np.int64)
        return sorted_unique(np.concatenate(found))

    def close(self) -> None:
        self._index.reset()  # frees the inverted lists now, not at the next GC

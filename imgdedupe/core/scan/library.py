"""The scan's first steps: walk the folders, bring the cache's rows up to
date, and find exact copies by content hash.

What comes out is the library as the later steps see it: every distinct
content (one picture's bytes) with its byte-identical files, and which of
them the cache already holds a vector for.
"""

from __future__ import annotations

import os
import threading
from collections import Counter, defaultdict
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from operator import attrgetter

from imgdedupe.core.errors import DecodeError, raise_if_cancelled
from imgdedupe.core.files.companions import Companions, companions_on_disk
from imgdedupe.core.files.hashing import content_hash
from imgdedupe.core.files.walk import walk_batches
from imgdedupe.core.records import FileError, ImageFile
from imgdedupe.core.scan.config import ScanConfig, workers
from imgdedupe.core.scan.events import Progress
from imgdedupe.core.storage.store import CachedFile, Store


def walk_files(config: ScanConfig, roots: tuple[str, ...], errors: list[FileError],
               cancel: threading.Event | None) -> Generator[Progress, None, list[ImageFile]]:
    """Every image file below ``roots``; the walk's problems go to ``errors``."""
    files: list[ImageFile] = []
    reported = 0
    for batch in walk_batches(roots, include_hidden=config.include_hidden, cancel=cancel):
        problems = [item for item in batch if isinstance(item, FileError)]
        if problems:
            errors += problems
            batch = [item for item in batch if not isinstance(item, FileError)]
        files += batch  # type: ignore[arg-type]  # errors were taken out above
        if len(files) - reported >= 500:
            reported = len(files)
            raise_if_cancelled(cancel)
            yield Progress("walk", len(files))
    raise_if_cancelled(cancel)
    yield Progress("walk", len(files), len(files))
    return files


def set_companions_apart(files: list[ImageFile]) -> tuple[list[ImageFile], Companions]:
    """The photos to scan, and each one's companion files. A RAW beside its
    own JPEG or HEIC is that photo's companion, not a photo: it is left
    out of the scan, so the two are never offered as duplicates."""
    companions = companions_on_disk([f.path for f in files])
    if companions.absorbed:
        files = [f for f in files if f.path not in companions.absorbed]
    return files, companions


def hash_contents(config: ScanConfig, store: Store, cached: list[CachedFile],
                  errors: list[FileError], cancel: threading.Event | None
                  ) -> Generator[Progress, None, dict[str, list[CachedFile]]]:
    """Hash what needs it; return the files by content (path order within)."""
    shared = Counter(c.size for c in cached)
    to_hash = [c for c in cached if c.content_hash is None and shared[c.size] > 1]
    hashes: dict[int, str] = {}
    gone: set[int] = set()
    with ThreadPoolExecutor(max_workers=workers(config)) as pool:
        futures = [(c, pool.submit(content_hash, c.path)) for c in to_hash]
        for done, (c, future) in enumerate(futures, 1):
            try:
                hashes[c.file_id] = future.result()
            except DecodeError as exc:
                errors.append(FileError(c.path, exc.reason, exc.detail))
                gone.add(c.file_id)
            if done % 50 == 0:
                raise_if_cancelled(cancel)
                yield Progress("hash", done, len(to_hash))
    store.set_hashes(hashes.items())
    contents: dict[str, list[CachedFile]] = defaultdict(list)
    for c in cached:
        if c.file_id not in gone:
            key = hashes.get(c.file_id) or c.content_hash or f"id:{c.file_id}"
            contents[key].append(c)
    for members in contents.values():
        if len(members) > 1:
            members.sort(key=_path_of)
    yield Progress("hash", len(to_hash), len(to_hash))
    return contents


_path_of = attrgetter("path")


def cached_contents(contents: dict[str, list[CachedFile]], with_vectors: set[int],
                     errors: list[FileError]) -> tuple[dict[str, int], list[str]]:
    """The representative file of each content with a cached vector, and
    the contents still to embed, sorted. Unchanged files that failed before
    are reported again, not retried."""
    reps: dict[str, int] = {}
    pending: list[str] = []
    # In walk (= memory) order, not sorted: the phase took 0.17 s sorted,
    # 0.05 s so, for 100k contents (cache misses).
    for key, group in contents.items():
        if group[0].file_id in with_vectors:  # the common case, without a call
            reps[key] = group[0].file_id
            continue
        rep = _first_with_vector(group, with_vectors)
        if rep is not None:
            reps[key] = rep
            continue
        bad = next((c for c in group if c.error_reason), None)
        if bad is not None:
            errors.extend(FileError(c.path, bad.error_reason or "", bad.error_detail or "")
                          for c in group)
        else:
            pending.append(key)
    # By file name, then content: copies usually keep their name (a backup
    # folder, "IMG_0042 (1).jpg", an export), so they are decoded, hashed
    # and reported as near-exact copies within seconds of each other rather
    # than minutes apart. The order changes nothing else: every content is
    # embedded either way.
    pending.sort(key=lambda key: (_stem(contents[key][0].path), key))
    return reps, pending


def _stem(path: str) -> str:
    """'IMG_0042' for '/a/IMG_0042 (1).JPG' or '/b/IMG_0042-edited.jpg'."""
    name = os.path.splitext(os.path.basename(path))[0].lower()
    return name.split(" (")[0].split("-edited")[0]


def _first_with_vector(group: list[CachedFile], with_vectors: set[int]) -> int | None:
    for c in group:
        if c.file_id in with_vectors:
            return c.file_id
    return None

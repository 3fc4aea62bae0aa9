"""Exact copies by content hash, without decoding anything.

Only files that share their size with another file can be byte copies, so
only those are read; in a photo library that is a small minority.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

from .errors import DecodeError
from .records import ErrorReason

_CHUNK = 1 << 20


def content_hash(path: str) -> str:
    """BLAKE2b-128 of the file's bytes; raises DecodeError with a reason."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as handle:
            # hashlib releases the GIL on large buffers, so a thread pool
            # hashes several files at once.
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError as exc:
        raise DecodeError(ErrorReason.VANISHED, "the file was deleted during the scan") from exc
    except PermissionError as exc:
        raise DecodeError(ErrorReason.PERMISSION, f"permission denied: {exc.strerror}") from exc
    except OSError as exc:
        raise DecodeError(ErrorReason.IO_ERROR, f"read error: {exc}") from exc
    return digest.hexdigest()


def sizes_shared(sizes: Iterable[tuple[int, int]]) -> set[int]:
    """Of (key, size) items, the keys whose size occurs more than once."""
    by_size: dict[int, list[int]] = defaultdict(list)
    for key, size in sizes:
        by_size[size].append(key)
    return {k for keys in by_size.values() if len(keys) > 1 for k in keys}

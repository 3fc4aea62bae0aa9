"""Exact copies by content hash, without decoding anything.

Only files that share their size with another file can be byte copies, so
only those are read; in a photo library that is a small minority.
"""

from __future__ import annotations

import hashlib

from imgdedupe.core.errors import DecodeError, os_error_reason

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
    except OSError as exc:
        raise DecodeError(*os_error_reason(exc)) from exc
    return digest.hexdigest()


"""Cache files beside the database, written so that a crash leaves the
old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def save_npz(path: Path, arrays: dict[str, np.ndarray], what: str) -> None:
    """Write ``arrays`` to ``path`` through a temp file and a rename.

    These files are only caches: a full or read-only disk costs the next
    scan some time, never this scan its result, so a failure is logged
    (as ``what``) and swallowed. Temp files of a scan killed mid-save are
    removed first; the scan lock (storage.dblock) means no other scan of this
    database is writing one now.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f"{path.name}.*.tmp.npz"):
            stale.unlink(missing_ok=True)
        np.savez(tmp, allow_pickle=False, **arrays)
        tmp.replace(path)
    except OSError as exc:
        log.warning("could not save the %s in %s: %s", what, path.parent, exc)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)

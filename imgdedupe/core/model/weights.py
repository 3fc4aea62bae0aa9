"""Find, verify and (optionally) download model weights.

Qt-free so the CLI, the GUI and tests share one code path. torch is
imported lazily: locating and hashing a file must not pay torch's import
cost (e.g. for ``--help`` or an early "weights missing" error).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from imgdedupe.core.errors import (
    DownloadCancelled,
    WeightsChecksumError,
    WeightsError,
    cancelled,
)

log = logging.getLogger(__name__)

ENV_VAR = "IMGDEDUPE_WEIGHTS"
_HASH_CHUNK = 1024 * 1024
# Smaller than the hash chunk so progress and cancel react several times
# per second even on a slow link.
_NET_CHUNK = 64 * 1024

Progress = Callable[[int, int | None], None]
Source = Literal["explicit", "env", "bundled", "hub-cache", "download"]


@dataclass(frozen=True, slots=True)
class WeightsSpec:
    """What a weights file must be. ``sha256`` (full hex digest) wins over
    ``sha256_prefix`` when known; the prefix is what torchvision puts in
    its file names, the only part of the digest we can know offline."""

    filename: str
    url: str
    sha256_prefix: str
    sha256: str | None


@dataclass(frozen=True, slots=True)
class LocatedWeights:
    path: Path
    sha256: str
    source: Source


RESNET50_IMAGENET1K_V2 = WeightsSpec(
    "resnet50-11ad3fa6.pth",
    "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
    "11ad3fa6",
    # The whole file's digest (102,540,417 bytes), as the release's
    # packaging/fetch_weights.py checks it: a user's copy is checked as fully.
    "11ad3fa62ca79e40addfd354a8ec4b7c75143b3038b8d2a807fbc68deab379ca",
)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Full hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class DigestCache(Protocol):
    """Digests remembered across runs (storage.store.Store is one)."""

    def known_digest(self, key: str) -> str | None: ...
    def remember_digest(self, key: str, digest: str) -> None: ...


def sha256_remembered(path: Path, cache: DigestCache | None) -> str:
    """``sha256_file``, remembered by ``cache`` under the file's path, size,
    mtime and inode: ResNet50's 100 MB took ~0.1 s to hash on every scan,
    a fifth of the rescan of 100k unchanged files. The first use of a file
    is always hashed in full; a file replaced or rewritten is a new key."""
    if cache is None:
        return sha256_file(path)
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
    digest = cache.known_digest(key)
    if digest is None:
        digest = sha256_file(path)
        cache.remember_digest(key, digest)
    return digest


def _check_digest(actual: str, spec: WeightsSpec, path: Path) -> None:
    """Raise WeightsChecksumError unless ``actual`` satisfies ``spec``."""
    if spec.sha256 is not None:
        ok = actual == spec.sha256.lower()
        expected = spec.sha256.lower()
    else:
        ok = actual.startswith(spec.sha256_prefix.lower())
        expected = f"{spec.sha256_prefix.lower()}... (first {len(spec.sha256_prefix)} hex digits)"
    if not ok:
        raise WeightsChecksumError(
            f"Weights file {path} has the wrong SHA-256.\n"
            f"  expected: {expected}\n"
            f"  actual:   {actual}\n"
            "The file is corrupt, truncated or not the expected model. Delete it or "
            f"replace it with a fresh copy from {spec.url}"
        )


def _verify(path: Path, spec: WeightsSpec, digests: DigestCache | None = None) -> str:
    # Never trust the file name: torchvision only checks its hash prefix at
    # download time, so a file copied by hand may be anything.
    try:
        actual = sha256_remembered(path, digests)
    except OSError as e:
        raise WeightsError(f"Cannot read weights file {path}: {e}") from e
    _check_digest(actual, spec, path)
    return actual


def _default_hub_dir() -> Path:
    """torch.hub's checkpoints folder. Worked out as torch.hub.get_dir()
    does ($TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch; then
    hub/) unless torch is already imported: finding the weights must not
    import torch (half a second) on a rescan that runs no model."""
    torch = sys.modules.get("torch")
    if torch is not None:
        import torch.hub  # already imported: free, and honours torch.hub.set_dir

        return Path(torch.hub.get_dir()) / "checkpoints"
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))
    return Path(home) / "hub" / "checkpoints"


def locate_weights(
    spec: WeightsSpec,
    *,
    explicit: str | os.PathLike[str] | None = None,
    bundled_dirs: Sequence[Path] = (),
    hub_dir: Path | None = None,
    allow_download: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    download_dir: Path | None = None,
    digests: DigestCache | None = None,
) -> LocatedWeights:
    """Find a verified weights file for ``spec``.

    Order: ``explicit`` (else $IMGDEDUPE_WEIGHTS), each ``bundled_dirs``
    entry, the torch hub checkpoints folder (``hub_dir``), then a download
    into ``download_dir`` (default: the hub folder) if ``allow_download``.
    A file that exists but fails its checksum raises WeightsChecksumError
    rather than falling through: silently using another copy would hide a
    corrupt file the user has to fix.
    """
    source: Source = "explicit" if explicit is not None else "env"
    # An empty variable means "unset".
    chosen = os.fspath(explicit) if explicit is not None else os.environ.get(ENV_VAR) or None
    if chosen is not None:
        # A path the user named must exist: falling back to another copy
        # would make a typo silently use different weights.
        path = Path(chosen).expanduser()
        what = "--weights" if source == "explicit" else f"${ENV_VAR}"
        if not path.is_file():
            raise WeightsError(
                f"Weights file given by {what} does not exist (or is not a file): {path}"
            )
        digest = _verify(path, spec, digests)
        log.info("Using weights %s (from %s)", path, what)
        return LocatedWeights(path, digest, source)

    looked: list[Path] = []
    hub = hub_dir if hub_dir is not None else _default_hub_dir()
    candidates: list[tuple[Path, Source]] = [
        (Path(d) / spec.filename, "bundled") for d in bundled_dirs
    ]
    candidates.append((hub / spec.filename, "hub-cache"))
    for path, src in candidates:
        looked.append(path)
        if path.is_file():
            digest = _verify(path, spec, digests)
            log.info("Using weights %s (%s)", path, src)
            return LocatedWeights(path, digest, src)
        log.debug("No weights at %s", path)

    failure = ""
    if allow_download:
        dest = (download_dir if download_dir is not None else hub) / spec.filename
        if dest not in looked and dest.is_file():
            # Left by an earlier download into a custom folder.
            return LocatedWeights(dest, _verify(dest, spec), "download")
        try:
            path = download(spec.url, dest, expected=spec, progress=progress, cancel=cancel)
        except (WeightsChecksumError, DownloadCancelled):
            raise  # not "missing": the user must act on these as they are
        except WeightsError as e:
            failure = f"\nDownload failed: {e}\n"
        else:
            return LocatedWeights(path, sha256_file(path), "download")

    places = "\n".join(f"  - {p}" for p in looked)
    raise WeightsError(
        f"Model weights {spec.filename} not found. Looked in:\n{places}\n"
        f"{failure}"
        f"Download {spec.url}\n"
        f"and pass --weights FILE (or set {ENV_VAR}=FILE), or put it in one of the "
        "folders above, or use --backbone efficientnet-lite0 which needs no download."
    )


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:  # cleanup must not mask the original error
        log.warning("Could not remove temporary file %s: %s", path, e)


def download(
    url: str,
    dest: Path,
    *,
    expected: WeightsSpec,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    timeout: float = 30,
) -> Path:
    """Download ``url`` to ``dest``, verified against ``expected``.

    Writes to a ``.part`` file next to ``dest`` (same filesystem, so the
    final ``os.replace`` is atomic) and only moves it into place after the
    checksum passes: ``dest`` is never a half-written or wrong file, and the
    temp file is removed on every failure path.
    """
    dest = Path(dest)
    offline_hint = (
        f"Could not download {url}: {{}}\nIf this computer is offline, download the file "
        f"elsewhere and pass --weights FILE (or set {ENV_VAR}=FILE)."
    )
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsError(f"Cannot create folder {dest.parent}: {e}") from e
    if cancelled(cancel):
        raise DownloadCancelled(f"Download of {url} cancelled")

    log.info("Downloading %s to %s", url, dest)
    tmp = tempfile.NamedTemporaryFile(delete=False, dir=dest.parent, suffix=".part")
    tmp_path = Path(tmp.name)
    try:
        h = hashlib.sha256()
        done = 0
        try:
            with tmp, urllib.request.urlopen(url, timeout=timeout) as resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                while True:
                    # Checked before each chunk and once after the last, so a
                    # cancel always wins over committing the file.
                    if cancelled(cancel):
                        raise DownloadCancelled(f"Download of {url} cancelled")
                    chunk = resp.read(_NET_CHUNK)
                    if not chunk:
                        break
                    tmp.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
                tmp.flush()
                # fsync before the rename: otherwise a crash can leave a
                # correctly named file with zero-filled content.
                os.fsync(tmp.fileno())
        except urllib.error.HTTPError as e:
            e.close()  # the error carries an open response
            raise WeightsError(offline_hint.format(f"HTTP {e.code} {e.reason}")) from e
        except urllib.error.URLError as e:
            raise WeightsError(offline_hint.format(e.reason)) from e
        except (OSError, TimeoutError, ValueError) as e:
            # ValueError: malformed URL; OSError covers resets and timeouts.
            raise WeightsError(offline_hint.format(e)) from e
        if cancelled(cancel):
            raise DownloadCancelled(f"Download of {url} cancelled")
        if total is not None and done != total:
            raise WeightsError(
                offline_hint.format(f"connection closed after {done} of {total} bytes")
            )
        _check_digest(h.hexdigest(), expected, dest)
        os.replace(tmp_path, dest)
    except BaseException:
        # BaseException too: KeyboardInterrupt must not leave a .part behind.
        tmp.close()
        _unlink_quietly(tmp_path)
        raise
    log.info("Downloaded %s (%d bytes, sha256 %s)", dest, done, h.hexdigest())
    return dest


def stderr_progress(prefix: str, *, interval: float = 0.2) -> Progress:
    """A progress callback drawing a one-line bar on stderr.

    Throttled to one redraw per ``interval`` seconds: per-chunk writes to a
    terminal would otherwise cost more than the download itself.
    """
    last = float("-inf")  # draw the first call at once

    def callback(done: int, total: int | None) -> None:
        nonlocal last
        now = time.monotonic()
        finished = total is not None and done >= total
        if not finished and now - last < interval:
            return
        last = now
        mib = done / (1024 * 1024)
        if total:
            frac = min(done / total, 1.0)
            bar = "#" * int(frac * 30)
            line = f"\r{prefix} [{bar:<30}] {frac:4.0%} {mib:.1f}/{total / 1048576:.1f} MiB"
        else:
            line = f"\r{prefix} {mib:.1f} MiB"
        sys.stderr.write(line + ("\n" if finished else ""))
        sys.stderr.flush()

    return callback


def load_state_dict(path: Path) -> dict[str, Any]:
    """Load a state dict on the CPU, refusing arbitrary pickled code."""
    import torch  # lazy: see module docstring

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"{path} is not a valid PyTorch weights file: {e}") from e
    if not isinstance(state, dict):
        raise WeightsError(
            f"{path} is not a valid PyTorch weights file: expected a state dict, "
            f"got {type(state).__name__}"
        )
    return state

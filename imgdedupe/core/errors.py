"""One exception hierarchy, so callers can catch ``ImgDedupeError`` alone."""

from __future__ import annotations

import errno
import threading

from imgdedupe.core.records import ErrorReason


class ImgDedupeError(Exception):
    """Base class of every error the engine raises on purpose."""


class DatabaseError(ImgDedupeError):
    """The cache database cannot be opened, created or written."""


class WeightsError(ImgDedupeError):
    """Model weights are missing, corrupt or do not match their checksum."""


class WeightsChecksumError(WeightsError):
    """A weights file exists but its SHA-256 is not the expected one."""


class DownloadCancelled(WeightsError):
    """The user cancelled a weights download."""


class DecodeError(ImgDedupeError):
    """One file could not be turned into an image.

    ``reason`` is a short stable code (see ``records.ErrorReason``) and
    ``detail`` a human sentence; both go into reports.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # noqa: ANN204
        # Crosses from a decode process: rebuilt from both fields, not args.
        return type(self), (self.reason, self.detail)


class ScanCancelled(ImgDedupeError):
    """The caller set the cancel event; partial work is already cached."""


def cancelled(cancel: threading.Event | None) -> bool:
    """Whether the caller asked a long job to stop (None: it cannot)."""
    return cancel is not None and cancel.is_set()


def raise_if_cancelled(cancel: threading.Event | None) -> None:
    """The scan's cancel point: every step calls it between units of work."""
    if cancelled(cancel):
        raise ScanCancelled("scan cancelled; finished work is cached")


def os_error_reason(exc: OSError, what: str = "the file") -> tuple[str, str]:
    """(ErrorReason code, a sentence) for an OSError met reading ``what``:
    one wording wherever the walk, the hashing or the decoding meets it."""
    if isinstance(exc, FileNotFoundError):
        return ErrorReason.VANISHED, f"{what} disappeared during the scan"
    if isinstance(exc, PermissionError):
        return ErrorReason.PERMISSION, f"{what} cannot be read: {exc.strerror}"
    if exc.errno == errno.ELOOP:
        return ErrorReason.SYMLINK_LOOP, f"{what} is a symbolic link loop"
    return ErrorReason.IO_ERROR, f"{what} cannot be read: {exc}"

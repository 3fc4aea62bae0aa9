"""One exception hierarchy, so callers can catch ``ImgDedupeError`` alone."""

from __future__ import annotations

import threading


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


def raise_if_cancelled(cancel: threading.Event | None) -> None:
    """The scan's cancel point: every step calls it between units of work."""
    if cancel is not None and cancel.is_set():
        raise ScanCancelled("scan cancelled; finished work is cached")

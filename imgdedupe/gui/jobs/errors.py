"""``WorkerError``: how a failed background job reaches the window.

A scan, a download, a short task and an action on files all fail the same
way, as this record, which ``dialogs.show_error`` shows. It lives in a
module of its own, free of Qt, so the review widgets and the window can use
it without importing the scan thread.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WorkerError:
    """A failure the window shows in a dialog, with details to copy."""

    title: str
    message: str
    details: str

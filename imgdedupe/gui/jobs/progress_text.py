"""The status line of a running scan: phase, counts, images/s, time left.

Qt-free, so the wording and the rate arithmetic are plain to test.
"""

from __future__ import annotations

import time

from ...core.scan.events import Progress

PHASE_NAMES = {"walk": "Finding photos", "hash": "Finding exact copies",
               "embed": "Comparing pictures", "index": "Indexing",
               "verify": "Checking candidate pairs", "group": "Grouping",
               "done": "Done"}


class ProgressText:
    """Describes each Progress event of one scan; ``reset`` for the next."""

    def __init__(self) -> None:
        self._embed_clock: tuple[float, int] | None = None

    def reset(self) -> None:
        self._embed_clock = None

    def describe(self, event: Progress) -> str:
        name = PHASE_NAMES.get(event.phase, event.phase)
        if event.message and not event.done:
            return f"{name}: {event.message}"
        text = f"{name}: {event.done:,}"
        if event.total:
            text += f" of {event.total:,}"
        if event.phase == "verify":
            text += " pairs"
        if event.phase == "embed" and event.total and event.done:
            text += self._rate_and_eta(event.done, event.total)
        return text

    def _rate_and_eta(self, done: int, total: int) -> str:
        """Images/s and time left, measured from the first embed progress of
        this scan (model loading and cached files would skew it)."""
        if self._embed_clock is None or self._embed_clock[1] > done:
            self._embed_clock = (time.monotonic(), done)
            return ""
        started, first = self._embed_clock
        elapsed = time.monotonic() - started
        if elapsed < 0.5 or done <= first:
            return ""
        rate = (done - first) / elapsed
        left = (total - done) / rate
        eta = f"{left:.0f} s" if left < 90 else f"{left / 60:.0f} min"
        return f" · {rate:.1f} images/s · about {eta} left"

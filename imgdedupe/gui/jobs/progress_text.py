"""The status line of a running scan: phase, counts, images/s, time left.

Qt-free, so the wording and the rate arithmetic are plain to test.

The time left is the whole scan's: while photos are embedded it adds the
verification still to come (a photo's features as the scan times them on
this machine while the model runs, over the cores this process may use),
and while pairs are verified it follows the pace of the work they report.
Verification is a third of a cold scan on a CPU: leaving it out made the
estimate short by that much when the embedding ended.
"""

from __future__ import annotations

import os
import time

from ...core.scan.events import Progress
from ...core.scan.verify_step import estimated_verify_s

PHASE_NAMES = {"walk": "Finding photos", "hash": "Finding exact copies",
               "embed": "Comparing pictures", "index": "Indexing",
               "verify": "Checking candidate pairs", "group": "Grouping",
               "done": "Done"}


class ProgressText:
    """Describes each Progress event of one scan; ``reset`` for the next."""

    def __init__(self, cores: int | None = None) -> None:
        self._cores = cores or _usable_cores()
        self._embed_clock: tuple[float, int] | None = None
        self._verify_started: float | None = None
        self._verify_origin: tuple[float, float] | None = None  # (when, share) first measured
        self._verify_left_s = 0.0  # estimated when the embedding ends
        self.left_s: float | None = None  # the last time left shown (bench/eta_check.py)

    @property
    def verification_s(self) -> float:
        """The verification's estimated seconds, counted in the time left."""
        return self._verify_left_s

    def reset(self) -> None:
        self._embed_clock = None
        self._verify_started = None
        self._verify_origin = None
        self._verify_left_s = 0.0
        self.left_s = None

    def describe(self, event: Progress) -> str:
        name = PHASE_NAMES.get(event.phase, event.phase)
        if event.message and not event.done:
            return f"{name}: {event.message}"
        text = f"{name}: {event.done:,}"
        if event.total:
            text += f" of {event.total:,}"
        if event.phase == "verify":
            text += " pairs"
            if event.total:
                text += self._verify_eta(event)
        if event.phase == "embed" and event.total and event.done:
            text += self._rate_and_eta(event.done, event.total, event.feature_cost_s)
        return text

    def _rate_and_eta(self, done: int, total: int, feature_cost_s: float | None) -> str:
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
        # The photos embedded now are the ones whose pairs are verified next.
        self._verify_left_s = estimated_verify_s(total, self._cores, feature_cost_s)
        left = self.left_s = (total - done) / rate + self._verify_left_s
        return f" · {rate:.1f} images/s · about {_duration(left)} left"

    def _verify_eta(self, event: Progress) -> str:
        """Time left of the verification. For its first seconds, the
        estimate made when the embedding ended, counted down; then the pace
        of ``event.share``, the work done in this machine's measured
        seconds, which the scan reports because pairs alone are not equal
        work (a photo's features are made at its first pair, so the first
        pairs are the slowest: the pairs' pace erred 2x long on 2,000
        Caltech photos, bench/eta_check.py). The pace is taken from the
        first share reported, so the start (the cache read, the order, the
        first block's OpenCV start) does not weigh on the rest. Without a
        share, the sooner of the countdown and the pairs' pace, and that
        pace alone once the countdown is nearly spent."""
        now = time.monotonic()
        if self._verify_started is None or event.done == 0:
            self._verify_started = now
            self._verify_origin = None
        countdown = self._verify_left_s - (now - self._verify_started)
        if event.share is not None:
            if self._verify_origin is None or self._verify_origin[1] > event.share:
                self._verify_origin = (now, event.share)
            started, first = self._verify_origin
            done = event.share
        else:
            started, first = self._verify_started, 0.0
            done = event.done / max(1, event.total or 1)
        elapsed = now - started
        after = SHARE_PACE_AFTER_S if event.share is not None else PAIRS_PACE_AFTER_S
        pace = None
        if elapsed >= after and done > first:
            pace = (1.0 - done) * elapsed / (done - first)
        if pace is not None and event.share is not None:
            left = pace  # of the work itself: the measure, not the estimate
        elif countdown > 0.1 * self._verify_left_s:
            left = countdown if pace is None else min(pace, countdown)
        elif pace is not None:
            left = pace
        else:
            return ""
        self.left_s = left
        return f" · about {_duration(left)} left"


# Seconds of measured work before its pace replaces the estimate. From the
# first share the work's pace was within 10% of the time taken, at the
# median, on 2,000-3,000 photos (bench/eta_check.py), where the estimate
# made before verification ran 20-30% off as this machine's pace changed
# between runs; the pairs' pace alone needs longer.
SHARE_PACE_AFTER_S = 1.0
PAIRS_PACE_AFTER_S = 3.0


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _usable_cores() -> int:
    """Cores this process may run on (a taskset or a container limits them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1

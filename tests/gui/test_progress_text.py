"""The scan's status line, without a window."""

from __future__ import annotations

from imgdedupe.core.scan.events import Progress
from imgdedupe.gui.jobs import progress_text
from imgdedupe.gui.jobs.progress_text import ProgressText


def test_rate_and_time_left_restart_with_each_scan(monkeypatch):
    clock = iter([0.0, 2.0, 10.0, 10.2, 70.0])
    monkeypatch.setattr(progress_text.time, "monotonic", lambda: next(clock))
    text = ProgressText()
    assert text.describe(Progress("index", 0, 0, "annoy")) == "Indexing: annoy"
    assert text.describe(Progress("embed", 100, 10_000)) == "Comparing pictures: 100 of 10,000"
    # 200 images in 2 s: 100/s, 9,700 left: 97 s -> shown in minutes.
    assert text.describe(Progress("embed", 300, 10_000)) == (
        "Comparing pictures: 300 of 10,000 · 100.0 images/s · about 2 min left")
    text.reset()  # a new scan: the old clock must not count
    assert text.describe(Progress("embed", 5, 50)) == "Comparing pictures: 5 of 50"
    # Under half a second of measuring: no rate yet rather than a wild one.
    assert text.describe(Progress("embed", 6, 50)) == "Comparing pictures: 6 of 50"
    assert text.describe(Progress("embed", 45, 50)) == (
        "Comparing pictures: 45 of 50 · 0.7 images/s · about 8 s left")

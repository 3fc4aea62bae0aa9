"""The scan's status line, without a window."""

from __future__ import annotations

import pytest

from imgdedupe.core.scan.events import Progress
from imgdedupe.core.scan.verify_step import COST_OVER_FEATURES, CPU_SECONDS_PER_PHOTO
from imgdedupe.gui.jobs import progress_text
from imgdedupe.gui.jobs.progress_text import ProgressText


def _clock(monkeypatch, times):  # noqa: ANN001
    ticks = iter(times)
    monkeypatch.setattr(progress_text.time, "monotonic", lambda: next(ticks))


def test_rate_and_time_left_restart_with_each_scan(monkeypatch):
    _clock(monkeypatch, [0.0, 2.0, 10.0, 10.2, 70.0])
    text = ProgressText(cores=2)
    verify_10k = 10_000 * CPU_SECONDS_PER_PHOTO / 2  # 80 s of verification to come
    assert text.describe(Progress("index", 0, 0, "annoy")) == "Indexing: annoy"
    assert text.describe(Progress("embed", 100, 10_000)) == "Comparing pictures: 100 of 10,000"
    # 200 images in 2 s: 100/s, 9,700 left: 97 s, and 80 s of verification.
    assert 97 + verify_10k == pytest.approx(177)
    assert text.describe(Progress("embed", 300, 10_000)) == (
        "Comparing pictures: 300 of 10,000 · 100.0 images/s · about 3 min left")
    text.reset()  # a new scan: the old clock must not count
    assert text.describe(Progress("embed", 5, 50)) == "Comparing pictures: 5 of 50"
    # Under half a second of measuring: no rate yet rather than a wild one.
    assert text.describe(Progress("embed", 6, 50)) == "Comparing pictures: 6 of 50"
    # 39 images in 60 s: 5 left take 8 s, and 50 photos' verification 0.4 s.
    assert text.describe(Progress("embed", 45, 50)) == (
        "Comparing pictures: 45 of 50 · 0.7 images/s · about 8 s left")


def test_time_left_while_verifying_is_the_estimate_then_the_pairs_pace(monkeypatch):
    # embed: 0 s and 10 s; verify: starts at 10 s, then 1, 3, 5 and 30 s in
    _clock(monkeypatch, [0.0, 10.0, 10.0, 11.0, 13.0, 15.0, 40.0])
    text = ProgressText(cores=1)
    text.describe(Progress("embed", 1, 2_001))
    text.describe(Progress("embed", 2_001, 2_001))  # 2,001 photos: 32 s to verify
    assert text.describe(Progress("verify", 0, 10_000)) == (
        "Checking candidate pairs: 0 of 10,000 pairs · about 32 s left")
    # One second in: still the estimate, counted down.
    assert text.describe(Progress("verify", 64, 10_000)) == (
        "Checking candidate pairs: 64 of 10,000 pairs · about 31 s left")
    # Three seconds in, the first pairs (each making features) were slow:
    # their pace says 297 s, the estimate's countdown 29 s, the sooner shown.
    assert text.describe(Progress("verify", 100, 10_000)) == (
        "Checking candidate pairs: 100 of 10,000 pairs · about 29 s left")
    # Five seconds in, 2,000 pairs done: 8,000 left at 400/s, sooner than 27 s.
    assert text.describe(Progress("verify", 2_000, 10_000)) == (
        "Checking candidate pairs: 2,000 of 10,000 pairs · about 20 s left")
    # Thirty seconds in, the estimate spent and pairs left: their pace alone.
    assert text.describe(Progress("verify", 6_000, 10_000)) == (
        "Checking candidate pairs: 6,000 of 10,000 pairs · about 20 s left")


def test_no_time_left_for_verification_without_an_estimate_or_a_pace(monkeypatch):
    """A rescan that embeds nothing: no made-up figure in the first seconds."""
    _clock(monkeypatch, [0.0, 1.0])
    text = ProgressText(cores=2)
    assert text.describe(Progress("verify", 0, 500)) == "Checking candidate pairs: 0 of 500 pairs"
    assert text.describe(Progress("verify", 64, 500)) == (
        "Checking candidate pairs: 64 of 500 pairs")


def test_the_verifications_time_left_follows_its_share_of_work_done(monkeypatch):
    # embed: 0 s and 10 s; verify: starts at 10 s, its first block ends 1.5 s
    # in, then 2, 2.5 and 6.5 s in
    _clock(monkeypatch, [0.0, 10.0, 10.0, 11.5, 12.0, 12.5, 16.5])
    text = ProgressText(cores=1)
    text.describe(Progress("embed", 1, 2_001))
    text.describe(Progress("embed", 2_001, 2_001))  # an estimate of 32 s
    text.describe(Progress("verify", 0, 10_000))  # the scan's first: no share yet
    # The first block's share starts the work's clock; the start of the
    # phase (reading the cache, ordering the pairs) is not work.
    assert text.describe(Progress("verify", 64, 10_000, share=0.04)) == (
        "Checking candidate pairs: 64 of 10,000 pairs · about 31 s left")
    # Half a second of measured work: too little, still the estimate.
    assert text.describe(Progress("verify", 128, 10_000, share=0.06)) == (
        "Checking candidate pairs: 128 of 10,000 pairs · about 30 s left")
    # A second of it, 0.08 of the work done since 0.04: 0.92 left, 23 s.
    assert text.describe(Progress("verify", 192, 10_000, share=0.08)) == (
        "Checking candidate pairs: 192 of 10,000 pairs · about 23 s left")
    # 5 s of it, 0.46 more done (few pairs: the features came first): 5 s.
    assert text.describe(Progress("verify", 500, 10_000, share=0.5)) == (
        "Checking candidate pairs: 500 of 10,000 pairs · about 5 s left")


def test_the_verification_to_come_is_counted_at_this_machines_sampled_pace(monkeypatch):
    _clock(monkeypatch, [0.0, 10.0])
    text = ProgressText(cores=2)
    text.describe(Progress("embed", 1, 1_001))
    # 1,000 photos in 10 s: done. A photo's features took 20 ms here, so
    # verification will take 1,001 x 20 ms x COST_OVER_FEATURES over 2 cores.
    assert text.describe(Progress("embed", 1_001, 1_001, feature_cost_s=0.02)) == (
        "Comparing pictures: 1,001 of 1,001 · 100.0 images/s · about 11 s left")
    assert text.verification_s == pytest.approx(1_001 * 0.02 * COST_OVER_FEATURES / 2)

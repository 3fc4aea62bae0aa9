"""Window responsiveness: event-loop stalls while scanning and with huge results.

    QT_QPA_PLATFORM=offscreen python bench/bench_gui.py [--images 2000] [--groups 100000]
                                                        [--prefilled 100000]

Prints, in one run on one machine:
  * scan: the longest gap between ticks of a 5 ms QTimer on the GUI thread
    while the real window scans --images small photos with the offline
    model (the scan runs in its worker thread; the GUI only gets records);
  * results: the time to show --groups synthetic groups (3 members each),
    then the longest gap while the group list is scrolled from top to bottom
    and each group is opened in turn, and the resident memory it cost.
  * with --prefilled N: the stalls while the window scans N tiny files
    whose vectors are already cached (bench_rescan's clustered vectors), so
    only indexing and grouping run: the first scan builds the index, the
    second reuses it.
Groups reuse a few hundred real image files, so thumbnails are real decodes;
what is measured is the GUI thread, which never decodes.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QElapsedTimer, QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from imgdedupe.core.records import Group, Member  # noqa: E402
from imgdedupe.gui.jobs.scan_worker import BackboneCache  # noqa: E402
from imgdedupe.gui.main_window import MainWindow  # noqa: E402


class StallMeter:
    """Longest gap between ticks of a short timer: what the user feels."""

    def __init__(self, interval_ms: int = 5, label=None) -> None:  # noqa: ANN001
        self.interval = interval_ms
        self.worst_ms = 0.0
        self.label = label or (lambda: "")
        self.stalls: list[tuple[float, str]] = []
        self._clock = QElapsedTimer()
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.worst_ms = 0.0
        self._clock.start()
        self._timer.start()

    def _tick(self) -> None:
        gap = self._clock.restart() - self.interval
        self.worst_ms = max(self.worst_ms, gap)
        if gap > 50:  # what was on screen when the GUI thread was late
            self.stalls.append((gap, self.label()))

    def stop(self) -> float:
        self._timer.stop()
        return self.worst_ms


def rss_mb() -> float:
    """Resident memory now (not the peak)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def make_images(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        grid = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
        image = Image.fromarray(grid, "RGB").resize((320, 240), Image.Resampling.BICUBIC)
        path = folder / f"{n // 500:03d}" / f"img{n:06d}.jpg"
        path.parent.mkdir(exist_ok=True)
        image.save(path, quality=85)
        paths.append(path)
    return paths


def run_until(app: QApplication, done, timeout_s: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.001)


def timed_scan(app: QApplication, window: MainWindow):  # noqa: ANN201
    """Scan the window's folders; returns (result, seconds, stall meter)."""
    meter = StallMeter(label=window.phase_label.text)
    finished: list = []

    def done(result: object) -> None:
        finished.append(result)

    window.scan_finished.connect(done)
    start = time.perf_counter()
    meter.start()
    window.start_scan()
    run_until(app, lambda: bool(finished) and not window.controller.running, 3600)
    meter.stop()
    window.scan_finished.disconnect(done)
    return finished[0], time.perf_counter() - start, meter


def print_stalls(meter: StallMeter, most: int) -> None:
    for gap, label in sorted(meter.stalls, reverse=True)[:most]:
        print(f"  stall {gap:.0f} ms during: {label}")


def bench_scan(app: QApplication, window: MainWindow, folder: Path, count: int) -> None:
    window.add_folders([str(folder)])
    _, elapsed, meter = timed_scan(app, window)
    print(f"scan of {count} photos: {elapsed:.1f} s ({count / elapsed:.1f} images/s); "
          f"longest GUI stall {meter.worst_ms:.0f} ms (target < 100 ms)")
    print_stalls(meter, 5)


def bench_results(app: QApplication, window: MainWindow, files: list[Path], groups: int) -> None:
    members = [Member(str(p), 95.0, None, 10_000, 320, 240, 0) for p in files]
    fake = tuple(Group("similar", tuple(members[(3 * g + k) % len(members)] for k in range(3)),
                       members[(3 * g) % len(members)].path, "near_duplicate", "bench")
                 for g in range(groups))
    before = rss_mb()
    start = time.perf_counter()
    window.review.set_groups(fake)
    shown = time.perf_counter() - start
    meter = StallMeter()
    meter.start()
    view = window.review.group_list
    bar = view.verticalScrollBar()
    # Drag to the bottom again and again, as a user paging through: each
    # arrival at the end fetches the next chunk, until all rows are in.
    while window.review.groups_model.canFetchMore(view.rootIndex()):
        bar.setValue(bar.maximum())
        row = view.indexAt(view.rect().center()).row()
        if row >= 0:
            window.review.select_group(row)
        end = time.monotonic() + 0.005
        while time.monotonic() < end:
            app.processEvents()
    for step in range(200):  # then jump around the whole list
        bar.setValue(bar.maximum() * ((step * 7919) % 200) // 200)
        end = time.monotonic() + 0.005
        while time.monotonic() < end:
            app.processEvents()
    worst = meter.stop()
    fetched = window.review.groups_model.rowCount()
    print(f"{groups:,} groups shown in {shown * 1000:.0f} ms; scrolled to row {fetched:,} "
          f"with the longest stall {worst:.0f} ms; thumbnails cached {len(window.thumbnails)}; "
          f"RSS +{rss_mb() - before:.0f} MB (now {rss_mb():.0f} MB)")


def bench_prefilled(app: QApplication, window: MainWindow, work: Path, count: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_rescan import FakeBackbone, fill_cache, make_tree

    root = work / "prefilled"
    fill_cache(Path(window.db_path), make_tree(root, count), rotations=True)
    cache = BackboneCache()
    cache.get = lambda config: (FakeBackbone(), ())  # type: ignore[method-assign]
    window.controller.backbones = cache
    window.folders.clear()
    window.add_folders([str(root)])
    for run in ("first scan (builds the index)", "rescan"):
        result, elapsed, meter = timed_scan(app, window)
        print(f"{count:,} cached files, {run}: {elapsed:.1f} s, "
              f"{len(result.groups):,} groups; longest GUI stall {meter.worst_ms:.0f} ms")
        print_stalls(meter, 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--prefilled", type=int, default=0)
    args = parser.parse_args()
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{sys.version.split()[0]}, torch {torch.__version__}, Qt platform "
          f"{os.environ['QT_QPA_PLATFORM']}")
    app = QApplication.instance() or QApplication([])
    work = Path(tempfile.mkdtemp(prefix="imgdedupe-bench-gui-"))
    try:
        files = make_images(work / "photos", max(args.images, 300))
        settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings, str(work / "cache.sqlite3"))
        # The window's own model cache, as the app runs it: the offline model.
        window.backbone_box.setCurrentText("efficientnet-lite0")
        window.show()
        if args.images:
            bench_scan(app, window, work / "photos", args.images)
        if args.groups:
            bench_results(app, window, files, args.groups)
        if args.prefilled:
            bench_prefilled(app, window, work, args.prefilled)
        window.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

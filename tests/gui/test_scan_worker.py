"""The scan worker's model cache."""

from __future__ import annotations

import threading

from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import ScanResult
from imgdedupe.gui.jobs import scan_worker
from imgdedupe.gui.jobs.scan_worker import BackboneCache


def test_a_loaded_model_is_loaded_once_and_kept_out_of_the_cyclic_gc(monkeypatch):
    # Left to the cyclic GC, torch's and the model's objects made every full
    # collection hold the GIL ~150 ms, freezing the window mid-scan.
    loads, frozen = [], []
    monkeypatch.setattr(scan_worker, "load_backbone",
                        lambda name, **kw: loads.append(name) or ("model", []))
    monkeypatch.setattr(scan_worker.gc, "freeze", lambda: frozen.append(len(loads)))
    cache = BackboneCache()
    lite = ScanConfig(roots=("r",), db_path="d", backbone="efficientnet-lite0", device="cpu")
    assert cache.get(lite) == ("model", [])
    assert cache.get(lite) == ("model", [])
    assert loads == ["efficientnet-lite0"] and frozen == [1]  # frozen after the load
    cache.get(ScanConfig(roots=("r",), db_path="d", backbone="resnet50", device="cpu"))
    assert loads == ["efficientnet-lite0", "resnet50"] and frozen == [1, 2]


def test_the_rescan_of_an_unchanged_library_asks_for_no_model(tmp_path, backbones, photo_maker):
    """The window rescans on request; with nothing new to embed the scan
    replays its memo, and the model (seconds to load, the first time in a
    session) is never asked for."""
    for n in range(3):
        photo_maker(tmp_path / "lib" / f"IMG_{n}.jpg", n)
    photo_maker(tmp_path / "lib" / "IMG_0 (1).jpg", 0)
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"),
                        backbone="efficientnet-lite0", device="cpu")

    class Counting(BackboneCache):
        asked = 0

        def get(self, config):  # noqa: ANN001, ANN202
            self.asked += 1
            return backbones.get(config)

    def run(cache: BackboneCache) -> list:
        worker = scan_worker.ScanWorker(config, threading.Event(), cache)
        results: list = []
        worker.result.connect(results.append)
        worker.failed.connect(results.append)
        worker.run()  # synchronously, in this thread
        return results

    first_cache, again_cache = Counting(), Counting()
    [first] = run(first_cache)
    [again] = run(again_cache)
    assert isinstance(first, ScanResult) and isinstance(again, ScanResult)
    assert first_cache.asked == 1 and again_cache.asked == 0
    assert again.groups == first.groups and len(first.groups) == 1

"""The scan worker's model cache."""

from __future__ import annotations

from imgdedupe.core.pipeline import ScanConfig
from imgdedupe.gui import scan_worker
from imgdedupe.gui.scan_worker import BackboneCache


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

"""The Device box offers cuda only where this build can run the model on it
(the installers' CPU-only torch never can), and finds out without importing
torch at start-up."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from imgdedupe.core.model import loading
from imgdedupe.gui import device_box
from imgdedupe.gui.main_window import MainWindow


def _items(box) -> list[str]:  # noqa: ANN001
    return [box.itemText(i) for i in range(box.count())]


@pytest.fixture(params=[False, True], ids=["cpu-build", "cuda-build"])
def cuda(request, monkeypatch) -> bool:  # noqa: ANN001
    asked = []
    monkeypatch.setattr(device_box, "cuda_usable", lambda: asked.append(1) or request.param)
    request.node.cuda_asked = asked
    return request.param


def test_cuda_is_offered_only_when_usable(request, cuda: bool, window: MainWindow) -> None:
    box = window.device_box
    assert _items(box) == ["auto", "cpu"] and box.currentText() == "auto"
    assert request.node.cuda_asked == [], "asked while the window started"
    box.showPopup()
    box.hidePopup()
    assert _items(box) == (["auto", "cpu", "cuda"] if cuda else ["auto", "cpu"])
    box.showPopup()
    box.hidePopup()
    assert request.node.cuda_asked == [1], "asked once"


def test_a_saved_cuda_is_restored_only_where_usable(qtbot, cuda: bool,  # noqa: ANN001
                                                    window: MainWindow) -> None:
    window.close()  # saves its own choice, auto
    window.settings.setValue("device", "cuda")
    again = MainWindow(window.settings, window.db_path)
    qtbot.addWidget(again)
    assert again.device_box.currentText() == ("cuda" if cuda else "auto")
    again.device_box.select("gpu9")  # anything unknown
    assert again.device_box.currentText() == "auto"
    again.close()


@pytest.mark.parametrize("available", [False, True])
def test_cuda_usable_asks_torch_only_with_a_driver(monkeypatch, available: bool) -> None:
    monkeypatch.setattr(loading, "_nvidia_driver_present", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    assert device_box.cuda_usable() is available

    def never() -> bool:
        raise AssertionError("torch asked without an NVIDIA driver")

    monkeypatch.setattr(loading, "_nvidia_driver_present", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", never)
    assert device_box.cuda_usable() is False


def test_without_a_driver_the_window_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "from PySide6.QtCore import QSettings\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from imgdedupe.core.model import loading\n"
        "loading._nvidia_driver_present = lambda: False\n"
        "from imgdedupe.gui.main_window import MainWindow\n"
        "app = QApplication([])\n"
        "import tempfile, os\n"
        "d = tempfile.mkdtemp()\n"
        "w = MainWindow(QSettings(os.path.join(d, 's.ini'), QSettings.Format.IniFormat),"
        " os.path.join(d, 'c.db'))\n"
        "w.device_box.showPopup(); w.device_box.hidePopup()\n"
        "items = [w.device_box.itemText(i) for i in range(w.device_box.count())]\n"
        "w.close()\n"
        "assert items == ['auto', 'cpu'], items\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr

"""GUI fixtures. Qt runs offscreen: set before any QApplication exists."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QSettings, QThreadPool, QTimer  # noqa: E402

from imgdedupe.core.model.loading import load_backbone  # noqa: E402
from imgdedupe.gui.jobs.scan_worker import BackboneCache  # noqa: E402
from imgdedupe.gui.main_window import MainWindow  # noqa: E402


class PreloadedBackbones(BackboneCache):
    """One EfficientNet-Lite0 for the whole session, whatever the window asks:
    the real offline model (meaningful features), loaded once."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded = load_backbone("efficientnet-lite0", device="cpu")

    def get(self, config):  # noqa: ANN001, ANN201
        return self.loaded


@pytest.fixture(scope="session")
def backbones() -> PreloadedBackbones:
    return PreloadedBackbones()


@pytest.fixture
def trash_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The freedesktop trash lives under tmp_path: tests never touch the real one."""
    home = tmp_path / "xdg-data"
    home.mkdir()
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home / "Trash"


@pytest.fixture
def window(qtbot, tmp_path: Path, backbones: PreloadedBackbones,  # noqa: ANN001
           trash_home: Path) -> Iterator[MainWindow]:
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings, str(tmp_path / "cache.sqlite3"))
    win.controller.backbones = backbones
    win.backbone_box.setCurrentText("efficientnet-lite0")
    qtbot.addWidget(win)
    win.show()
    # Tests that leave marks quit without the "Quit with files marked?"
    # dialog (pytest-qt closes the window before this fixture's teardown).
    win.confirm_quit = lambda _marked: True
    yield win
    win.close()  # the one shutdown path
    assert not win.controller.running, "a scan thread was left running"
    assert win.tasks._pool.activeThreadCount() == 0, "a task thread was left running"
    assert win.thumbnails._pool.activeThreadCount() == 0, "a thumbnail thread was left running"
    active = [f"{t.objectName() or repr(t)} of {type(t.parent()).__name__}, every "
              f"{t.interval()} ms" for t in win.findChildren(QTimer) if t.isActive()]
    assert not active, f"timers left running: {active}"
    assert QThreadPool.globalInstance().activeThreadCount() == 0


@pytest.fixture
def library(tmp_path: Path, photo_maker) -> dict[str, Path]:  # noqa: ANN001
    return make_library(tmp_path / "photos", photo_maker)


def make_library(root: Path, make_photo) -> dict[str, Path]:  # noqa: ANN001
    """Three distinct photos, near-duplicates of two, an exact copy and a
    corrupt file: the shapes a real folder has."""
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    for n, seed in enumerate((11, 22, 33)):
        paths[f"photo{n}"] = root / f"photo{n}.jpg"
        make_photo(paths[f"photo{n}"], seed, size=(800, 600))
    small = Image.open(paths["photo0"]).resize((400, 300))
    paths["photo0_small"] = root / "sub" / "photo0_small.jpg"
    paths["photo0_small"].parent.mkdir()
    small.save(paths["photo0_small"], quality=80)
    paths["photo1_png"] = root / "photo1.png"
    Image.open(paths["photo1"]).save(paths["photo1_png"])
    paths["photo2_copy"] = root / "copy of photo2.jpg"
    paths["photo2_copy"].write_bytes(paths["photo2"].read_bytes())
    paths["broken"] = root / "broken.jpg"
    paths["broken"].write_bytes(b"not really a jpeg")
    return paths

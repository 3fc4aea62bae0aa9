"""RAW photos in the window: thumbnails, the compare view and its caption,
from DNGs written at test time (tests/raw_files.py)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PySide6.QtWidgets import QLabel

from imgdedupe.gui.main_window import MainWindow
from imgdedupe.gui.review.compare_view import COMPARE_PX
from imgdedupe.gui.review.thumbnails import ThumbnailCache, load_thumbnail
from tests.gui.test_window import _show_group_of, compare_with_space, scan
from tests.raw_files import write_dng

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


def _coffee() -> Image.Image:
    return Image.open(SAMPLES / "Holiday" / "IMG_0002.jpg").convert("RGB").resize((1536, 1024))


def test_thumbnails_of_raw_files_load_upright_and_a_cut_one_fails_with_its_reason(
        qtbot, tmp_path):  # noqa: ANN001
    turned = write_dng(tmp_path / "IMG_0002.DNG", _coffee(), orientation=6)
    bare = write_dng(tmp_path / "IMG_0003.dng", _coffee(), preview_long_side=None)
    cut = tmp_path / "IMG_0004.NEF"
    cut.write_bytes(bare.read_bytes()[:100_000])
    cache = ThumbnailCache(size_px=180)
    try:
        for path in (turned, bare, cut):
            with qtbot.waitSignal(cache.ready, timeout=10_000,
                                  check_params_cb=lambda p, want=str(path): p == want):
                cache.request(str(path))
        portrait, landscape = cache.pixmap(str(turned)), cache.pixmap(str(bare))
        assert portrait is not None and landscape is not None
        assert (portrait.width(), portrait.height()) == (120, 180)
        assert (landscape.width(), landscape.height()) == (180, 120)
        assert cache.failures == {str(cut): "truncated"}
    finally:
        assert cache.shutdown()
    big = load_thumbnail(str(turned), COMPARE_PX)
    assert max(big.width(), big.height()) <= COMPARE_PX and big.height() > big.width()


def test_a_raw_and_its_export_are_shown_and_compared_in_the_window(
        qtbot, window: MainWindow, tmp_path):  # noqa: ANN001
    (tmp_path / "lib" / "Camera").mkdir(parents=True)
    raw = write_dng(tmp_path / "lib" / "Camera" / "IMG_0002.DNG", _coffee(),
                    taken="2024:07:14 10:21:33")
    export = tmp_path / "lib" / "Export" / "IMG_0002.jpg"
    export.parent.mkdir()
    _coffee().resize((1200, 800)).save(export, quality=85)
    window.add_folders([str(tmp_path / "lib")])
    result = scan(qtbot, window)
    assert [{m.path for m in g.members} for g in result.groups] == [{str(raw), str(export)}]
    _show_group_of(window, raw)
    qtbot.waitUntil(lambda: window.thumbnails.pixmap(str(raw)) is not None, timeout=10_000)
    dialog = compare_with_space(qtbot, window)
    captions = [label.text() for label in dialog.findChildren(QLabel)]
    assert any(str(raw) in c and "1536×1024" in c and "RAW (DNG)" in c
               and "taken 2024:07:14 10:21:33" in c for c in captions)
    dialog.close()

"""The window's "Download ResNet50" offer: progress, hash check, refusal."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imgdedupe.core.model.weights import RESNET50_IMAGENET1K_V2, WeightsSpec
from imgdedupe.core.records import Notice
from imgdedupe.gui.jobs import weights_download
from imgdedupe.gui.main_window import MainWindow

PAYLOAD = b"pretend weights " * 40_000  # 640 KB: several progress steps


@pytest.fixture
def served(server, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
           tmp_path: Path) -> dict[str, bytes]:
    """Files the window's download fetches, from the shared loopback server."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("IMGDEDUPE_WEIGHTS", raising=False)
    monkeypatch.setattr(weights_download, "default_bundled_dirs", lambda: [])
    spec = WeightsSpec("resnet50-test.pth", f"{server.base}/w", "",
                       hashlib.sha256(PAYLOAD).hexdigest())
    monkeypatch.setattr(weights_download, "RESNET50_IMAGENET1K_V2", spec)
    return server.files


def test_fallback_notice_offers_a_checked_download(qtbot, window: MainWindow,  # noqa: ANN001
                                                   served: dict[str, bytes],
                                                   tmp_path: Path) -> None:
    window.backbone_box.setCurrentText("resnet50")
    window._on_notice(Notice("backbone_fallback", "weights missing"))
    assert window.banner.isVisible()
    assert "weights are not installed" in window.banner_text.text()
    # The Model box says what ran (the review found it saying resnet50).
    assert window.backbone_box.currentText() == "efficientnet-lite0"
    served["/w"] = PAYLOAD
    window.download_weights()
    qtbot.waitUntil(lambda: "installed" in window.phase_label.text(), timeout=10_000)
    assert not window.banner.isVisible()
    assert window.backbone_box.currentText() == "resnet50"  # the next scan uses it
    saved = tmp_path / "torch-home" / "hub" / "checkpoints" / "resnet50-test.pth"
    assert saved.read_bytes() == PAYLOAD
    assert window.download_dialog.maximum() == len(PAYLOAD) // 1024


def test_a_download_with_the_wrong_hash_is_refused_and_not_kept(
        qtbot, window: MainWindow, served: dict[str, bytes], tmp_path: Path) -> None:  # noqa: ANN001
    served["/w"] = PAYLOAD[:-1] + b"X"
    window.download_weights()
    qtbot.waitUntil(lambda: bool(window._dialogs), timeout=10_000)
    assert "installed" not in window.phase_label.text()
    assert "wrong SHA-256" in window._dialogs[-1].text()
    # One line in the status bar, in the window's words; the rest in Details…
    line = window.phase_label.text()
    assert "\n" not in line and "--weights" not in line and "not ResNet50's" in line
    assert window.details_button.isVisible()
    folder = tmp_path / "torch-home" / "hub" / "checkpoints"
    assert not folder.exists() or list(folder.iterdir()) == []  # no bad or partial file
    assert RESNET50_IMAGENET1K_V2.sha256_prefix == "11ad3fa6"  # the real spec is untouched


def test_an_offline_download_says_so_in_one_line_and_keeping_the_offline_model_sticks(
        qtbot, window: MainWindow, served: dict[str, bytes]) -> None:  # noqa: ANN001
    window.backbone_box.setCurrentText("resnet50")
    window._on_notice(Notice("backbone_fallback", "weights missing"))
    window.download_weights()  # the server has no /w: the download fails
    qtbot.waitUntil(lambda: bool(window._dialogs), timeout=10_000)
    line = window.phase_label.text()
    assert line.startswith("ResNet50 was not downloaded: ") and "offline" in line
    assert "\n" not in line and "--weights" not in line and "--backbone" not in line
    assert "--weights" in window._dialogs[-1].detailedText() or \
        "--weights" in window._dialogs[-1].text()  # the loader's own text, as details
    window.show_last_error()
    assert len(window._dialogs) == 2
    # "Keep using the offline model": the banner goes, and the box keeps
    # the offline model, so the next scan has no fallback to announce.
    window.keep_offline_model()
    assert not window.banner.isVisible()
    assert window.backbone_box.currentText() == "efficientnet-lite0"

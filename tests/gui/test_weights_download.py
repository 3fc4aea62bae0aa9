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
    window._on_notice(Notice("backbone_fallback", "weights missing"))
    assert window.banner.isVisible()
    assert "ResNet50 weights are not installed" in window.banner_text.text()
    served["/w"] = PAYLOAD
    window.download_weights()
    qtbot.waitUntil(lambda: "installed" in window.phase_label.text(), timeout=10_000)
    assert not window.banner.isVisible()
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
    folder = tmp_path / "torch-home" / "hub" / "checkpoints"
    assert not folder.exists() or list(folder.iterdir()) == []  # no bad or partial file
    assert RESNET50_IMAGENET1K_V2.sha256_prefix == "11ad3fa6"  # the real spec is untouched

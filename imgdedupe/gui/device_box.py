"""The Device box: only the devices this build of the app can use."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QWidget

from ..core.model.loading import resolve_device


def cuda_usable() -> bool:
    """Whether the model can run on CUDA here: a CUDA build of torch that
    sees a GPU. The installers carry a CPU-only torch, so there it never
    can. Without an NVIDIA driver the answer comes without importing torch
    (resolve_device's rule), so most machines never pay for the question."""
    return resolve_device("auto") == "cuda"


class DeviceBox(QComboBox):
    """auto and cpu; cuda too once cuda_usable() says so. That check may
    import torch (seconds), so it runs when the list is first opened or a
    saved "cuda" is restored, never while the window starts."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.addItems(["auto", "cpu"])
        self.setToolTip("Where the model runs: auto uses an NVIDIA GPU when this build can "
                        "(the installers are CPU-only), else the CPU")
        self._checked = False

    def offers_cuda(self) -> bool:
        if not self._checked:
            self._checked = True
            if cuda_usable():
                self.addItem("cuda")
        return self.findText("cuda") >= 0

    def showPopup(self) -> None:
        self.offers_cuda()
        super().showPopup()

    def select(self, device: str) -> None:
        """Select a saved device; one this build cannot use becomes auto."""
        if device == "cuda":
            self.offers_cuda()
        self.setCurrentText(device if self.findText(device) >= 0 else "auto")

"""Render resources/icons/imgdedupe.svg to the PNG, ICO and ICNS files the
installers need. Run after editing the SVG; the outputs are committed.

    QT_QPA_PLATFORM=offscreen python packaging/make_icons.py
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
HICOLOR_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)  # freedesktop icon theme sizes


def render(renderer: QSvgRenderer, size: int) -> Image.Image:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return Image.open(io.BytesIO(bytes(data))).convert("RGBA")


def main() -> None:
    _app = QGuiApplication([])
    renderer = QSvgRenderer(str(ICONS / "imgdedupe.svg"))
    hicolor = ICONS / "hicolor"
    images = {}
    for size in HICOLOR_SIZES:
        images[size] = render(renderer, size)
        folder = hicolor / f"{size}x{size}" / "apps"
        folder.mkdir(parents=True, exist_ok=True)
        images[size].save(folder / "imgdedupe.png", optimize=True)
    images[256].save(ICONS / "imgdedupe.png", optimize=True)
    images[256].save(ICONS / "imgdedupe.ico",
                     sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    render(renderer, 1024).save(ICONS / "imgdedupe.icns")
    print(f"wrote icons in {ICONS}")


if __name__ == "__main__":
    main()

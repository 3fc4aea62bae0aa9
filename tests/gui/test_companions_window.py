"""Companion files in the window: a badge on the card, the list in the
tooltip and the compare view, counted in the confirmation, trashed and
put back with their photo."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QStyleOptionViewItem

from imgdedupe.core.records import Companion, Group, Member
from imgdedupe.core.units import human_size
from imgdedupe.gui.dialogs import deletion_summary
from imgdedupe.gui.main_window import MainWindow
from imgdedupe.gui.review.compare_view import CompareDialog
from imgdedupe.gui.review.delegate import cell_size
from imgdedupe.gui.review.group_model import companion_badge
from tests.gui.test_window import _select, _show_group_of, scan


def _camera_and_backup(root: Path, photo_maker) -> dict[str, Path]:  # noqa: ANN001
    """camera/IMG_0007.JPG with its RAW and sidecar, and a byte copy of the
    JPEG in backup/. The RAW stand-in's bytes are arbitrary: a companion
    is never decoded."""
    (root / "camera").mkdir(parents=True)
    (root / "backup").mkdir()
    paths = {"jpeg": root / "camera" / "IMG_0007.JPG", "raw": root / "camera" / "IMG_0007.CR2",
             "xmp": root / "camera" / "IMG_0007.xmp", "backup": root / "backup" / "IMG_0007.JPG"}
    photo_maker(paths["jpeg"], seed=7)
    paths["raw"].write_bytes(b"II*\x00 not really a raw " * 500)
    paths["xmp"].write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    shutil.copyfile(paths["jpeg"], paths["backup"])
    return paths


def _handmade_group() -> Group:
    companions = (Companion("/p/IMG_1.CR2", 25_000_000, 1, "raw"),
                  Companion("/p/IMG_1.xmp", 4_000, 1, "sidecar"))
    return Group("exact", (Member("/p/IMG_1.JPG", 100.0, 0, 5_000_000, 400, 300, 1, companions),
                           Member("/q/IMG_1.JPG", 100.0, 0, 5_000_000, 400, 300, 1)),
                 "/q/IMG_1.JPG", "exact", "same bytes")


def _blue_pixels(image: QImage, box: QRect) -> int:
    """Pixels of the companion badge's blue in ``box``."""
    count = 0
    for y in range(box.top(), box.bottom(), 2):
        for x in range(box.left(), box.right(), 2):
            c = QColor(image.pixel(x, y))
            count += c.blue() > c.red() + 80 and c.blue() > c.green() + 40
    return count


def test_a_card_shows_its_companions_badge_and_the_tooltip_names_them(
        qtbot, window: MainWindow) -> None:  # noqa: ANN001
    group = _handmade_group()
    window._show_groups((group,), keep_place=False)
    window.review.select_group(0)
    model = window.review.members_model
    with_companions, without = model.index(0), model.index(1)
    assert companion_badge(group.members[0]) == "+RAW +XMP"
    tip = with_companions.data(Qt.ItemDataRole.ToolTipRole)
    assert f"IMG_1.CR2 (RAW, {human_size(25_000_000)})" in tip and "IMG_1.xmp (XMP" in tip
    assert without.data(Qt.ItemDataRole.ToolTipRole) == "/q/IMG_1.JPG"
    delegate = window.review.delegate
    size = cell_size(delegate.thumbnail_px)
    blue = []
    for index in (with_companions, without):
        image = QImage(size, QImage.Format.Format_RGB32)
        image.fill(QColor("white"))
        option = QStyleOptionViewItem()
        option.rect = QRect(0, 0, size.width(), size.height())
        option.palette = window.review.grid.palette()
        painter = QPainter(image)
        delegate.paint(painter, option, index)
        painter.end()
        # The picture's lower right corner, where the badge sits.
        blue.append(_blue_pixels(image, QRect(size.width() // 2, delegate.thumbnail_px - 40,
                                              size.width() // 2 - 4, 44)))
    assert blue[0] > 20 and blue[1] == 0, blue
    # The group's size counts the companions.
    label = window.review.groups_model.index(0).data(Qt.ItemDataRole.DisplayRole)
    assert human_size(35_004_000) in label and human_size(10_000_000) not in label


def test_the_compare_view_lists_each_photos_companions(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    group = _handmade_group()
    dialog = CompareDialog(group.members, window.tasks, lambda _path: False, window)
    qtbot.addWidget(dialog)
    first, second = dialog.companion_labels
    assert not first.isHidden() and second.isHidden()
    assert "Moves to the trash with it" in first.text()
    assert "IMG_1.CR2 (RAW" in first.text() and "IMG_1.xmp (XMP" in first.text()
    assert "/p/IMG_1.CR2" in first.toolTip()
    dialog.close()
    qtbot.waitUntil(lambda: window.tasks._pool.activeThreadCount() == 0, timeout=10_000)


def test_a_jpeg_with_its_raw_and_sidecar_is_trashed_and_undone_as_one(
        qtbot, window: MainWindow, tmp_path: Path, photo_maker, trash_home: Path) -> None:  # noqa: ANN001
    paths = _camera_and_backup(tmp_path / "lib", photo_maker)
    before = {k: p.read_bytes() for k, p in paths.items()}
    window.add_folders([str(tmp_path / "lib")])
    scan(qtbot, window)
    # One group: the two JPEGs. The RAW is the camera JPEG's, not a photo.
    groups = window.review.groups_model.groups
    assert [{m.path for m in g.members} for g in groups] == [
        {str(paths["jpeg"]), str(paths["backup"])}]
    _show_group_of(window, paths["jpeg"])
    _select(window, paths["jpeg"])
    qtbot.keyClick(window.review.grid, Qt.Key.Key_D)
    assert window.decisions.marked == {str(paths["jpeg"])}
    confirmations = []
    window.confirm = lambda members: confirmations.append(members) or True
    with qtbot.waitSignal(window.actions.batch_done, timeout=10_000):
        window.apply_deletions()
    assert deletion_summary(confirmations[0]).startswith("1 file and 2 companion files")
    assert not any(paths[k].exists() for k in ("jpeg", "raw", "xmp"))
    assert paths["backup"].exists()
    assert sorted(p.name for p in (trash_home / "files").iterdir()) == [
        "IMG_0007.CR2", "IMG_0007.JPG", "IMG_0007.xmp"]
    qtbot.waitUntil(lambda: window.undo_action.isEnabled(), timeout=5000)
    with qtbot.waitSignal(window.actions.batch_done, timeout=10_000):
        window.undo_last()
    assert {k: p.read_bytes() for k, p in paths.items()} == before
    assert list((trash_home / "files").iterdir()) == []


def test_the_confirmation_names_the_companions_that_go_along(qtbot, monkeypatch) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QMessageBox

    from imgdedupe.gui import dialogs

    boxes: list[tuple[str, str, str]] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: boxes.append(
        (box.text(), box.informativeText(), box.detailedText())) or 0)
    member = _handmade_group().members[0]
    assert dialogs.confirm_delete(None, [member], "the trash") is False
    [(text, informative, details)] = boxes
    assert text.startswith("Move 1 file and 2 companion files (")
    assert human_size(30_004_000) in text
    assert "companion files (RAW, sidecars, Live Photo video) go with it" in informative
    assert details.splitlines() == ["/p/IMG_1.JPG", "  + /p/IMG_1.CR2", "  + /p/IMG_1.xmp"]

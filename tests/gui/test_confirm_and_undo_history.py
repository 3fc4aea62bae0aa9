"""The real confirmation dialog decides (a "No" moves nothing), and any
batch of the undo history can be undone from the window."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from imgdedupe.gui.main_window import MainWindow
from tests.gui.test_window import _select, _show_group_of, scan


def _answer(qtbot, button_text: str) -> list[str]:  # noqa: ANN001
    """Click ``button_text`` in the next message box that opens; returns
    the texts of the boxes answered."""
    seen: list[str] = []

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, click)
            return
        seen.append(box.text())
        button = next(b for b in box.buttons() if b.text().replace("&", "") == button_text)
        button.click()

    QTimer.singleShot(50, click)
    return seen


def _settled(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    """Wait for what a move or an undo sets off (regrouping, the undo
    history, status messages) to finish: the fixture checks no timer runs."""
    from PySide6.QtCore import QTimer

    qtbot.waitUntil(lambda: not window.actions.busy and not window.tasks._pool.activeThreadCount()
                    and not [t for t in window.findChildren(QTimer) if t.isActive()],
                    timeout=15_000)


def _mark(qtbot, window: MainWindow, victim: Path) -> None:  # noqa: ANN001
    from PySide6.QtCore import Qt

    _show_group_of(window, victim)
    _select(window, victim)
    qtbot.keyClick(window.review.grid, Qt.Key.Key_D)
    assert window.decisions.marked == {str(victim)}


def test_answering_cancel_in_the_real_dialog_moves_nothing(
        qtbot, window: MainWindow, library: dict[str, Path], trash_home: Path) -> None:  # noqa: ANN001
    window.add_folders([str(library["photo0"].parent)])
    scan(qtbot, window)
    victim = library["photo0_small"]
    _mark(qtbot, window, victim)
    asked = _answer(qtbot, "Cancel")
    window.apply_deletions()  # the real confirm(): a modal QMessageBox
    assert asked and "Move" in asked[0]
    qtbot.wait(300)
    assert victim.exists() and not (trash_home / "files").exists()
    asked = _answer(qtbot, "Move to trash")
    with qtbot.waitSignal(window.actions.batch_done, timeout=10_000):
        window.apply_deletions()
    assert asked and not victim.exists()
    _settled(qtbot, window)


def test_an_older_batch_is_undone_from_the_history(
        qtbot, window: MainWindow, library: dict[str, Path], trash_home: Path) -> None:  # noqa: ANN001
    window.add_folders([str(library["photo0"].parent)])
    scan(qtbot, window)
    window.confirm = lambda members: True
    first, second = library["photo0_small"], library["photo1_png"]
    for victim in (first, second):
        _mark(qtbot, window, victim)
        with qtbot.waitSignal(window.actions.batch_done, timeout=10_000):
            window.apply_deletions()
        assert not victim.exists()
    offered: list[list[str]] = []

    def choose(labels: list[str]) -> tuple[str, bool]:
        offered.append(labels)
        return labels[-1], True  # the older batch, listed after the newer

    window.choose_batch = choose
    with qtbot.waitSignal(window.actions.batch_done, timeout=10_000):
        window.undo_history_action.trigger()
    assert len(offered[0]) == 2 and all("1 still in the trash" in x for x in offered[0])
    assert first.exists() and not second.exists()
    _settled(qtbot, window)


def test_find_similar_on_an_unscanned_folder_offers_to_scan_it_first(
        qtbot, window: MainWindow, library: dict[str, Path]) -> None:  # noqa: ANN001
    from imgdedupe.gui.dialogs import SimilarDialog

    offered: list[str] = []
    window.offer_scan = lambda folder: offered.append(folder) or True
    query = library["photo0"]
    with qtbot.waitSignal(window.scan_finished, timeout=120_000):
        window.find_similar(str(query))  # a fresh cache: nothing to compare with yet
    assert offered == [str(query.parent)] and window.folder_paths() == [str(query.parent)]
    # After the scan, the search runs again and answers from the scanned folder.
    qtbot.waitUntil(lambda: isinstance(getattr(window, "similar_dialog", None), SimilarDialog),
                    timeout=30_000)
    assert window.similar_dialog.paths()[:2] == [str(query), str(library["photo0_small"])]
    window.similar_dialog.close()
    _settled(qtbot, window)


def test_many_images_of_one_unscanned_folder_ask_once_and_scan_once(
        qtbot, window: MainWindow, library: dict[str, Path]) -> None:  # noqa: ANN001
    """A multi-selection of a never-scanned folder arrives as one launch per
    photo, each handed over: one question, one scan, then every search."""
    from imgdedupe.gui.dialogs import SimilarDialog

    offered: list[str] = []
    window.offer_scan = lambda folder: offered.append(folder) or True
    scans: list[object] = []
    window.scan_finished.connect(scans.append)
    for name in ("photo0", "photo1", "photo2"):
        window.find_similar(str(library[name]))
    qtbot.waitUntil(lambda: len(window.findChildren(SimilarDialog)) == 3, timeout=120_000)
    assert offered == [str(library["photo0"].parent)] and len(scans) == 1
    for dialog in window.findChildren(SimilarDialog):
        dialog.close()
    _settled(qtbot, window)


def test_folders_handed_over_during_a_scan_are_scanned_after_it(
        qtbot, window: MainWindow, library: dict[str, Path], tmp_path: Path) -> None:  # noqa: ANN001
    from imgdedupe.gui.app import take_request

    other = tmp_path / "more"
    other.mkdir()
    (other / "x.jpg").write_bytes(library["photo0"].read_bytes())
    window.add_folders([str(library["photo0"].parent)])
    scans: list = []
    window.scan_finished.connect(scans.append)
    window.start_scan()
    take_request(window, {"paths": [], "scan": [str(other)], "similar": []})
    qtbot.waitUntil(lambda: len(scans) == 2, timeout=120_000)
    assert str(other) in window.folder_paths()
    assert any(str(other) in m.path for g in scans[1].groups for m in g.members)
    _settled(qtbot, window)

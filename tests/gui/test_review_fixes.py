"""The review window's defects a new user ran into (the review-window
issue), each shown fixed through the window itself."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel, QMessageBox

from imgdedupe.core.actions.decisions import Rule
from imgdedupe.core.records import Group, Member
from imgdedupe.core.storage.ignore_rows import IgnoreMarkRow
from imgdedupe.gui import hidden_groups
from imgdedupe.gui.dialogs import SimilarDialog
from imgdedupe.gui.main_window import MainWindow
from imgdedupe.gui.review import file_actions, review_panel
from imgdedupe.gui.review.group_model import group_summary, member_caption
from tests.gui.test_window import scan

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


def _copies_in_two_folders(root: Path) -> dict[str, str]:
    """One photo three times: twice in kept/ (the scan and its grey copy,
    as samples/Archive holds them), once in backup/."""
    (root / "kept").mkdir(parents=True)
    (root / "backup").mkdir()
    photo = Image.open(SAMPLES / "Holiday" / "IMG_0002.jpg").convert("RGB")
    paths = {"scan": root / "kept" / "scan_0042.jpg",
             "scan_bw": root / "kept" / "scan_0042_bw.jpg",
             "backup": root / "backup" / "scan_0042.jpg"}
    photo.save(paths["scan"], quality=92)
    photo.convert("L").convert("RGB").save(paths["scan_bw"], quality=90)
    photo.resize((photo.width // 2, photo.height // 2)).save(paths["backup"], quality=85)
    return {name: str(path) for name, path in paths.items()}


def test_keeping_the_images_in_a_folder_marks_only_those_outside_it(
        qtbot, window: MainWindow, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    paths = _copies_in_two_folders(tmp_path / "lib")
    window.add_folders([str(tmp_path / "lib")])
    scan(qtbot, window)
    review = window.review
    groups = review.groups_model.groups
    assert len(groups) == 1 and {m.path for m in groups[0].members} == set(paths.values())
    review.select_group(0)
    chosen = [str(tmp_path / "lib" / "kept")]
    monkeypatch.setattr(review_panel.QFileDialog, "getExistingDirectory",
                        lambda *args, **kwargs: chosen[0])
    review.rule.setCurrentIndex(review.rule.findData(Rule.IN_FOLDER))
    messages: list[str] = []
    review.message.connect(messages.append)
    review.apply_rule_button.click()
    assert window.decisions.marked == {paths["backup"]}
    # The whole library chosen: every image is in it, so all are kept.
    chosen[0] = str(tmp_path / "lib")
    review.apply_rule_button.click()
    assert window.decisions.marked == frozenset()
    assert messages[-1] == "Every image of this group is in that folder: all are kept."


def _shown(window: MainWindow) -> list[set[str]]:
    return [{m.path for m in g.members} for g in window.review.groups_model.groups]


def test_not_duplicates_can_be_undone_and_listed_and_shown_again(
        qtbot, window: MainWindow, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    paths = _copies_in_two_folders(tmp_path / "lib")
    window.add_folders([str(tmp_path / "lib")])
    scan(qtbot, window)
    whole = set(paths.values())
    assert _shown(window) == [whole]
    assert not window.undo_hide_action.isEnabled()
    window.review.select_group(0)
    with qtbot.waitSignal(window.groups_shown, timeout=10_000):
        window.review.not_duplicates_button.click()
    assert _shown(window) == []
    assert "Undo “Not duplicates”" in window.statusBar().currentMessage()
    # Undo: the group is back at once, and again after a rescan.
    assert window.undo_hide_action.isEnabled()
    with qtbot.waitSignal(window.groups_shown, timeout=10_000):
        window.undo_hide_action.trigger()
    assert _shown(window) == [whole] and not window.undo_hide_action.isEnabled()
    scan(qtbot, window)
    assert _shown(window) == [whole]
    # Hidden again, then listed and shown again from Edit ▸ Hidden groups…
    window.review.select_group(0)
    with qtbot.waitSignal(window.groups_shown, timeout=10_000):
        window.review.not_duplicates_button.click()
    listed: list[list[str]] = []

    def exec_dialog(dialog) -> int:  # noqa: ANN001
        listed.append([dialog.list.item(n).text() for n in range(dialog.list.count())])
        dialog.show_all_button.click()
        return int(dialog.result())

    monkeypatch.setattr(hidden_groups.HiddenGroupsDialog, "exec", exec_dialog)
    with qtbot.waitSignal(window.groups_shown, timeout=10_000):
        window.show_hidden_groups()
    assert len(listed[0]) == 1 and "scan_0042_bw.jpg" in listed[0][0]
    assert _shown(window) == [whole]
    scan(qtbot, window)
    assert _shown(window) == [whole]


def test_the_hidden_groups_list_says_when_nothing_is_hidden(qtbot) -> None:  # noqa: ANN001
    dialog = hidden_groups.HiddenGroupsDialog([])
    qtbot.addWidget(dialog)
    assert not dialog.show_all_button.isEnabled() and dialog.list.count() == 0
    row = IgnoreMarkRow(7, 0.0, frozenset({"a", "b"}), ("/p/a.jpg", "/p/b.jpg", "/p/c.jpg",
                                                        "/p/d.jpg", "/p/e.jpg"))
    assert hidden_groups.describe(row).startswith("a.jpg, b.jpg, c.jpg, d.jpg and 1 more")


def test_the_window_fits_a_1024x600_screen_and_never_widens_itself(
        qtbot, window: MainWindow, tmp_path: Path) -> None:  # noqa: ANN001
    """It could not be narrower than 965 px (1,327 after a scan) and grew as
    labels changed; the review's buttons now wrap onto more rows."""
    paths = _copies_in_two_folders(tmp_path / "lib")
    window.add_folders([str(tmp_path / "lib")])
    window.resize(1000, 560)  # 1024x600 less a window frame and a panel
    assert window.minimumSizeHint().width() <= 1000
    assert window.minimumSizeHint().height() <= 560
    scan(qtbot, window)
    window.review.select_group(0)
    window.resize(1000, 560)
    qtbot.wait(50)
    for _ in range(3):  # long reasons, marks, selections: the size stays
        window.review.select_group(0)
        window.review.toggle(paths["backup"])
        qtbot.wait(20)
        assert (window.width(), window.height()) == (1000, 560)
    assert window.minimumSizeHint().width() <= 1000
    # Every control of the review row is on screen, wrapped if need be.
    for button in (window.review.apply_all_button, window.review.not_duplicates_button):
        corner = button.mapTo(window, button.rect().bottomRight())
        assert corner.x() <= window.width() and corner.y() <= window.height()


def test_a_restart_brings_back_the_last_scans_groups_and_marks(
        qtbot, window: MainWindow, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    paths = _copies_in_two_folders(tmp_path / "lib")
    window.add_folders([str(tmp_path / "lib")])
    scan(qtbot, window)
    window.review.select_group(0)
    assert window.decisions.mark(paths["backup"])
    # Quitting with a mark asks; "No" keeps the window open.
    del window.confirm_quit  # the fixture's "never ask"
    asked: list[int] = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *args, **kwargs: asked.append(1) or QMessageBox.StandardButton.No)
    window.close()
    assert asked and window.isVisible()
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *args, **kwargs: QMessageBox.StandardButton.Yes)
    window.close()
    assert not window.isVisible()
    # A new window on the same settings and cache: the groups and the mark
    # come back from the cache, without analysing any photo again.
    again = MainWindow(window.settings, window.db_path)
    again.controller.backbones = window.controller.backbones
    again.confirm_quit = lambda _marked: True
    qtbot.addWidget(again)
    again.show()
    with qtbot.waitSignal(again.scan_finished, timeout=60_000) as finished:
        assert again.restore_last_scan()
    assert finished.args[0].stats.embedded == 0
    assert [{m.path for m in g.members} for g in again.review.groups_model.groups] == [
        set(paths.values())]
    assert again.decisions.marked == {paths["backup"]}
    assert "1 mark(s) from last time" in again.phase_label.text()
    again.close()
    qtbot.waitUntil(lambda: not again.controller.running, timeout=10_000)


def test_nothing_is_restored_when_the_folders_changed(qtbot, window: MainWindow,  # noqa: ANN001
                                                      tmp_path: Path) -> None:
    _copies_in_two_folders(tmp_path / "lib")
    window.add_folders([str(tmp_path / "lib")])
    scan(qtbot, window)
    window.folders.clear()
    window.add_folders([str(tmp_path / "lib" / "kept")])
    assert not window.restore_last_scan()
    assert not window.controller.running


def test_marks_hidden_by_the_slider_are_set_aside_and_come_back(
        qtbot, window: MainWindow, tmp_path: Path) -> None:  # noqa: ANN001
    paths = _copies_in_two_folders(tmp_path / "lib")
    window.add_folders([str(tmp_path / "lib")])
    scan(qtbot, window)
    assert window.decisions.mark(paths["backup"])
    with qtbot.waitSignal(window.groups_shown, timeout=10_000):
        window.regroup(100.0)  # the group's weakest pair is below 100: it goes
    assert window.review.groups_model.groups == () and window.decisions.marked == frozenset()
    assert "1 mark(s) set aside" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.groups_shown, timeout=10_000):
        window.regroup(80.0)
    assert window.decisions.marked == {paths["backup"]}


def test_cancel_clears_the_still_comparing_message(window: MainWindow) -> None:
    window.statusBar().showMessage("2 group(s) of exact or near-exact copies so far; "
                                   "still comparing the other pictures…", 5000)
    window.controller.cancelled.emit()
    assert window.statusBar().currentMessage() == ""
    assert window.phase_label.text().startswith("Cancelled.")


def _member(path: str, similarity: float) -> Member:
    return Member(path, similarity, None, 1000, 640, 480, 0)


def test_cards_name_their_file_and_never_round_up_to_100() -> None:
    almost = _member("/p/a_rather_long_holiday_name.jpg", 99.6)
    caption = member_caption(almost)
    assert caption.splitlines()[0] == "a_rather_long_holiday_name.jpg"
    assert "99% similar" in caption and "100%" not in caption
    group = Group("similar", (_member("/p/ref.jpg", 100.0), almost), "/p/ref.jpg",
                  "near_duplicate", "same picture")
    assert group_summary(group).endswith("similarity ≥ 99")


def test_compare_says_which_images_of_a_large_group_it_leaves_out(
        qtbot, window: MainWindow) -> None:  # noqa: ANN001
    members = tuple(_member(f"/p/{n}.jpg", 90.0) for n in range(8))
    group = Group("similar", members, members[0].path, "near_duplicate", "same picture")
    review = window.review
    messages: list[str] = []
    compared: list[tuple] = []
    review.message.connect(messages.append)
    review.compare_requested.disconnect()
    review.compare_requested.connect(compared.append)
    review.members_model.set_group(group)
    review.compare_selected()
    assert len(compared[0]) == 6
    assert messages == ["Comparing the first 6 of 8 images: select up to 6 to compare others."]


def test_find_similar_lists_only_close_matches_and_each_can_be_acted_on(qtbot,  # noqa: ANN001
                                                                         window: MainWindow):
    query = _member("/p/query.jpg", 100.0)
    found = (_member("/p/close.jpg", 95.0), _member("/p/also.jpg", 85.0),
             _member("/p/far.jpg", 44.0), _member("/p/farther.jpg", 31.0))
    matches = Group("similar", (query, *found), query.path, "similar_shot", "nearest")
    dialog = SimilarDialog(query.path, matches, window.thumbnails, window.decisions, window)
    qtbot.addWidget(dialog)
    assert dialog.paths() == ["/p/query.jpg", "/p/close.jpg", "/p/also.jpg"]
    asked: list[str] = []
    dialog.find_similar_requested.connect(asked.append)
    menu = dialog.menu_for("/p/also.jpg")
    assert [a.text() for a in menu.actions() if a.text()] == [
        "Find similar", "Open", "Show in folder", "Copy path"]
    menu.actions()[0].trigger()
    assert asked == ["/p/also.jpg"]
    weak = Group("similar", (query, *found[2:]), query.path, "similar_shot", "nearest")
    shown = SimilarDialog(query.path, weak, window.thumbnails, window.decisions, window)
    qtbot.addWidget(shown)
    assert shown.paths() == ["/p/query.jpg", "/p/far.jpg", "/p/farther.jpg"]
    assert any("No image in the cache is similar" in label.text()
               for label in shown.findChildren(QLabel))


def test_show_in_folder_says_so_and_copies_the_folder_when_nothing_can_show_it(
        qtbot, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(file_actions, "show_in_folder", lambda _path: False)
    said: list[str] = []
    file_actions.reveal("/photos/2024/a.jpg", said.append)
    assert QGuiApplication.clipboard().text() == "/photos/2024/a.jpg".rsplit("/", 1)[0]
    assert said and "No file manager" in said[0] and "copied" in said[0]


def test_delete_key_moves_the_marked_files_after_asking_and_marks_can_be_cleared(
        qtbot, window: MainWindow, tmp_path: Path) -> None:  # noqa: ANN001
    paths = _copies_in_two_folders(tmp_path / "lib")
    window.add_folders([str(tmp_path / "lib")])
    scan(qtbot, window)
    window.review.select_group(0)
    assert not window.clear_marks_action.isEnabled()
    assert window.decisions.mark(paths["backup"])
    window._update_state()
    asked: list[int] = []
    window.confirm = lambda members: asked.append(len(members)) or False  # "Cancel"
    window.review.grid.setFocus()
    qtbot.keyClick(window.review.grid, Qt.Key.Key_Delete)
    assert asked == [1]  # the confirmation, not a silent move
    assert Path(paths["backup"]).exists()
    # In the folder list, Delete still removes a folder, never files.
    window.folders.setFocus()
    window.folders.setCurrentRow(0)
    qtbot.keyClick(window.folders, Qt.Key.Key_Delete)
    assert window.folder_paths() == [] and asked == [1]
    assert window.clear_marks_action.isEnabled()
    window.clear_marks_action.trigger()
    assert window.decisions.marked == frozenset()
    assert "1 mark(s) cleared" in window.statusBar().currentMessage()


def test_thumbnails_grow_with_the_size_control_and_the_size_is_remembered(
        qtbot, window: MainWindow, tmp_path: Path) -> None:  # noqa: ANN001
    """They stayed 180 px in a maximised window; the size slider, Ctrl +/-,
    Ctrl and the wheel, and View ▸ size the cards, and the pictures are
    made again at the new size (not just stretched)."""
    _copies_in_two_folders(tmp_path / "lib")  # 1,000 px photos: room to grow
    window.add_folders([str(tmp_path / "lib")])
    scan(qtbot, window)
    review = window.review
    review.select_group(0)
    first = review.members_model.member(0).path

    def longest_side() -> int:
        pixmap = window.thumbnails.pixmap(first)
        return 0 if pixmap is None else max(pixmap.width(), pixmap.height())

    qtbot.waitUntil(lambda: longest_side() == 180, timeout=10_000)
    assert review.grid.gridSize().width() == 180 + 24
    review.size_slider.setValue(320)
    assert review.thumbnail_px == 320 and review.grid.gridSize().width() == 320 + 24
    assert review.delegate.sizeHint(None, review.members_model.index(0)).width() == 344
    review.grid.viewport().repaint()  # painting asks for the sharper picture
    qtbot.waitUntil(lambda: longest_side() == 320, timeout=10_000)
    # Ctrl and the wheel over the pictures: a notch is a step; no Ctrl scrolls.
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent

    def wheel(notches: int, modifiers: Qt.KeyboardModifier) -> None:
        centre = QPointF(review.grid.viewport().rect().center())
        event = QWheelEvent(centre, centre, QPoint(0, 0), QPoint(0, 120 * notches),
                            Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase,
                            False)
        QGuiApplication.sendEvent(review.grid.viewport(), event)

    wheel(-2, Qt.KeyboardModifier.ControlModifier)
    assert review.thumbnail_px == 280
    wheel(-1, Qt.KeyboardModifier.NoModifier)
    assert review.thumbnail_px == 280
    # The View menu's keys, clamped at both ends.
    view = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    larger, smaller, default = view.actions()
    for _ in range(20):
        larger.trigger()
    assert review.thumbnail_px == review_panel.LARGEST_PX
    for _ in range(30):
        smaller.trigger()
    assert review.thumbnail_px == review_panel.SMALLEST_PX
    default.trigger()
    assert review.thumbnail_px == 180
    review.set_thumbnail_size(260)
    # Remembered: a new window on the same settings opens at that size.
    window.close()
    again = MainWindow(window.settings, window.db_path)
    qtbot.addWidget(again)
    assert again.review.thumbnail_px == 260 and again.thumbnails.size_px == 260
    assert again.review.grid.gridSize().width() == 260 + 24

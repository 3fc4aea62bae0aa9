"""The window end to end, offscreen, with the real offline model and real files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QLabel

from imgdedupe.core.scan.events import ScanResult
from imgdedupe.gui.dialogs import SimilarDialog
from imgdedupe.gui.main_window import MainWindow
from imgdedupe.gui.review.group_model import MARKED_ROLE

SCAN_TIMEOUT_MS = 120_000


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def scan(qtbot, win: MainWindow) -> ScanResult:  # noqa: ANN001
    with qtbot.waitSignal(win.scan_finished, timeout=SCAN_TIMEOUT_MS) as blocker:
        win.start_scan()
    qtbot.waitUntil(lambda: not win.controller.running, timeout=10_000)
    return blocker.args[0]


def shown_groups(win: MainWindow) -> list[set[str]]:
    return [{os.path.basename(m.path) for m in g.members}
            for g in win.review.groups_model.groups]


def drop(win: MainWindow, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    win.dropEvent(event)


def test_empty_window_invites_dropping_folders(window: MainWindow) -> None:
    assert window.stack.currentWidget() is window.empty
    assert "Drop folders here" in window.empty.text()
    assert not window.scan_action.isEnabled()  # nothing to scan yet


def test_dropping_folders_adds_each_once_and_ignores_missing(window: MainWindow,
                                                             tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    drop(window, [a, b, tmp_path / "missing", a])
    assert window.folder_paths() == [str(a), str(b)]
    assert window.scan_action.isEnabled()
    window.folders.setCurrentRow(0)
    window.remove_selected_folders()
    assert window.folder_paths() == [str(b)]


def test_scan_groups_duplicates_and_reports_the_broken_file(qtbot, window: MainWindow,  # noqa: ANN001
                                                            library: dict[str, Path]) -> None:
    window.add_folders([str(library["photo0"].parent)])
    result = scan(qtbot, window)
    groups = shown_groups(window)
    assert {"photo0.jpg", "photo0_small.jpg"} in groups
    assert {"photo1.jpg", "photo1.png"} in groups
    assert {"photo2.jpg", "copy of photo2.jpg"} in groups
    assert len(groups) == 3
    assert [e.reason for e in result.errors] == ["not_an_image"]
    assert "could not be read" in window.phase_label.text()
    assert window.problems_button.text() == "⚠ 1 file could not be read"
    window.problems_button.click()
    assert f"{library['broken']}\n    not_an_image" in window._dialogs[-1].detailedText()
    assert window.stack.currentWidget() is window.review
    # The grid shows the current group, and its thumbnails load lazily.
    grid_model = window.review.members_model
    assert grid_model.rowCount() >= 2
    qtbot.waitUntil(lambda: len(window.thumbnails) >= 2, timeout=10_000)


def test_cancel_stops_within_a_second_and_the_next_scan_resumes(
        qtbot, window: MainWindow, tmp_path: Path, photo_maker) -> None:  # noqa: ANN001
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(80):
        photo_maker(folder / f"p{n:03d}.jpg", 100 + n, size=(320, 240))
    window.add_folders([str(folder)])
    embedding = []
    window.controller.progress.connect(
        lambda e: embedding.append(e) if e.phase == "embed" and e.done > 0 else None)
    window.start_scan()
    qtbot.waitUntil(lambda: bool(embedding), timeout=SCAN_TIMEOUT_MS)
    with qtbot.waitSignal(window.controller.cancelled, timeout=1000):
        window.cancel_scan()
    qtbot.waitUntil(lambda: not window.controller.running, timeout=5000)
    assert "Cancelled" in window.phase_label.text()
    result = scan(qtbot, window)
    assert result.stats.from_cache > 0  # the finished batches were kept
    assert result.stats.from_cache + result.stats.embedded == 80


def test_slider_regroups_from_the_cache_without_a_rescan(qtbot, window: MainWindow,  # noqa: ANN001
                                                         library: dict[str, Path]) -> None:
    window.add_folders([str(library["photo0"].parent)])
    scan(qtbot, window)
    before = shown_groups(window)
    scans = []
    window.controller.progress.connect(scans.append)
    with qtbot.waitSignal(window.groups_shown, timeout=5000):
        window.threshold_bar.slider.setValue(99)
    # At 99 only identical pictures still group: the byte copy, and the
    # lossless PNG of photo1 (99.99: bfloat16 vectors); the resized photo0
    # (98.4) drops out.
    assert sorted(map(sorted, shown_groups(window))) == [
        ["copy of photo2.jpg", "photo2.jpg"], ["photo1.jpg", "photo1.png"]]
    with qtbot.waitSignal(window.groups_shown, timeout=5000):
        window.threshold_bar.slider.setValue(90)
    assert sorted(map(sorted, shown_groups(window))) == sorted(map(sorted, before))
    assert scans == [] and not window.controller.running
    assert window.threshold_bar.histogram.counts().sum() >= 2


def test_find_similar_from_the_right_click_menu(qtbot, window: MainWindow,  # noqa: ANN001
                                                library: dict[str, Path]) -> None:
    window.add_folders([str(library["photo0"].parent)])
    scan(qtbot, window)
    group_row = next(n for n, g in enumerate(window.review.groups_model.groups)
                     if any(m.path == str(library["photo0"]) for m in g.members))
    window.review.select_group(group_row)
    member = next(m for m in window.review.members_model.group.members
                  if m.path == str(library["photo0"]))
    menu = window.review.member_menu(member)
    labels = [a.text() for a in menu.actions() if a.text()]
    assert labels[:1] == ["Find similar"]
    assert {"Open", "Show in folder", "Copy path"} <= set(labels)
    copy = next(a for a in menu.actions() if a.text() == "Copy path")
    copy.trigger()
    assert QApplication.clipboard().text() == str(library["photo0"])
    find = next(a for a in menu.actions() if a.text() == "Find similar")
    find.trigger()
    qtbot.waitUntil(lambda: isinstance(getattr(window, "similar_dialog", None), SimilarDialog),
                    timeout=30_000)
    paths = window.similar_dialog.paths()
    assert paths[0] == str(library["photo0"])
    assert paths[1] == str(library["photo0_small"])  # the best match comes first
    window.similar_dialog.close()


def _select(win: MainWindow, path: Path) -> None:
    grid = win.review.grid
    row = win.review.members_model.row_of(str(path))
    grid.setFocus()
    grid.setCurrentIndex(win.review.members_model.index(row))


def _show_group_of(win: MainWindow, path: Path) -> None:
    row = win.review.groups_model.row_of(str(path))
    assert row is not None
    win.review.select_group(row)


def compare_with_space(qtbot, window: MainWindow):  # noqa: ANN001, ANN201
    """Space in the grid opens the compare view; it, once every picture shows."""
    window.review.grid.setFocus()
    qtbot.keyClick(window.review.grid, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: getattr(window, "compare_dialog", None) is not None, timeout=5000)
    dialog = window.compare_dialog
    qtbot.waitUntil(lambda: all(not v.item.pixmap().isNull() for v in dialog.views),
                    timeout=10_000)
    return dialog


def test_keep_delete_undo_moves_real_files_to_the_trash_and_back(
        qtbot, window: MainWindow, library: dict[str, Path], trash_home: Path) -> None:  # noqa: ANN001
    window.add_folders([str(library["photo0"].parent)])
    scan(qtbot, window)
    victim = library["photo0_small"]
    original = digest(victim)
    _show_group_of(window, victim)
    _select(window, victim)
    qtbot.keyClick(window.review.grid, Qt.Key.Key_D)
    assert window.decisions.marked == {str(victim)}
    row = window.review.members_model.row_of(str(victim))
    assert window.review.members_model.index(row).data(MARKED_ROLE) is True
    confirmations = []
    window.confirm = lambda members: confirmations.append(members) or True
    with qtbot.waitSignal(window.actions.batch_done, timeout=10_000):
        window.apply_deletions()
    assert [m.path for m in confirmations[0]] == [str(victim)]
    assert not victim.exists()
    trashed = list((trash_home / "files").iterdir())
    assert [p.name for p in trashed] == [victim.name]
    assert digest(trashed[0]) == original
    assert (trash_home / "info" / f"{victim.name}.trashinfo").exists()
    qtbot.waitUntil(lambda: window.undo_action.isEnabled(), timeout=5000)
    # The moved file left its group, which now has one member: no group.
    qtbot.waitUntil(lambda: {"photo0.jpg", "photo0_small.jpg"} not in shown_groups(window),
                    timeout=5000)
    with qtbot.waitSignal(window.actions.batch_done, timeout=10_000):
        window.undo_last()
    assert victim.exists() and digest(victim) == original
    assert list((trash_home / "files").iterdir()) == []
    qtbot.waitUntil(lambda: {"photo0.jpg", "photo0_small.jpg"} in shown_groups(window),
                    timeout=5000)


def test_a_whole_group_can_never_be_marked(qtbot, window: MainWindow,  # noqa: ANN001
                                           library: dict[str, Path]) -> None:
    window.add_folders([str(library["photo0"].parent)])
    scan(qtbot, window)
    for row in range(len(window.review.groups_model.groups)):
        window.review.select_group(row)
        window.review.grid.setFocus()
        window.review.grid.selectAll()
        qtbot.keyClick(window.review.grid, Qt.Key.Key_D)
        group = window.review.members_model.group
        assert len(window.decisions.marked_in(group)) == len(group.members) - 1
    assert "kept" in window.statusBar().currentMessage()
    # Keyboard: K unmarks, Enter moves to the next group.
    window.review.select_group(0)
    window.review.grid.selectAll()
    qtbot.keyClick(window.review.grid, Qt.Key.Key_K)
    assert window.decisions.marked_in(window.review.members_model.group) == []
    qtbot.keyClick(window.review.grid, Qt.Key.Key_Return)
    assert window.review.group_list.currentIndex().row() == 1


def test_a_file_changed_after_the_scan_is_left_alone_and_the_rest_moves(
        qtbot, window: MainWindow, library: dict[str, Path], trash_home: Path) -> None:  # noqa: ANN001
    window.add_folders([str(library["photo0"].parent)])
    scan(qtbot, window)
    changed, moved = library["photo0_small"], library["photo1_png"]
    for path in (changed, moved):
        window.decisions.mark(str(path))
    with open(changed, "ab") as fh:
        fh.write(b"edited since the scan")
    edited = digest(changed)
    window.confirm = lambda members: True
    with qtbot.waitSignal(window.actions.batch_done, timeout=10_000) as blocker:
        window.apply_deletions()
    outcomes = {Path(o.path).name: o for o in blocker.args[0].outcomes}
    assert outcomes["photo1.png"].status == "moved" and not moved.exists()
    assert outcomes["photo0_small.jpg"].status == "refused"
    assert outcomes["photo0_small.jpg"].code == "modified"
    assert changed.exists() and digest(changed) == edited
    # The window says which file was left alone, and why.
    report = window._dialogs[-1]
    assert "changed on disk" in report.text()
    assert f"{changed}: " in report.detailedText()


def test_models_pass_the_model_tester(qtbot, qtmodeltester, window: MainWindow,  # noqa: ANN001
                                      library: dict[str, Path]) -> None:
    window.add_folders([str(library["photo0"].parent)])
    scan(qtbot, window)
    qtmodeltester.check(window.review.groups_model)
    qtmodeltester.check(window.review.members_model)


def test_export_csv_lists_every_member_with_its_mark(qtbot, window: MainWindow,  # noqa: ANN001
                                                     library: dict[str, Path],
                                                     tmp_path: Path) -> None:
    import csv

    window.add_folders([str(library["photo0"].parent)])
    scan(qtbot, window)
    window.decisions.mark(str(library["photo0_small"]))
    out = tmp_path / "groups.csv"
    window.export_to(str(out), json_format=False)
    with out.open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 6
    marked = [r["path"] for r in rows if r["marked_for_deletion"] == "1"]
    assert marked == [str(library["photo0_small"])]


def test_settings_persist_between_windows(qtbot, window: MainWindow,  # noqa: ANN001
                                          tmp_path: Path) -> None:
    window.add_folders([str(tmp_path)])
    window.threshold_bar.set_value(84)
    window.close()
    again = MainWindow(window.settings, window.db_path)
    qtbot.addWidget(again)
    assert again.folder_paths() == [str(tmp_path)]
    assert again.threshold_bar.value() == 84
    assert again.backbone_box.currentText() == "efficientnet-lite0"
    again.close()


def test_space_opens_compare_with_synchronised_zoom(qtbot, window: MainWindow,  # noqa: ANN001
                                                    library: dict[str, Path]) -> None:
    window.add_folders([str(library["photo0"].parent)])
    scan(qtbot, window)
    _show_group_of(window, library["photo0"])
    dialog = compare_with_space(qtbot, window)
    dialog.zoom(4.0)
    first, second = dialog.views[:2]
    first.horizontalScrollBar().setValue(first.horizontalScrollBar().maximum())
    assert second.horizontalScrollBar().value() == second.horizontalScrollBar().maximum()
    assert first.transform().m11() == pytest.approx(second.transform().m11())
    captions = [label.text() for label in dialog.findChildren(QLabel)]
    assert any(str(library["photo0"]) in c and "800×600" in c and "JPEG" in c
               for c in captions)
    dialog.close()


def test_not_duplicates_stays_apart_across_rescans_and_renames(
        qtbot, window: MainWindow, library: dict[str, Path]) -> None:  # noqa: ANN001
    window.add_folders([str(library["photo0"].parent)])
    scan(qtbot, window)
    pair = {"photo0.jpg", "photo0_small.jpg"}
    _show_group_of(window, library["photo0"])
    with qtbot.waitSignal(window.groups_shown, timeout=10_000):
        window.review.not_duplicates_button.click()
    assert pair not in shown_groups(window)
    scan(qtbot, window)
    assert pair not in shown_groups(window)
    # A rename is a new file to the cache; the mark is keyed by content.
    library["photo0_small"].rename(library["photo0_small"].with_name("renamed.jpg"))
    scan(qtbot, window)
    assert {"photo0.jpg", "renamed.jpg"} not in shown_groups(window)
    assert len(shown_groups(window)) == 2


def test_dropping_an_image_finds_similar_images(qtbot, window: MainWindow,  # noqa: ANN001
                                                library: dict[str, Path]) -> None:
    window.add_folders([str(library["photo0"].parent)])
    scan(qtbot, window)
    drop(window, [library["photo1"]])
    qtbot.waitUntil(lambda: isinstance(getattr(window, "similar_dialog", None), SimilarDialog),
                    timeout=30_000)
    assert window.similar_dialog.paths()[:2] == [str(library["photo1"]),
                                                 str(library["photo1_png"])]
    assert window.folder_paths() == [str(library["photo0"].parent)]  # not added as a folder
    window.similar_dialog.close()


def test_a_path_opened_by_the_system_is_scanned_or_searched(qtbot, window: MainWindow,  # noqa: ANN001
                                                            library: dict[str, Path]) -> None:
    # macOS delivers Finder's "Open With" as a QFileOpenEvent; app.py routes
    # it here.
    with qtbot.waitSignal(window.scan_finished, timeout=SCAN_TIMEOUT_MS):
        window.open_path(str(library["photo0"].parent))
    assert window.folder_paths() == [str(library["photo0"].parent)]
    qtbot.waitUntil(lambda: not window.controller.running, timeout=10_000)
    window.open_path(str(library["photo2"]))
    qtbot.waitUntil(lambda: isinstance(getattr(window, "similar_dialog", None), SimilarDialog),
                    timeout=30_000)
    assert window.similar_dialog.paths()[1] == str(library["photo2_copy"])
    window.similar_dialog.close()


def test_file_open_events_reach_the_window(tmp_path: Path) -> None:
    # In a child process, so that the app's own QApplication subclass is
    # the one created (here pytest-qt made a plain one first).
    import subprocess
    import sys

    child = """
import sys
from PySide6.QtGui import QFileOpenEvent
from imgdedupe.gui.app import make_application
app = make_application()
opened = []
app.file_opened.connect(opened.append)
handled = app.event(QFileOpenEvent("/photos/a b.jpg"))
print(handled, opened)
sys.exit(0 if handled and opened == ["/photos/a b.jpg"] else 1)
"""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_exact_and_near_exact_copies_show_before_the_model_finishes(
        qtbot, window: MainWindow, library: dict[str, Path]) -> None:  # noqa: ANN001
    window.add_folders([str(library["photo0"].parent)])
    early: list[set[str]] = []
    window.groups_shown.connect(lambda: early.append(
        {g.kind for g in window.review.groups_model.groups}) if window.result is None else None)
    scan(qtbot, window)
    assert early, "no groups were shown before the final result"
    assert "exact" in early[0]  # byte copies come first, before any decoding
    assert any("near-exact" in kinds for kinds in early)  # then the perceptual hash
    assert {g.kind for g in window.review.groups_model.groups} <= {"exact", "similar"}


def test_progress_shows_phase_counts_rate_and_time_left(window: MainWindow,
                                                        monkeypatch) -> None:  # noqa: ANN001
    from imgdedupe.core.scan.events import Progress
    from imgdedupe.gui.jobs import progress_text

    clock = iter([100.0, 102.0])
    monkeypatch.setattr(progress_text.time, "monotonic", lambda: next(clock))
    window.progress_text = progress_text.ProgressText(cores=8)  # verification: 0.2 s
    window._on_progress(Progress("walk", 1500))
    assert window.phase_label.text() == "Finding photos: 1,500"
    window._on_progress(Progress("embed", 10, 110))  # starts the rate clock
    window._on_progress(Progress("embed", 30, 110))  # 20 images in 2 s
    assert window.phase_label.text() == (
        "Comparing pictures: 30 of 110 · 10.0 images/s · about 8 s left")
    assert window.progress_bar.maximum() == 110 and window.progress_bar.value() == 30

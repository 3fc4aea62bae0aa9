"""Protected folders, comparing across folders, and reviewing many groups,
through the window: every way of marking leaves a protected photo alone,
all-protected groups are hidden, the settings survive a restart, only
pairs across folders group when asked, and the group list sorts, filters,
sums up and accepts in bulk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt

from imgdedupe.core.actions.decisions import Rule
from imgdedupe.core.actions.review_order import MarksFilter, SortOrder
from imgdedupe.core.groups.keeper import suggest_keeper
from imgdedupe.core.records import Group, Member
from imgdedupe.gui.automation import Automation
from imgdedupe.gui.main_window import MainWindow
from imgdedupe.gui.review import review_panel
from imgdedupe.gui.review.folder_options import PROTECT_TEXT, PROTECTED_SUFFIX
from tests.gui.test_window import scan

MB = 1024 * 1024


def _member(path: Path, size: int | None = None, mtime_ns: int | None = None) -> Member:
    stat = path.stat()
    width = 800 if "big" in path.name else 400
    return Member(str(path), 95.0, None, size if size is not None else stat.st_size, width,
                  width * 3 // 4, mtime_ns if mtime_ns is not None else stat.st_mtime_ns)


def _group(tier: str, *members: Member) -> Group:
    return Group("exact" if tier == "exact" else "similar", members, suggest_keeper(members),
                 tier, "test group")


@pytest.fixture
def folders(tmp_path: Path, photo_maker) -> dict[str, Path]:  # noqa: ANN001
    """A library, its backup (to protect) and a phone dump, each a folder
    of generated photos (real files: the grid draws their thumbnails)."""
    made = {}
    for folder, names in (("library", ["a_big.jpg", "c1_big.jpg"]),
                          ("backup", ["a.jpg", "b.jpg", "old/b.jpg", "c2.jpg"]),
                          ("phone", ["a.jpg", "e1.jpg", "e2_big.jpg"])):
        for n, name in enumerate(names):
            path = tmp_path / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            photo_maker(path, 10 + n + len(made), size=(800, 600) if "big" in name else (400, 300))
            made[f"{folder}/{name}"] = path
    made["root"] = tmp_path
    return made


def _groups(f: dict[str, Path]) -> tuple[Group, ...]:
    """The library's copy is the sharpest: unprotected, it is the keeper
    and the backup's copy would be marked."""
    return (
        _group("near_duplicate", _member(f["library/a_big.jpg"]), _member(f["backup/a.jpg"]),
               _member(f["phone/a.jpg"])),
        _group("exact", _member(f["backup/b.jpg"]), _member(f["backup/old/b.jpg"])),
        _group("similar_shot", _member(f["library/c1_big.jpg"]), _member(f["backup/c2.jpg"])),
        _group("near_duplicate", _member(f["phone/e2_big.jpg"]), _member(f["phone/e1.jpg"])),
    )


def _protected(f: dict[str, Path]) -> set[str]:
    return {str(p) for k, p in f.items() if k.startswith("backup/")}


def _open(window: MainWindow, f: dict[str, Path], protect: bool = True) -> tuple[Group, ...]:
    """The three folders listed, backup/ protected through its right-click
    menu, and the groups shown as a scan would show them."""
    window.add_folders([str(f["root"] / name) for name in ("library", "backup", "phone")])
    if protect:
        item = window.folders.item(1)
        action = next(a for a in window.folder_options.menu_for(item).actions()
                      if a.text() == PROTECT_TEXT)
        assert not action.isChecked()
        action.trigger()
        assert item.text().endswith(PROTECTED_SUFFIX) and "Protected" in item.toolTip()
    groups = _groups(f)
    window._show_groups(groups, keep_place=False)
    return groups


def _everything(window: MainWindow) -> None:
    """Show every group: similar shots and the all-protected one too."""
    window.review.bar.protected_box.setChecked(True)


def _select_all_members(window: MainWindow, row: int) -> None:
    window.review.select_group(row)
    window.review.grid.setFocus()
    window.review.grid.selectAll()


def _each_group(window: MainWindow, act: Callable[[int], None]) -> None:
    for row in range(len(window.review.groups_model.groups)):
        window.review.select_group(row)
        act(row)


def _d_key(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    def press(row: int) -> None:
        _select_all_members(window, row)
        qtbot.keyClick(window.review.grid, Qt.Key.Key_D)
    _each_group(window, press)


def _double_click_and_menu(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    def toggle(_row: int) -> None:
        review = window.review
        for n in range(review.members_model.rowCount()):
            member = review.members_model.member(n)
            review.grid.doubleClicked.emit(review.members_model.index(n))
            menu = review.member_menu(member)
            mark = [a for a in menu.actions() if a.text() == "Mark for deletion"]
            if mark:
                mark[0].trigger()
    _each_group(window, toggle)


def _a_key(qtbot, window: MainWindow, shift: bool) -> None:  # noqa: ANN001
    window.review.select_group(0)
    modifier = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
    for _ in window.review.groups_model.groups:
        window.review.grid.setFocus()
        qtbot.keyClick(window.review.grid, Qt.Key.Key_A, modifier)


def _rule(qtbot, window: MainWindow, rule: Rule, to_all: bool,  # noqa: ANN001
          monkeypatch: pytest.MonkeyPatch, folder: str) -> None:
    review = window.review
    monkeypatch.setattr(review_panel.QFileDialog, "getExistingDirectory",
                        lambda *args, **kwargs: folder)
    review.rule.setCurrentIndex(review.rule.findData(rule))
    review.apply_to_shots.setChecked(True)
    if to_all:
        review.select_group(0)
        review.apply_all_button.click()
    else:
        _each_group(window, lambda _row: review.apply_rule_button.click())


WAYS = ["D key", "double-click and menu", "A key", "Shift+A key", "accept all in filter",
        "mark suggested (automation)",
        *(f"{rule.name} rule" for rule in Rule), *(f"{rule.name} to all" for rule in Rule)]


@pytest.mark.parametrize("way", WAYS)
def test_no_way_of_marking_marks_a_protected_photo(qtbot, window: MainWindow,  # noqa: ANN001
                                                   folders: dict[str, Path], way: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _open(window, folders)
    _everything(window)
    review = window.review
    assert len(review.groups_model.groups) == 4
    if way == "D key":
        _d_key(qtbot, window)
    elif way == "double-click and menu":
        _double_click_and_menu(qtbot, window)
    elif way in ("A key", "Shift+A key"):
        _a_key(qtbot, window, shift=way.startswith("Shift"))
    elif way == "accept all in filter":
        review.apply_to_shots.setChecked(True)
        monkeypatch.setattr(review.bar, "confirm_accept_all", lambda text: True)
        review.bar.accept_all_button.click()
    elif way == "mark suggested (automation)":
        automation = Automation(window, None, None, False, mark_suggested=True)
        monkeypatch.setattr(automation, "_wait_for_grid", lambda: None)  # no screenshot
        automation._after_scan(None)
        qtbot.wait(200)
    else:
        name, _, scope = way.partition(" ")
        folder = str(folders["root"] / ("phone" if name == "IN_FOLDER" else "library"))
        _rule(qtbot, window, Rule[name], scope == "to all", monkeypatch, folder)
    marked = window.decisions.marked
    assert marked, f"{way} marked nothing: the test would prove nothing"
    assert not marked & _protected(folders), way
    # The window says so on the pictures too.
    row = review.groups_model.row_of(str(folders["backup/a.jpg"]))
    assert row is not None
    review.select_group(row)
    captions = [review.members_model.index(n).data()
                for n in range(review.members_model.rowCount())]
    assert sum("protected folder" in c for c in captions) == 1


def test_d_on_a_protected_photo_says_why_nothing_happened(qtbot, window: MainWindow,  # noqa: ANN001
                                                          folders: dict[str, Path]) -> None:
    _open(window, folders)
    review = window.review
    backup_a = str(folders["backup/a.jpg"])
    review.select_group(review.groups_model.row_of(backup_a))
    row = review.members_model.row_of(backup_a)
    review.grid.setFocus()
    review.grid.setCurrentIndex(review.members_model.index(row))
    messages: list[str] = []
    review.message.connect(messages.append)
    qtbot.keyClick(review.grid, Qt.Key.Key_D)
    assert not window.decisions.marked
    assert messages == ["a.jpg is in a protected folder: it is never marked."]


def test_the_delete_key_never_moves_a_protected_photo(qtbot, window: MainWindow,  # noqa: ANN001
                                                      folders: dict[str, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _open(window, folders)
    phone_a, backup_a = str(folders["phone/a.jpg"]), str(folders["backup/a.jpg"])
    assert window.decisions.mark(phone_a)
    # A mark no way of marking can make, forced in: the move checks again.
    window.decisions._marked.add(backup_a)
    asked: list[set[str]] = []
    monkeypatch.setattr(window, "confirm", lambda members: asked.append(
        {m.path for m in members}) or False)
    window.review.select_group(window.review.groups_model.row_of(phone_a))
    window.review.grid.setFocus()
    qtbot.keyClick(window.review.grid, Qt.Key.Key_Delete)
    assert asked == [{phone_a}]
    assert folders["backup/a.jpg"].exists() and folders["phone/a.jpg"].exists()


def test_protecting_unmarks_moves_the_keeper_and_hides_all_protected_groups(
        qtbot, window: MainWindow, folders: dict[str, Path]) -> None:  # noqa: ANN001
    groups = _open(window, folders, protect=False)
    backup_a = str(folders["backup/a.jpg"])
    assert groups[0].keeper == str(folders["library/a_big.jpg"])
    window.decisions.mark(backup_a)
    review = window.review
    assert len(review.groups_model.groups) == 4 and not review.bar.protected_box.isVisible()
    window.folder_options.set_protected(str(folders["root"] / "backup"), True)
    assert not window.decisions.is_marked(backup_a)
    # The group of two backup copies is hidden; a box says it exists.
    shown = review.groups_model.groups
    assert len(shown) == 3 and review.bar.protected_box.text() == "All protected (1)"
    assert review.bar.protected_box.isVisible()
    first = next(g for g in shown if g.reference == groups[0].reference)
    assert first.keeper == backup_a  # the protected copy is the one to keep
    review.bar.protected_box.setChecked(True)
    assert len(review.groups_model.groups) == 4
    # Unprotected again: the scan's own keeper is back.
    window.folder_options.set_protected(str(folders["root"] / "backup"), False)
    back = next(g for g in review.groups if g.reference == groups[0].reference)
    assert back.keeper == groups[0].keeper


def test_protection_across_and_the_sort_order_survive_a_restart(qtbot, window: MainWindow,  # noqa: ANN001
                                                 folders: dict[str, Path],
                                                 tmp_path: Path) -> None:
    _open(window, folders)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    window.folder_options.set_protected(str(elsewhere), True)  # a folder not in the list
    window.folder_options.across_box.setChecked(True)
    window.review.bar.set_order(SortOrder.CAPTURE_DATE)
    window.close()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    again = MainWindow(settings, str(tmp_path / "cache.sqlite3"))
    qtbot.addWidget(again)
    try:
        options = again.folder_options
        assert options.protection.folders == (str(folders["root"] / "backup"), str(elsewhere))
        assert options.across and again.scan_config().across
        assert again.folders.item(1).text().endswith(PROTECTED_SUFFIX)
        assert not again.folders.item(0).text().endswith(PROTECTED_SUFFIX)
        menu = [a.text() for a in options.menu_for(None).actions()]
        assert any(str(elsewhere) in text for text in menu)  # listed, to unprotect
        assert again.decisions.protection == options.protection
        assert again.review.bar.order is SortOrder.CAPTURE_DATE
    finally:
        again.confirm_quit = lambda _marked: True
        again.close()


def test_compare_across_folders_only_in_the_window(qtbot, window: MainWindow,  # noqa: ANN001
                                                   tmp_path: Path, photo_maker) -> None:
    library, dump = tmp_path / "library", tmp_path / "dump"
    library.mkdir()
    dump.mkdir()
    photo_maker(library / "beach.jpg", 1, size=(800, 600))
    (dump / "beach.jpg").write_bytes((library / "beach.jpg").read_bytes())
    photo_maker(library / "city.jpg", 2, size=(800, 600))
    (library / "city copy.jpg").write_bytes((library / "city.jpg").read_bytes())
    window.add_folders([str(library), str(dump)])
    scan(qtbot, window)
    names = [{Path(m.path).parent.name + "/" + Path(m.path).name for m in g.members}
             for g in window.review.groups_model.groups]
    assert {"library/city.jpg", "library/city copy.jpg"} in names and len(names) == 2
    # Ticking the box rescans (from the cache) and keeps only the pair across folders.
    with qtbot.waitSignal(window.scan_finished, timeout=120_000):
        window.folder_options.across_box.setChecked(True)
    qtbot.waitUntil(lambda: not window.controller.running, timeout=10_000)
    names = [{Path(m.path).parent.name + "/" + Path(m.path).name for m in g.members}
             for g in window.review.groups_model.groups]
    assert names == [{"library/beach.jpg", "dump/beach.jpg"}]
    with qtbot.waitSignal(window.scan_finished, timeout=120_000):
        window.folder_options.across_box.setChecked(False)
    qtbot.waitUntil(lambda: not window.controller.running, timeout=10_000)
    assert len(window.review.groups_model.groups) == 2  # not the other setting's memo


# -- review at scale -----------------------------------------------------------

def _sized_groups(f: dict[str, Path]) -> tuple[Group, ...]:
    """Sizes and dates chosen so that the orders differ: to free A 1, B 2,
    C 3 MB (the larger copy is the keeper); in all A 11, B 8, C 6 MB;
    first folders B backup/, C library/, A phone/; dates (mtime) B, C, A."""
    def m(key: str, size: int, mtime_s: int) -> Member:
        return _member(f[key], size * MB, mtime_s * 10**9)
    return (
        _group("near_duplicate", m("phone/e2_big.jpg", 10, 300), m("phone/e1.jpg", 1, 300)),
        _group("exact", m("backup/b.jpg", 2, 10), m("backup/old/b.jpg", 6, 20)),
        _group("near_duplicate", m("library/a_big.jpg", 3, 100), m("phone/a.jpg", 3, 200)),
    )


def _order(window: MainWindow, groups: tuple[Group, ...]) -> str:
    return "".join("ABC"[groups.index(g)] if g in groups else "?"
                   for g in window.review.groups_model.groups)


@pytest.mark.parametrize(("order", "expected"), [
    (SortOrder.SPACE, "CBA"), (SortOrder.SIZE, "ABC"), (SortOrder.FOLDER, "BCA"),
    (SortOrder.CAPTURE_DATE, "BCA")])
def test_each_sort_order(qtbot, window: MainWindow, folders: dict[str, Path],  # noqa: ANN001
                         order: SortOrder, expected: str) -> None:
    groups = _sized_groups(folders)
    window.add_folders([str(folders["root"] / n) for n in ("library", "backup", "phone")])
    window.review.bar.set_order(SortOrder.SIZE if order is SortOrder.SPACE else order)
    window._show_groups(groups, keep_place=False)
    in_hand = window.review.current_group()
    window.review.bar.set_order(order)
    assert _order(window, groups) == expected
    if order is SortOrder.CAPTURE_DATE:
        # No photo carries a capture date here: the tooltip says mtime placed it.
        tip = window.review.groups_model.index(0).data(Qt.ItemDataRole.ToolTipRole)
        assert "no capture date" in tip and "modification time" in tip
    # Another order keeps the group in hand (in its new place).
    assert window.review.current_group() == in_hand


def test_sorting_by_space_is_the_default(window: MainWindow) -> None:
    assert window.review.bar.order is SortOrder.SPACE


def test_each_filter_and_the_summary_line(qtbot, window: MainWindow,  # noqa: ANN001
                                          folders: dict[str, Path]) -> None:
    groups = _sized_groups(folders)
    window.add_folders([str(folders["root"] / n) for n in ("library", "backup", "phone")])
    window._show_groups(groups, keep_place=False)
    bar = window.review.bar
    assert bar.summary.text() == "3 groups · 6.0 MB to free · 2.0 MB in exact copies"
    bar.set_folder(str(folders["root"] / "library"))
    assert _order(window, groups) == "C"
    assert bar.summary.text() == "1 of 3 groups · 3.0 MB to free · 0 B in exact copies"
    bar.set_folder(None)
    window.decisions.mark(str(folders["phone/e2_big.jpg"]))
    window.review.marks_updated()
    assert bar.summary.text() == ("3 groups · 15.0 MB to free · 2.0 MB in exact copies · "
                                  "1 marked (10.0 MB)")
    # "1 marked" is what the toolbar offers to move.
    assert window.delete_action.text() == "Move 1 marked to trash…"
    bar.set_marks(MarksFilter.MARKED)
    assert _order(window, groups) == "A"
    bar.set_marks(MarksFilter.UNMARKED)
    assert sorted(_order(window, groups)) == ["B", "C"]
    bar.set_marks(MarksFilter.ANY)
    window.review.tier_boxes["exact"].setChecked(False)  # the tier filter: the Show boxes
    assert sorted(_order(window, groups)) == ["A", "C"]


def test_the_accept_key_accepts_the_suggestion_and_goes_to_the_next_group(
        qtbot, window: MainWindow, folders: dict[str, Path]) -> None:  # noqa: ANN001
    groups = _open(window, folders)
    _everything(window)
    review = window.review
    review.bar.set_order(SortOrder.FOLDER)
    shown = review.groups_model.groups
    review.select_group(0)
    messages: list[str] = []
    review.message.connect(messages.append)
    for row, group in enumerate(shown):
        assert review.group_list.currentIndex().row() == row
        review.grid.setFocus()
        qtbot.keyClick(review.grid, Qt.Key.Key_A)
        if group.tier == "similar_shot":
            assert not window.decisions.marked_in(group)  # never without Shift
            assert "Shift+A" in messages[-1]
            qtbot.keyClick(review.grid, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
        keeper = window.decisions.protection.with_keeper(group).keeper
        expected = {m.path for m in group.members} - {keeper} - _protected(folders)
        assert {m.path for m in window.decisions.marked_in(group)} == expected
    assert groups  # every group was visited
    assert review.group_list.currentIndex().row() == len(shown) - 1


def test_accept_all_in_this_filter_confirms_the_count_and_size(
        qtbot, window: MainWindow, folders: dict[str, Path],  # noqa: ANN001
        monkeypatch: pytest.MonkeyPatch) -> None:
    groups = _sized_groups(folders)
    window.add_folders([str(folders["root"] / n) for n in ("library", "backup", "phone")])
    window._show_groups(groups, keep_place=False)
    bar = window.review.bar
    bar.set_folder(str(folders["root"] / "phone"))  # A and C
    asked: list[str] = []
    answer = [False]
    monkeypatch.setattr(bar, "confirm_accept_all", lambda text: asked.append(text) or answer[0])
    bar.accept_all_button.click()
    assert asked[-1].startswith("Accept the suggestion in 2 group(s)? 2 file(s) (4.0 MB) will "
                                "be marked for deletion; similar shots are left alone.")
    assert not window.decisions.marked  # cancelled: nothing marked
    answer[0] = True
    bar.accept_all_button.click()
    assert window.decisions.marked == {str(folders["phone/e1.jpg"]), str(folders["phone/a.jpg"])}
    assert window.delete_action.text() == "Move 2 marked to trash…"
    assert bar.summary.text().endswith("2 marked (4.0 MB)")


# -- automation ------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def _app(tmp_path: Path, *args: str, timeout: int = 300):  # noqa: ANN202
    import os
    import subprocess
    import sys

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_DATA_HOME": str(tmp_path / "d"),
           "XDG_STATE_HOME": str(tmp_path / "s"), "XDG_CACHE_HOME": str(tmp_path / "c")}
    return subprocess.run([sys.executable, "-m", "imgdedupe.gui.app", *args,
                           "--settings", str(tmp_path / "s.ini")],
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_the_app_refuses_to_protect_a_missing_folder(tmp_path: Path) -> None:
    done = _app(tmp_path, "--protect", str(tmp_path / "missing"), "--exit-when-done",
                timeout=60)
    assert done.returncode == 2 and "--protect: not a folder" in done.stderr


@pytest.mark.slow
def test_a_screenshot_shows_the_summary_and_a_sorted_list(tmp_path: Path) -> None:
    import shutil

    from PIL import Image

    samples = tmp_path / "samples"
    shutil.copytree(REPO / "resources" / "samples", samples)
    shot = tmp_path / "review.png"
    done = _app(tmp_path, *(f"--scan={samples / n}" for n in ("Holiday", "Phone", "Archive")),
                "--protect", str(samples / "Archive"), "--sort", "size", "--mark-suggested",
                "--db", str(tmp_path / "cache.sqlite3"), "--backbone", "efficientnet-lite0",
                "--screenshot", str(shot), "--exit-when-done")
    assert done.returncode == 0, done.stdout + done.stderr
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    assert settings.value("protected_folders", [], list) == [str(samples / "Archive")]
    with Image.open(shot) as image:
        assert image.width >= 800 and len(image.convert("RGB").getcolors(1 << 20) or []) > 500


def test_sorting_by_capture_date_uses_the_scans_exif_dates(window: MainWindow,
                                                           folders: dict[str, Path]) -> None:
    import numpy as np

    from imgdedupe.core.groups.contents import ContentTable
    from imgdedupe.core.groups.graph import SimilarityGraph

    groups = _sized_groups(folders)  # by mtime: B, C, A
    a_paths = [m.path for m in groups[0].members]
    table = ContentTable(a_paths, [1, 1], [0, 0], [0, 1, 2], [10, 10], [10, 10], [None, None])
    # A's first photo says it was taken at 5 s: before every mtime (10 s on).
    graph = SimilarityGraph("efficientnet-lite0", table, np.zeros((0, 2), np.int64),
                            np.zeros(0, np.float32), np.zeros(0, np.int8), (),
                            np.array([5.0, np.nan]))
    window.review.bar.set_graph(graph)
    window.review.bar.set_order(SortOrder.CAPTURE_DATE)
    window._show_groups(groups, keep_place=False)
    assert _order(window, groups) == "ABC"  # A by its EXIF date, B and C by mtime
    tip = window.review.groups_model.index(0).data(Qt.ItemDataRole.ToolTipRole)
    assert "Taken 1970-01-01 00:00 (the capture date in its EXIF)" in tip

"""Edit ▸ Keeper rules…: the dialog edits the chain, the settings keep it,
and the groups on show get new keepers without a rescan while the user's
marks stay as they were."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QDialogButtonBox

from imgdedupe.core.groups.keeper_rules import DEFAULT_CHAIN, KeeperChain
from imgdedupe.gui.keeper.rules_dialog import (
    SETTINGS_KEY,
    KeeperRulesDialog,
    load_chain,
    save_chain,
)
from imgdedupe.gui.main_window import MainWindow
from tests.gui.test_window import scan


def rule_names(dialog: KeeperRulesDialog) -> list[str]:
    return [dialog.rules.item(n).data(Qt.ItemDataRole.UserRole)
            for n in range(dialog.rules.count())]


def test_the_dialog_reorders_ticks_and_takes_a_folder(qtbot, tmp_path):  # noqa: ANN001
    dialog = KeeperRulesDialog(DEFAULT_CHAIN)
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert rule_names(dialog) == list(DEFAULT_CHAIN.criteria)
    assert dialog.chain() == KeeperChain.parse(str(DEFAULT_CHAIN))  # no folder: skipped
    dialog.rules.setCurrentRow(rule_names(dialog).index("name"))
    for _ in range(5):  # to the top, and no further
        dialog.move_current(-1)
    dialog.rules.item(rule_names(dialog).index("compression")).setCheckState(
        Qt.CheckState.Unchecked)
    dialog.folder.setText(str(tmp_path))
    assert dialog.chain() == KeeperChain(
        ("name", "pixels", "upright", "exif", "date", "folder", "path"), str(tmp_path))
    assert ok.isEnabled()

    dialog.folder.setText(str(tmp_path / "missing"))
    assert not ok.isEnabled() and "No such folder" in dialog.problem.text()
    dialog.folder.setText("")
    for n in range(dialog.rules.count()):
        dialog.rules.item(n).setCheckState(Qt.CheckState.Unchecked)
    assert not ok.isEnabled() and dialog.problem.text() == "Tick at least one rule."
    dialog.set_chain(DEFAULT_CHAIN)  # Restore defaults
    assert ok.isEnabled() and dialog.chain() == KeeperChain.parse(str(DEFAULT_CHAIN))


def test_the_settings_keep_the_chain_and_survive_a_bad_one(tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    assert load_chain(settings) == DEFAULT_CHAIN
    chain = KeeperChain.parse(f"exif,folder={tmp_path},pixels")
    save_chain(settings, chain)
    assert QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat).value(SETTINGS_KEY) \
        == f"exif,folder={tmp_path},pixels"
    assert load_chain(settings) == chain
    settings.setValue(SETTINGS_KEY, "pixels,bogus")
    assert load_chain(settings) == DEFAULT_CHAIN


def test_a_window_on_unreadable_saved_rules_says_so(qtbot, tmp_path):  # noqa: ANN001
    from imgdedupe.gui.main_window import MainWindow

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    settings.setValue(SETTINGS_KEY, "pixels,bogus,path")
    window = MainWindow(settings, str(tmp_path / "c.db"))
    qtbot.addWidget(window)
    assert window.keeper_chain == DEFAULT_CHAIN
    assert window.phase_label.text().startswith(
        "The saved keeper rules could not be read (unknown keeper rule 'bogus'")


def make_library(tmp_path: Path, photo_maker) -> tuple[Path, Path, Path]:  # noqa: ANN001
    """(a photo, its byte copy in a deeper folder, that folder)."""
    backup = tmp_path / "library" / "old backup"
    backup.mkdir(parents=True)
    original = tmp_path / "library" / "IMG_0001.jpg"
    photo_maker(original, 7)
    copy = backup / "IMG_0001.jpg"
    shutil.copyfile(original, copy)
    return original, copy, backup


def test_new_rules_re_suggest_the_shown_keepers_and_leave_the_marks(
        qtbot, window: MainWindow, tmp_path: Path, photo_maker) -> None:  # noqa: ANN001
    original, copy, backup = make_library(tmp_path, photo_maker)
    window.add_folders([str(original.parent)])
    scan(qtbot, window)
    (group,) = window.review.groups
    assert group.keeper == str(original)
    assert group.keeper_reason == "kept: the shortest path"
    assert "★ kept: the shortest path" in window.review.title.text()
    assert window.decisions.mark(str(copy))  # the user's decision

    # Edit ▸ Keeper rules…: prefer the backup folder.
    action = next(a for top in window.menuBar().actions() if top.menu()
                  for a in top.menu().actions() if a.text() == "Keeper rules…")
    action.trigger()
    dialog = window.keeper_dialog
    dialog.folder.setText(str(backup))
    with qtbot.waitSignal(window.groups_shown, timeout=10_000):
        dialog.accept()
    (group,) = window.review.groups
    assert group.keeper == str(copy)
    assert group.keeper_reason == f"kept: in the preferred folder {backup}"
    assert f"★ kept: in the preferred folder {backup}" in window.review.title.text()
    assert window.decisions.marked == {str(copy)}  # not silently changed
    message = window.statusBar().currentMessage()
    assert "1 group(s) now suggest another copy" in message
    assert "Your marks were left as they are" in message
    chain = KeeperChain.parse(f"pixels,upright,exif,name,compression,date,folder={backup},path")
    assert window.keeper_chain == chain
    assert load_chain(window.settings) == chain

    # The slider regroups with the new rules too.
    with qtbot.waitSignal(window.groups_shown, timeout=10_000):
        window.regroup(window.threshold_bar.value() + 1)
    assert window.review.groups[0].keeper == str(copy)


def test_rules_changed_while_a_scan_runs_apply_to_its_groups(
        qtbot, window: MainWindow, tmp_path: Path, photo_maker) -> None:  # noqa: ANN001
    original, copy, backup = make_library(tmp_path, photo_maker)
    window.add_folders([str(original.parent)])
    window.start_scan()
    window.set_keeper_rules(KeeperChain.parse(f"folder={backup}"))
    qtbot.waitUntil(lambda: not window.controller.running and bool(window.review.groups)
                    and window.review.groups[0].keeper == str(copy), timeout=60_000)
    assert window.review.groups[0].keeper_reason == f"kept: in the preferred folder {backup}"

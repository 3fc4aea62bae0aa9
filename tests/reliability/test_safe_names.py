"""Names are printed safely (issue 17, finding 10).

A file name may hold any byte but '/' and NUL. Printed raw, an ESC
sequence in one moves the terminal's cursor and can put another file's
``[keep]`` mark beside it; a right-to-left override reverses what follows.
Every path the command line prints (the report, the unreadable files,
errors, notes) and every name the window shows as text has its control
characters escaped (``\\x1b``, ``\\u202e``); the JSON keeps the exact
paths.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

# The window's tests below: Qt runs offscreen, set before any QApplication.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from imgdedupe.cli import EXIT_DATABASE, EXIT_OK, EXIT_USAGE, main  # noqa: E402
from imgdedupe.core.records import FileError, Member  # noqa: E402
from imgdedupe.report import printable  # noqa: E402

from .support import SCAN_THRESHOLD  # noqa: E402

pytestmark = pytest.mark.reliability

# What a terminal acts on instead of showing: C0 (but the newline the
# report itself writes), DEL, C1 (0x9b is a one-byte CSI), and the
# invisible reordering and line-breaking characters.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")

# The repro's trick (../shared/repro/2026-12-reliability/term.py): the name
# of the duplicate moves the cursor up to the keeper's line, rewrites its
# mark, and comes back to claim [keep] for itself.
SWAP = "copy\x1b[s\x1b[1A\r  [    ]\x1b[u\r  [keep] 100.0  exact.jpg"


@pytest.mark.parametrize(("name", "shown"), [
    ("IMG_0001.jpg", "IMG_0001.jpg"),
    ("Ferien 2019/Strand – Sonne.jpg", "Ferien 2019/Strand – Sonne.jpg"),
    ("東京 タワー.jpg", "東京 タワー.jpg"),
    ("cafe\u0301.jpg", "cafe\u0301.jpg"),  # a combining accent is a letter's part
    ("👨\u200d👩\u200d👧.jpg", "👨\u200d👩\u200d👧.jpg"),  # joiners inside an emoji
    ("a\x1b[2Jb.jpg", "a\\x1b[2Jb.jpg"),
    ("new\nline.jpg", "new\\x0aline.jpg"),
    ("tab\tcr\r.jpg", "tab\\x09cr\\x0d.jpg"),
    ("bell\x07del\x7f.jpg", "bell\\x07del\\x7f.jpg"),
    ("csi\x9b31m.jpg", "csi\\x9b31m.jpg"),  # C1: one byte, a whole escape
    ("evil\u202egpj.exe", "evil\\u202egpj.exe"),  # shows as "evilexe.jpg" raw
    ("line\u2028sep.jpg", "line\\u2028sep.jpg"),
    ("zero\u200bwidth.jpg", "zero\\u200bwidth.jpg"),
    (os.fsdecode(b"caf\xe9.jpg"), "caf\\xe9.jpg"),  # a byte that is not UTF-8
    ("back\\slash.jpg", "back\\slash.jpg"),
])
def test_printable_escapes_only_what_a_terminal_would_act_on(name, shown):
    assert printable(name) == shown
    assert not UNSAFE.search(printable(name))
    printable(name).encode("utf-8")  # always printable on a UTF-8 stream


def test_printable_keeps_the_lines_of_a_message_when_asked():
    assert printable("first\nsecond\x1b[A", lines=True) == "first\nsecond\\x1b[A"


@pytest.fixture
def hostile_library(tmp_path: Path, photo_maker) -> tuple[Path, dict[str, str]]:  # noqa: ANN001
    root = tmp_path / "photos\x1b[31m"
    keeper = root / "IMG_0001.jpg"
    photo_maker(keeper, 801, size=(320, 240))
    copy = root / SWAP
    shutil.copyfile(keeper, copy)
    os.utime(copy, ns=(keeper.stat().st_mtime_ns + 10**9,) * 2)  # the younger copy
    photo_maker(root / "evil\u202egpj.jpg", 802, size=(320, 240))
    shutil.copyfile(root / "evil\u202egpj.jpg", root / "evil\u202egpj (1).jpg")
    (root / "bad\x1b]0;pwned\x07.jpg").write_text("not a photo", encoding="utf-8")
    return root, {"keeper": str(keeper), "copy": str(copy)}


def _render(text: str) -> list[str]:
    """The screen a terminal shows for ``text`` (cursor up/down, save,
    restore, carriage return): term.py of the repro, as a function."""
    lines, row, col, saved, i = [""], 0, 0, (0, 0), 0
    while i < len(text):
        match = re.match(r"\x1b\[(\d*)([ABsu])", text[i:])
        if match:
            kind = match.group(2)
            if kind in "AB":
                row += (-1 if kind == "A" else 1) * int(match.group(1) or 1)
            elif kind == "s":
                saved = (row, col)
            else:
                row, col = saved
            while row >= len(lines):
                lines.append("")
            i += match.end()
            continue
        char, i = text[i], i + 1
        if char == "\r":
            col = 0
        elif char == "\n":
            row, col = row + 1, 0
            while row >= len(lines):
                lines.append("")
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + char + line[col + 1:]
            col += 1
    return lines


def test_the_text_report_escapes_names_and_the_json_keeps_them(tmp_path, hostile_library,
                                                               capsys):
    root, names = hostile_library
    report = tmp_path / "r.json"
    code = main(["scan", str(root), "--db", str(tmp_path / "c.db"), "--backbone",
                 "efficientnet-lite0", "--no-rotations", "--threshold", str(SCAN_THRESHOLD),
                 "--json", str(report), "-q"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    data = json.loads(report.read_text(encoding="utf-8"))
    paths = {m["path"] for g in data["groups"] for m in g["members"]}
    assert names["copy"] in paths and names["keeper"] in paths  # exact, unescaped
    group = next(g for g in data["groups"] if names["copy"] in {m["path"] for m in g["members"]})
    assert group["keeper"] == names["keeper"]
    assert {e["path"] for e in data["errors"]} == {str(root / "bad\x1b]0;pwned\x07.jpg")}
    # On screen, [keep] stands beside the keeper, and the copy is shown as
    # what it is: a long name with escapes in it.
    screen = _render(out)
    kept = [line for line in screen if line.startswith("  [keep]")]
    assert any(line.endswith(printable(names["keeper"])) for line in kept), screen
    assert not any(printable(names["copy"]) in line for line in kept), screen
    assert any(line.startswith("  [    ]") and line.endswith(printable(names["copy"]))
               for line in screen), screen
    assert "evil\\u202egpj (1).jpg" in out and "bad\\x1b]0;pwned\\x07.jpg" in out
    assert not UNSAFE.search(out), out


def test_errors_on_the_command_line_escape_the_names(tmp_path, capsys):
    missing = tmp_path / "gone\x1b[2J"
    assert main(["scan", str(missing), "--db", str(tmp_path / "c.db"), "-q"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "gone\\x1b[2J" in err and not UNSAFE.search(err)
    folder = tmp_path / "lib"
    folder.mkdir()
    bad_db = tmp_path / "no\x1b[8mwhere" / "c.db"
    assert main(["scan", str(folder), "--db", str(bad_db), "-q"]) == EXIT_DATABASE
    err = capsys.readouterr().err
    assert "no\\x1b[8mwhere" in err and not UNSAFE.search(err)


# -- the window -------------------------------------------------------------------
HOSTILE = "/photos/ok\x1b[2K\r\u202eevil.jpg"
SHOWN = "/photos/ok\\x1b[2K\\x0d\\u202eevil.jpg"


def _texts(box) -> str:  # noqa: ANN001
    return "\n".join((box.windowTitle(), box.text(), box.informativeText(),
                      box.detailedText()))


def test_the_window_error_box_and_problems_list_escape_names(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from imgdedupe.gui.dialogs import show_error
    from imgdedupe.gui.jobs.errors import WorkerError
    from imgdedupe.gui.main_window import MainWindow

    box = show_error(None, WorkerError("The scan could not run",
                                       f"cannot read {HOSTILE}", f"detail {HOSTILE}\nline 2"))
    try:
        text = _texts(box)
        assert SHOWN in box.text() and not UNSAFE.search(text), text
        assert "line 2" in box.detailedText()
    finally:
        box.close()

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings, str(tmp_path / "c.db"))
    qtbot.addWidget(window)
    try:
        window.result = SimpleNamespace(errors=[FileError(HOSTILE, "not_an_image",
                                                          f"cannot identify {HOSTILE}")])
        window.show_problems()
        problems = window._dialogs[-1]
        assert SHOWN in problems.detailedText()
        assert not UNSAFE.search(_texts(problems))
        window._on_failed(WorkerError("The scan could not run", f"no {HOSTILE}", ""))
        assert SHOWN in window.phase_label.text()
        assert not UNSAFE.search(window.phase_label.text())
    finally:
        window.shutdown()
        for dialog in window._dialogs:
            dialog.close()


def test_the_confirm_and_similar_dialogs_escape_names(qtbot, monkeypatch):
    from PySide6.QtWidgets import QLabel, QMessageBox

    from imgdedupe.core.records import Group
    from imgdedupe.gui import dialogs

    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: shown.append(_texts(box)) or 0)
    member = Member(HOSTILE, 100.0, 0, 1000, 10, 10, 0)
    assert dialogs.confirm_delete(None, [member], f"the trash\x1b[8m{HOSTILE}") is False
    [text] = shown
    assert SHOWN in text and not UNSAFE.search(text), text

    group = Group("similar", (member,), member.path, "similar_shot", "test")
    thumbnails = SimpleNamespace(ready=SimpleNamespace(connect=lambda slot: None),
                                 pixmap=lambda path: None, failures={})
    dialog = dialogs.SimilarDialog(HOSTILE, group, thumbnails,
                                   SimpleNamespace(is_marked=lambda path: False))
    qtbot.addWidget(dialog)
    label = dialog.findChild(QLabel)
    assert not UNSAFE.search(dialog.windowTitle() + label.text())
    assert "\\u202eevil.jpg" in dialog.windowTitle()
    assert "\\u202eevil.jpg" in label.text()


def test_the_folder_list_shows_escaped_names_and_scans_the_real_folder(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from imgdedupe.gui.main_window import MainWindow

    folder = tmp_path / "ok\x1b[2Kevil"
    folder.mkdir()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings, str(tmp_path / "c.db"))
    qtbot.addWidget(window)
    try:
        window.add_folders([str(folder)])
        shown = window.folders.item(0).text()
        assert "\\x1b" in shown and not UNSAFE.search(shown)
        assert window.folder_paths() == [str(folder)]  # the real name is what gets scanned
        assert window.scan_config().roots == (str(folder),)
    finally:
        window.shutdown()

""".ci/run installs what the tests need, so that none skips in CI: here,
the README's apt line of libraries for the window under X11."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_installs_the_readmes_window_libraries() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    apt_line = re.search(r"sudo apt-get install (lib[^\n`]+)", readme)
    assert apt_line, "the README's apt line for the window's libraries"
    wanted = set(apt_line.group(1).split())
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    loop = re.search(r"for pkg in (.*?); do", script, re.S)
    assert loop
    assert set(loop.group(1).replace("\\", " ").split()) == wanted
    for tool, package in (("xvfb-run", "xvfb"), ("gio", "libglib2.0-bin"),
                          ("makensis", "nsis"), ("desktop-file-validate", "desktop-file-utils")):
        assert re.search(rf"command -v {re.escape(tool)} .*{re.escape(package)}", script), tool

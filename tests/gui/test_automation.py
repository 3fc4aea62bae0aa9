"""``imgdedupe-gui --scan DIR --screenshot OUT --exit-when-done``: the real
app in a child process, as CI and the packaging checks run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_scan_screenshot_and_exit(tmp_path: Path) -> None:
    shot = tmp_path / "grid.png"
    compare = tmp_path / "compare.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_DATA_HOME": str(tmp_path / "d"),
           "XDG_STATE_HOME": str(tmp_path / "s"), "XDG_CACHE_HOME": str(tmp_path / "c")}
    done = subprocess.run(
        [sys.executable, "-m", "imgdedupe.gui.app", "--scan", str(REPO / "resources" / "samples"),
         "--db", str(tmp_path / "cache.sqlite3"), "--settings", str(tmp_path / "s.ini"),
         "--backbone", "efficientnet-lite0", "--screenshot", str(shot),
         "--compare-screenshot", str(compare), "--exit-when-done"],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for path in (shot, compare):
        with Image.open(path) as image:
            assert image.width >= 800 and image.height >= 500
            # Not a blank frame: thumbnails and text make many colours.
            assert len(image.convert("RGB").getcolors(1 << 20) or []) > 500


def test_a_failing_scan_exits_1(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_STATE_HOME": str(tmp_path / "s")}
    done = subprocess.run(
        [sys.executable, "-m", "imgdedupe.gui.app", "--scan", str(tmp_path / "photos"),
         "--db", str(tmp_path / "no-such-folder" / "cache.sqlite3"),
         "--settings", str(tmp_path / "s.ini"), "--exit-when-done"],
        env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "cannot" in done.stdout.lower() or "database" in done.stdout.lower()


def test_a_scripted_scan_of_a_missing_folder_exits_2_at_once(tmp_path: Path) -> None:
    """It waited for ever: no folder, so no scan, so no end."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_STATE_HOME": str(tmp_path / "s")}
    done = subprocess.run(
        [sys.executable, "-m", "imgdedupe.gui.app", "--scan", str(tmp_path / "missing"),
         "--db", str(tmp_path / "cache.sqlite3"), "--settings", str(tmp_path / "s.ini"),
         "--exit-when-done"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "not a folder" in done.stderr

"""One window: a second launch hands its paths to the running window and
exits; a crashed first launch never blocks the next. Two real processes,
offscreen, each with its own log in a private XDG state folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

GUI = [sys.executable, "-c", "import sys; from imgdedupe.gui.app import main; sys.exit(main())"]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen",
            "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "TMPDIR": str(tmp_path / "tmp"), "IMGDEDUPE_SETTINGS": str(tmp_path / "s.ini")}


def _log(tmp_path: Path) -> str:
    logs = list((tmp_path / "state").rglob("imgdedupe.log"))
    return logs[0].read_text(encoding="utf-8") if logs else ""


def _wait_for(predicate, seconds: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_second_launch_hands_over_and_a_crash_never_blocks(tmp_path):
    (tmp_path / "tmp").mkdir()
    folder = tmp_path / "My Photos é"
    folder.mkdir()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(folder / "a.jpg")
    env, db = _env(tmp_path), str(tmp_path / "c.db")
    first = subprocess.Popen([*GUI, "--db", db], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: any((tmp_path / "tmp").glob("imgdedupe-*.lock")), 60)
        started = time.monotonic()
        second = subprocess.run([*GUI, "--db", db, str(folder)], env=env, timeout=60,
                                capture_output=True, text=True)
        assert second.returncode == 0, second.stderr
        assert time.monotonic() - started < 15  # hand over and exit (mostly Python's start-up)
        assert _wait_for(lambda: f"handed over by another launch: {folder}" in _log(tmp_path), 10)
        assert first.poll() is None  # the first window is still the one
    finally:
        first.send_signal(signal.SIGKILL)  # a crash: its lock and socket stay behind
        first.wait(10)
    third = subprocess.Popen([*GUI, "--db", db], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        time.sleep(4)
        assert third.poll() is None  # it became the window, not a hand-over to a dead one
        fourth = subprocess.run([*GUI, "--db", db, str(folder)], env=env, timeout=60,
                                capture_output=True, text=True)
        assert fourth.returncode == 0
        assert _wait_for(lambda: _log(tmp_path).count("handed over by another launch") >= 2, 10)
    finally:
        third.kill()
        third.wait(10)

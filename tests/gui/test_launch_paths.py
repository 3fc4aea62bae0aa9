"""Several images in one launch, and several launches at once: every image
is searched for, none is dropped. Explorer runs a verb's command once per
selected item (MultiSelectModel=Player lifts its 15-item limit; it does not
merge the items), so a 20-photo selection is 20 launches that must end in
one window; files dropped on the program's icon, or Nemo's ``--similar
%F``, are one launch with many paths."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from imgdedupe.gui.app import build_parser, similar_queries, take_request

GUI = [sys.executable, "-c", "import sys; from imgdedupe.gui.app import main; sys.exit(main())"]


def _images(folder: Path, names: list[str]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(names):
        Image.new("RGB", (32, 32), (40 * i, 20, 30)).save(folder / name)
        paths.append(str(folder / name))
    return paths


def test_every_similar_and_every_image_path_is_a_query(tmp_path: Path) -> None:
    a, b, c = _images(tmp_path / "Fotos é", ["a b.jpg", "b.png", "c.jpg"])
    args = build_parser().parse_args(["--similar", a, "--similar", b, c, str(tmp_path), b])
    assert args.similar == [a, b]
    # Order kept, each image once, folders are not queries.
    assert similar_queries(args.similar, args.paths) == [a, b, c]
    assert similar_queries(None, [c, str(tmp_path)]) == [c]
    assert similar_queries(a, []) == [a]  # a single --similar as a str


class _Window:
    """Records what take_request asks of the window."""

    class controller:  # noqa: N801
        running = False

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def add_folders(self, folders: list[str]) -> None:
        self.calls.append(("add_folders", folders))

    def start_scan(self) -> None:
        self.calls.append(("start_scan", None))

    def find_similar(self, path: str) -> None:
        self.calls.append(("find_similar", path))

    def showNormal(self) -> None:  # noqa: N802
        pass

    raise_ = activateWindow = showNormal


def test_a_handed_over_request_searches_each_image(tmp_path: Path) -> None:
    a, b = _images(tmp_path / "p", ["a.jpg", "b.jpg"])
    window = _Window()
    take_request(window, {"paths": [a, str(tmp_path)], "scan": [], "similar": [b]})
    assert window.calls == [("add_folders", [str(tmp_path)]),
                            ("find_similar", b), ("find_similar", a)]


def _log(tmp_path: Path) -> str:
    logs = list((tmp_path / "state").rglob("imgdedupe.log"))
    return logs[0].read_text(encoding="utf-8") if logs else ""


def test_a_multi_selection_launched_at_once_ends_in_one_window(tmp_path: Path) -> None:
    """Five launches started together, as Explorer starts them for five
    selected photos, plus one launch carrying two photos: one window stays,
    and it searches for all seven."""
    (tmp_path / "tmp").mkdir()
    images = _images(tmp_path / "Ma sélection", [f"photo {i}.jpg" for i in range(7)])
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "TMPDIR": str(tmp_path / "tmp"), "IMGDEDUPE_SETTINGS": str(tmp_path / "s.ini")}
    db = str(tmp_path / "c.db")
    commands = [[*GUI, "--db", db, "--similar", image] for image in images[:5]]
    commands.append([*GUI, "--db", db, images[5], images[6]])
    launches = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL) for cmd in commands]
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and sum(p.poll() is None for p in launches) > 1:
            time.sleep(0.2)
        running = [p for p in launches if p.poll() is None]
        assert len(running) == 1, "one window, the others handed over and exited"
        assert all(p.returncode == 0 for p in launches if p is not running[0])
        window = running[0]
        handed = {image for image in images if image not in commands[launches.index(window)]}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(
                f"find similar to {image}" in _log(tmp_path) for image in handed):
            time.sleep(0.2)
        log = _log(tmp_path)
        assert [image for image in handed if f"find similar to {image}" not in log] == []
    finally:
        for p in launches:
            if p.poll() is None:
                p.kill()
                p.wait(10)

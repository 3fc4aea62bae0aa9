"""The review window's defects a new user ran into (the review-window
issue), each shown fixed through the window itself."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from imgdedupe.core.actions.decisions import Rule
from imgdedupe.gui.main_window import MainWindow
from imgdedupe.gui.review import review_panel
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

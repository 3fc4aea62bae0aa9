"""The window shows each group's tier and reason, hides tiers on request,
and never marks inside similar shots unless asked."""

from __future__ import annotations

from pathlib import Path

from imgdedupe.core.actions.decisions import Rule
from imgdedupe.gui.main_window import MainWindow
from imgdedupe.gui.review.group_model import KEEPER_ROLE
from tests.core.test_tiers import make_library
from tests.gui.test_window import scan


def _tiers_listed(win: MainWindow) -> list[str]:
    return sorted(g.tier for g in win.review.groups_model.groups)


def test_tiers_in_the_header_toggles_and_apply_to_all(qtbot, window: MainWindow,  # noqa: ANN001
                                                       tmp_path: Path) -> None:
    paths = make_library(tmp_path / "lib")
    window.add_folders([str(tmp_path / "lib")])
    scan(qtbot, window)
    review = window.review
    assert _tiers_listed(window) == ["near_duplicate", "similar_shot"]
    assert review.tier_boxes["similar_shot"].text() == "Similar shots (1)"
    burst_row = next(n for n, g in enumerate(review.groups_model.groups)
                     if g.tier == "similar_shot")
    review.select_group(burst_row)
    title = review.title.text()
    assert "Similar shots" in title and "0.5 s apart" in title
    members = review.members_model
    assert not any(members.index(row).data(KEEPER_ROLE) for row in range(members.rowCount()))
    # Hide similar shots: only the near-duplicate group is listed.
    review.tier_boxes["similar_shot"].setChecked(False)
    assert _tiers_listed(window) == ["near_duplicate"]
    assert "Near-duplicates" in review.title.text()
    review.tier_boxes["similar_shot"].setChecked(True)
    # "Apply to all groups" keeps the suggestion in the near-duplicates only...
    review.rule.setCurrentIndex(review.rule.findData(Rule.SUGGESTED))
    review.apply_all_button.click()
    assert window.decisions.marked == {paths["coffee_edit"]}
    # ...and inside similar shots too when asked explicitly.
    review.apply_to_shots.setChecked(True)
    review.apply_all_button.click()
    assert window.decisions.marked == {paths["coffee_edit"], paths["burst_1"]} or \
        window.decisions.marked == {paths["coffee_edit"], paths["burst_2"]}
    # Marks inside a hidden tier still count, and the trash plan sees them.
    review.tier_boxes["similar_shot"].setChecked(False)
    assert len(window.decisions.marked) == 2
    assert {m.path for g in review.groups for m in g.members} >= set(window.decisions.marked)

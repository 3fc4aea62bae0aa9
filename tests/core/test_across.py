"""Compare across folders only: only pairs whose photos lie under different
roots group, in the graph (every regroup agrees), in a real scan, and the
scan memo never replays one setting's answer for the other."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_pipeline import as_sets, make_library, scan

from imgdedupe.core.groups.contents import ContentTable
from imgdedupe.core.groups.graph import SimilarityGraph, across_only, groups_at, root_of
from imgdedupe.core.scan.config import ScanConfig, memo_settings
from imgdedupe.core.scan.events import ExactGroupsReady
from imgdedupe.core.verify.tiers import NEAR_DUPLICATE


@pytest.fixture(scope="module")
def lite0():
    from imgdedupe.core.model.loading import load_backbone

    return load_backbone("efficientnet-lite0", device="cpu")[0]


def _graph() -> SimilarityGraph:
    # Contents: 0 /lib/a  1 /dump/a  2 /lib/b  3 /lib/sub/b2
    # 4 byte copies inside /lib, 5 byte copies across /lib and /dump.
    paths = ["/lib/a.jpg", "/dump/a.jpg", "/lib/b.jpg", "/lib/sub/b2.jpg",
             "/lib/c.jpg", "/lib/x/c.jpg", "/dump/d.jpg", "/lib/d.jpg"]
    starts = [0, 1, 2, 3, 4, 6, 8]
    table = ContentTable(paths, [100] * 8, [0] * 8, starts, [50] * 6, [50] * 6, [None] * 6)
    pairs = np.array([[0, 1], [2, 3]], dtype=np.int64)
    return SimilarityGraph("efficientnet-lite0", table, pairs,
                           np.array([0.9999, 0.9999], np.float32),
                           np.array([NEAR_DUPLICATE, NEAR_DUPLICATE], np.int8),
                           ("same picture", "same picture"), np.full(6, np.nan))


def _sets(groups) -> set[frozenset[str]]:  # noqa: ANN001
    return {frozenset(m.path for m in g.members) for g in groups}


def test_across_only_keeps_the_pairs_and_copies_that_span_two_roots() -> None:
    graph = _graph()
    everything = _sets(groups_at(graph, 90))
    assert everything == {frozenset({"/lib/a.jpg", "/dump/a.jpg"}),
                          frozenset({"/lib/b.jpg", "/lib/sub/b2.jpg"}),
                          frozenset({"/lib/c.jpg", "/lib/x/c.jpg"}),
                          frozenset({"/dump/d.jpg", "/lib/d.jpg"})}
    across = across_only(graph, ["/lib", "/dump"])
    assert _sets(groups_at(across, 90)) == {frozenset({"/lib/a.jpg", "/dump/a.jpg"}),
                                            frozenset({"/dump/d.jpg", "/lib/d.jpg"})}
    # Nested roots: a photo belongs to the deepest root that holds it.
    nested = across_only(graph, ["/lib", "/lib/sub"])
    assert frozenset({"/lib/b.jpg", "/lib/sub/b2.jpg"}) in _sets(groups_at(nested, 90))
    assert root_of("/lib/sub/b2.jpg", ["/lib", "/lib/sub"]) == "/lib/sub"
    assert root_of("/library/x.jpg", ["/lib"]) is None


def test_the_memo_key_holds_the_across_setting(tmp_path: Path) -> None:
    config = ScanConfig(roots=("/a", "/b"), db_path=str(tmp_path / "c.db"))
    on = ScanConfig(roots=("/a", "/b"), db_path=str(tmp_path / "c.db"), across=True)
    assert memo_settings(config, config.roots, "efficientnet-lite0") != \
        memo_settings(on, on.roots, "efficientnet-lite0")


def _library_with_copies_inside_one_folder(root: Path) -> tuple[dict[str, str], list[str]]:
    p = make_library(root)
    camera = root / "camera"
    p["cameraman_copy"] = str(camera / "cameraman (copy).jpg")
    shutil.copyfile(p["cameraman"], p["cameraman_copy"])
    hubble = Image.open(p["hubble"])
    p["hubble_small"] = str(camera / "hubble_small.jpg")
    hubble.resize((hubble.width // 2, hubble.height // 2)).save(p["hubble_small"], quality=80)
    return p, [str(root / name) for name in ("camera", "phone", "edits")]


def test_a_scan_across_folders_groups_only_across_and_the_memo_follows_the_toggle(
        tmp_path: Path, lite0) -> None:  # noqa: ANN001
    p, roots = _library_with_copies_inside_one_folder(tmp_path / "lib")
    db = str(tmp_path / "c.db")
    within = {frozenset({p["cameraman"], p["cameraman_copy"]}),
              frozenset({p["hubble"], p["hubble_small"]})}

    early: list = []

    def run(across: bool):  # noqa: ANN202
        result, events = scan(ScanConfig(roots=tuple(roots), db_path=db, across=across), lite0)
        early[:] = [e for e in events if isinstance(e, ExactGroupsReady)]
        return result, "sync" not in result.stats.timings  # a replay never syncs

    everything, _ = run(False)
    assert within <= as_sets(everything)
    across, replayed = run(True)
    assert not replayed, "the memo of the other setting was replayed"
    assert as_sets(across) == as_sets(everything) - within
    # The byte copies announced first are filtered the same way.
    assert _sets(early[0].groups) == {frozenset({p["rocket"], p["rocket_copy"]})}
    assert len(as_sets(across)) == 4  # rocket, coffee, cat, astronaut: each spans folders
    again, replayed = run(False)
    assert not replayed and as_sets(again) == as_sets(everything)
    _, replayed = run(False)
    assert replayed  # the same setting twice: the memo answers

"""The scan memo (scan.memo): an unchanged library's rescan replays
the last answer without syncing, hashing, searching or loading a model,
and anything that could change the answer makes the scan run again.

The strongest check is the same throughout: whatever the memo gives must
equal what a scan without it computes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_pipeline import as_sets, make_library, scan

from imgdedupe.core.errors import DecodeError
from imgdedupe.core.files.walk import walk
from imgdedupe.core.groups import graph as grouping
from imgdedupe.core.pairs import search
from imgdedupe.core.records import ErrorReason, ImageFile
from imgdedupe.core.scan import library, pipeline
from imgdedupe.core.scan import memo as scan_memo
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import ExactGroupsReady, ScanResult
from imgdedupe.core.storage.store import Store


@pytest.fixture(scope="module")
def lite0():
    from imgdedupe.core.model.loading import load_backbone

    return load_backbone("efficientnet-lite0", device="cpu")[0]


def _replayed(result: ScanResult) -> bool:
    # A replay stops after the walk and the plan: it never syncs the cache.
    return "sync" not in result.stats.timings


def _memo_files(db: Path) -> list[Path]:
    return sorted(db.with_suffix(".index").glob(f"*/{scan_memo.FILE_NAME}"))


def _answer(result: ScanResult, events: list) -> tuple:
    """Everything a scan reports, less its timings and notices."""
    exact = next(e.groups for e in events if isinstance(e, ExactGroupsReady))
    graph = result.graph
    assert graph is not None
    # What was embedded this time is history, not part of the answer.
    stats = (result.stats.files_seen, result.stats.unique_contents, result.stats.failed)
    # The graph by name, not by node number: a content's key (and so its
    # place) changes once its hash is cached, its pairs do not.
    contents = tuple(graph.contents)
    first_path = [c.files[0].path for c in contents]
    # Cosines to 1e-5: the same pair scored in another batch order differs
    # in float32's last bits.
    pairs = sorted((*sorted((first_path[a], first_path[b])), round(cosine, 5))
                   for (a, b), cosine
                   in zip(graph.pairs.astype(np.int64).tolist(), graph.cosines.tolist(),
                          strict=True))
    return (result.groups, result.errors, stats, result.backbone, result.model_id,
            result.threshold, result.ignore_marks, exact, sorted(contents, key=_first_path),
            pairs, graph.floor_score)


def _first_path(content) -> str:  # noqa: ANN001
    return content.files[0].path


def _computed(config: ScanConfig, backbone) -> tuple:  # noqa: ANN001
    """The answer of a scan that has no memo to replay."""
    for memo in _memo_files(Path(config.db_path)):
        memo.unlink()
    result, events = scan(config, backbone)
    assert not _replayed(result)
    return _answer(result, events)


def test_an_unchanged_library_replays_the_same_answer(tmp_path, lite0):
    make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    first, _ = scan(config, lite0)
    assert not _replayed(first) and len(_memo_files(tmp_path / "c.db")) == 1
    again, events = scan(config, lite0)
    assert _replayed(again)
    assert _answer(again, events) == _computed(config, lite0)
    assert (again.groups, again.errors) == (first.groups, first.errors)
    assert again.stats.embedded == 0 and again.stats.from_cache == first.stats.unique_contents


def test_a_replay_loads_no_model(tmp_path, lite0, monkeypatch):
    make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"),
                        backbone="efficientnet-lite0")
    scan(config, lite0)
    expected = _computed(config, lite0)

    def no_model(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a replay must not load the model")

    monkeypatch.setattr(pipeline, "build_backbone", no_model)
    again, events = scan(config)  # no backbone given: the scan plans its own
    assert _replayed(again) and _answer(again, events) == expected


def test_a_replay_does_not_import_torch(tmp_path):
    """The command line's rescan of an unchanged folder: torch's import
    alone took 0.8 s of a 1.5 s rescan of 16 photos."""
    make_library(tmp_path / "lib")
    db = str(tmp_path / "c.db")
    args = ["scan", str(tmp_path / "lib"), "--db", db, "--backbone", "efficientnet-lite0"]
    probe = ("import sys\nfrom imgdedupe.cli import main\ncode = main(sys.argv[1:])\n"
             "print('torch imported:', 'torch' in sys.modules)\nsys.exit(code)\n")
    runs = [subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                           text=True, timeout=300) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr
    assert "torch imported: True" in runs[0].stdout  # the first scan ran the model
    assert "torch imported: False" in runs[1].stdout
    groups = [r.stdout.split("\n\n")[:-1] for r in runs]  # the groups, not the summary
    assert groups[0] and groups[1] == groups[0]


@pytest.mark.parametrize("change", [
    "file_changed", "file_added", "file_deleted", "threshold", "rotations", "ignore_mark",
    "vectors_rebuilt", "search_upgraded", "grouping_upgraded",
])
def test_whatever_could_change_the_answer_makes_the_scan_run(tmp_path, lite0, photo_maker,
                                                              monkeypatch, change):
    p = make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    first, _ = scan(config, lite0)
    if change == "file_changed":
        photo_maker(p["coffee_small"], 11)  # another picture under the same name
    elif change == "file_added":
        shutil.copyfile(p["hubble"], tmp_path / "lib" / "edits" / "hubble copy.jpg")
    elif change == "file_deleted":
        os.remove(p["astro_grey"])
    elif change == "threshold":
        config = replace(config, threshold=97.0)
    elif change == "rotations":
        config = replace(config, rotations=False)
    elif change == "ignore_mark":
        with Store(config.db_path) as store:
            store.add_ignore_mark([p["rocket"]])  # any change to the marks
    elif change == "vectors_rebuilt":
        # A scan that did not see the cat (it was away) forgets its row and
        # its vector; this scan embeds it again.
        away = [f for f in walk(config.roots) if isinstance(f, ImageFile) and f.path != p["cat"]]
        with Store(config.db_path) as store:
            store.sync_tree(config.roots, away)
    elif change == "search_upgraded":  # a new imgdedupe finds pairs another way
        monkeypatch.setattr(search, "SEARCH_VERSION", search.SEARCH_VERSION + 1)
    elif change == "grouping_upgraded":  # ... or groups them, or picks keepers, another way
        monkeypatch.setattr(grouping, "GROUPING_VERSION", grouping.GROUPING_VERSION + 1)
    result, events = scan(config, lite0)
    assert not _replayed(result)
    assert _answer(result, events) == _computed(config, lite0)
    assert _answer(result, events)[:2] != (first.groups, first.errors) or change in (
        "ignore_mark", "vectors_rebuilt", "rotations", "search_upgraded", "grouping_upgraded")
    replayed, events = scan(config, lite0)  # and then that answer is replayed
    assert _replayed(replayed) and _answer(replayed, events) == _answer(result, events)


def test_a_file_that_could_not_be_hashed_is_not_memoised(tmp_path, lite0, monkeypatch):
    """An unreadable copy may become readable without a new mtime (chmod):
    its error must not be replayed."""
    p = make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    real_hash = library.content_hash

    def unreadable_copy(path: str) -> str:
        if path == p["rocket_copy"]:
            raise DecodeError(ErrorReason.PERMISSION, "cannot be read: Permission denied")
        return real_hash(path)

    monkeypatch.setattr(library, "content_hash", unreadable_copy)
    failed, _ = scan(config, lite0)
    assert [(e.path, e.reason) for e in failed.errors] == [
        (p["rocket_copy"], ErrorReason.PERMISSION)]
    assert _memo_files(tmp_path / "c.db") == []
    monkeypatch.setattr(library, "content_hash", real_hash)  # the user fixed it
    fixed, _ = scan(config, lite0)
    assert not _replayed(fixed) and fixed.errors == ()
    assert frozenset({p["rocket"], p["rocket_copy"]}) in as_sets(fixed)


def test_a_damaged_memo_is_ignored_and_replaced(tmp_path, lite0):
    make_library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    scan(config, lite0)
    expected = _computed(config, lite0)
    [memo] = _memo_files(tmp_path / "c.db")
    memo.write_bytes(memo.read_bytes()[: memo.stat().st_size // 2])
    again, events = scan(config, lite0)
    assert not _replayed(again) and _answer(again, events) == expected
    third, events = scan(config, lite0)
    assert _replayed(third) and _answer(third, events) == expected


@pytest.mark.skipif(sys.platform in ("win32", "darwin"),
                    reason="needs a file system that takes any bytes as a name")
def test_names_that_are_not_utf8_survive_the_memo(tmp_path, lite0):
    p = make_library(tmp_path / "lib")
    odd = os.fsdecode(os.fsencode(str(tmp_path / "lib" / "phone")) + b"/caf\xe9 \xff.jpg")
    shutil.copyfile(p["cameraman"], odd)
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    first, _ = scan(config, lite0)
    assert frozenset({p["cameraman"], odd}) in as_sets(first)
    expected = _computed(config, lite0)
    again, events = scan(config, lite0)
    assert _replayed(again) and _answer(again, events) == expected

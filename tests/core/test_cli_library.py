"""The command line on a real library: --protect (never suggested for
deletion; all-protected groups left out) and --across (only pairs across
the folders given), on the bundled samples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from imgdedupe.cli import EXIT_OK, EXIT_USAGE, main

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "photos"
    shutil.copytree(SAMPLES, root, ignore=shutil.ignore_patterns("*.md"))
    return root


def scan_json(library: Path, *options: str, roots: tuple[str, ...] = ()) -> dict:
    out = library.parent / "report.json"
    # One cache for the module: protection is applied after the scan, so
    # every run after the first replays the memo.
    code = main(["scan", *(roots or (str(library),)), "--db", str(library.parent / "c.db"),
                 "--backbone", "efficientnet-lite0", "--json", str(out), "-q", *options])
    assert code == EXIT_OK
    return json.loads(out.read_text())


def names(group: dict) -> set[str]:
    return {Path(m["path"]).name for m in group["members"]}


def test_protect_never_suggests_deleting_a_protected_photo(library: Path, capsys) -> None:  # noqa: ANN001
    plain = scan_json(library)
    assert len(plain["groups"]) == 4
    archive = library / "Archive"
    report = scan_json(library, "--protect", str(archive))
    # scan_0042's three copies all lie in Archive: nothing to do, left out.
    assert report["protected_groups_hidden"] == 1
    assert report["protected_folders"] == [str(archive)]
    assert len(report["groups"]) == 3
    assert not any("scan_0042.jpg" in names(g) for g in report["groups"])
    protected_seen = 0
    for group in report["groups"]:
        for m in group["members"]:
            inside = m["path"].startswith(str(archive) + "/")
            assert m["protected"] == inside
            if inside:
                protected_seen += 1
                assert not m["suggested_for_deletion"]
        if any(m["protected"] for m in group["members"]):
            # The keeper is a protected photo where the group has one.
            assert group["keeper"].startswith(str(archive) + "/")
    assert protected_seen >= 2  # chelsea's and IMG_0002's Archive copies
    text = capsys.readouterr().out
    assert "[prot]" in text  # the protected copy that is not the keeper
    assert "1 group(s) lie wholly in protected folders" in text
    shown = scan_json(library, "--protect", str(archive), "--show-protected")
    assert len(shown["groups"]) == 4 and shown["protected_groups_hidden"] == 0


def test_protect_of_a_missing_folder_is_a_usage_error(library: Path, capsys) -> None:  # noqa: ANN001
    assert main(["scan", str(library), "--db", str(library.parent / "c.db"), "-q",
                 "--protect", str(library / "nowhere")]) == EXIT_USAGE
    assert "--protect: not a folder" in capsys.readouterr().err


def test_across_groups_only_photos_in_different_folders(library: Path) -> None:
    roots = tuple(str(library / name) for name in ("Holiday", "Phone", "Archive"))
    plain = scan_json(library, roots=roots)
    assert any(names(g) >= {"scan_0042.jpg", "scan_0042.png"} for g in plain["groups"])
    across = scan_json(library, "--across", roots=roots)
    # scan_0042's copies all lie in Archive: not across folders.
    assert not any("scan_0042.jpg" in names(g) for g in across["groups"])
    assert len(across["groups"]) == len(plain["groups"]) - 1
    for group in across["groups"]:
        folders = {Path(m["path"]).parent.name for m in group["members"]}
        assert len(folders) >= 2


def test_across_with_one_folder_says_that_nothing_can_group(library: Path, capsys) -> None:  # noqa: ANN001
    capsys.readouterr()
    assert scan_json(library, "--across")["groups"] == []
    assert "Note: Compare across folders only needs two folders or more: with one, " \
           "nothing is grouped." in capsys.readouterr().err

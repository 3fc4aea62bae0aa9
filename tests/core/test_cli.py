"""The command line: output formats, exit codes, cache reuse, find similar."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imgdedupe import __version__
from imgdedupe.cli import EXIT_DATABASE, EXIT_OK, EXIT_USAGE, main

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    shutil.copytree(SAMPLES, root, ignore=shutil.ignore_patterns("*.md"))
    return root


def run(*args: str) -> int:
    return main(list(args))


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run("--version")
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out
    with pytest.raises(SystemExit):
        run("scan", "--help")
    text = capsys.readouterr().out
    for option in ("--threshold", "--json", "--backbone", "--tiers", "--include-hidden"):
        assert option in text
    assert "Exit codes" in text and "130" in text


def test_no_command_prints_help(capsys):
    assert run() == EXIT_USAGE
    assert "scan" in capsys.readouterr().out


def test_scan_json_report(library, tmp_path, capsys):
    out = tmp_path / "report.json"
    code = run("scan", str(library), "--db", str(tmp_path / "c.db"),
               "--backbone", "efficientnet-lite0", "--json", str(out), "-q")
    assert code == EXIT_OK
    report = json.loads(out.read_text())
    assert report["backbone"] == "efficientnet-lite0"
    assert report["notices"] == []
    groups = {frozenset(Path(m["path"]).name for m in g["members"]) for g in report["groups"]}
    assert frozenset({"IMG_0001.jpg", "IMG_0001 (1).jpg", "IMG_0001_small.jpg"}) in groups
    assert frozenset({"PXL_20230814_093012.jpg", "PXL_20230814_093012_exif.jpg",
                      "chelsea_rotated.jpg", "chelsea.webp"}) in groups
    assert len(groups) == 4
    for group in report["groups"]:
        keepers = [m for m in group["members"] if m["keeper"]]
        assert len(keepers) == 1 and keepers[0]["path"] == group["keeper"]
        assert all(0 <= m["similarity"] <= 100 for m in group["members"])
    rocket = next(g for g in report["groups"]
                  if any(m["path"].endswith("IMG_0001 (1).jpg") for m in g["members"]))
    exact = {Path(m["path"]).name for m in rocket["members"] if m["exact"]}
    assert exact == {"IMG_0001.jpg", "IMG_0001 (1).jpg"}
    assert [(Path(e["path"]).name, e["reason"]) for e in report["errors"]] == \
        [("broken.jpg", "truncated")]
    stats = report["stats"]
    assert stats["files_seen"] == 16 and stats["embedded"] == 14 and stats["failed"] == 1
    assert {"walk", "hash", "embed", "index", "group"} <= set(stats["timings_s"])
    text = capsys.readouterr().out
    assert "Group 1" in text and "broken.jpg: truncated" in text

    # Second run: nothing to embed.
    run("scan", str(library), "--db", str(tmp_path / "c.db"), "--backbone",
        "efficientnet-lite0", "--json", str(out), "-q")
    again = json.loads(out.read_text())
    assert again["stats"]["embedded"] == 0 and again["stats"]["from_cache"] == 14
    assert again["groups"] == report["groups"]


def test_default_backbone_falls_back_visibly_in_the_json(library, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("IMGDEDUPE_WEIGHTS", raising=False)
    monkeypatch.setattr("imgdedupe.core.model.loading.default_bundled_dirs", lambda: [])
    out = tmp_path / "r.json"
    assert run("scan", str(library / "Holiday"), "--db", str(tmp_path / "c.db"),
               "--json", str(out), "-q") == EXIT_OK
    report = json.loads(out.read_text())
    assert report["backbone"] == "efficientnet-lite0"
    assert [n["code"] for n in report["notices"]] == ["backbone_fallback"]


def test_bad_db_location_fails_before_any_work(library, tmp_path, capsys):
    code = run("scan", str(library), "--db", str(tmp_path / "missing" / "c.db"),
               "--backbone", "efficientnet-lite0")
    assert code == EXIT_DATABASE
    err = capsys.readouterr().err
    assert "does not exist" in err


def test_missing_path_is_a_usage_error(tmp_path, capsys):
    assert run("scan", str(tmp_path / "nope"), "--db", str(tmp_path / "c.db")) == EXIT_USAGE
    assert "no such file" in capsys.readouterr().err


def test_similar_lists_best_matches_first(library, tmp_path, capsys):
    db = str(tmp_path / "c.db")
    run("scan", str(library), "--db", db, "--backbone", "efficientnet-lite0", "-q")
    capsys.readouterr()
    # The query lives outside the scanned folder.
    query = tmp_path / "query.jpg"
    shutil.copyfile(library / "Archive" / "chelsea_rotated.jpg", query)
    out = tmp_path / "sim.json"
    assert run("similar", str(query), "--db", db, "--backbone", "efficientnet-lite0",
               "-k", "5", "--json", str(out)) == EXIT_OK
    matches = json.loads(out.read_text())["matches"]
    assert len(matches) == 5
    top = {Path(m["path"]).name for m in matches[:4]}
    assert top == {"PXL_20230814_093012.jpg", "PXL_20230814_093012_exif.jpg",
                   "chelsea_rotated.jpg", "chelsea.webp"}
    scores = [m["similarity"] for m in matches]
    assert scores == sorted(scores, reverse=True)
    assert scores[3] >= 90 > scores[4]
    # The query's own folder was never scanned: said, with the way forward.
    assert json.loads(out.read_text())["folder_scanned"] is False
    assert f"imgdedupe scan {tmp_path}" in capsys.readouterr().err


def test_similar_on_a_fresh_cache_says_what_to_do_not_a_bare_zero(library, tmp_path, capsys):
    query = library / "Holiday" / "IMG_0002.jpg"
    assert run("similar", str(query), "--db", str(tmp_path / "c.db"),
               "--backbone", "efficientnet-lite0") == EXIT_OK
    captured = capsys.readouterr()
    assert "No photo in the cache is like it yet" in captured.out
    assert f"imgdedupe scan {query.parent}" in captured.err


def test_similar_on_a_corrupt_image_is_a_clear_error(library, tmp_path, capsys):
    db = str(tmp_path / "c.db")
    code = run("similar", str(library / "Phone" / "broken.jpg"), "--db", db,
               "--backbone", "efficientnet-lite0")
    assert code == EXIT_USAGE
    assert "truncated" in capsys.readouterr().err


def test_console_script_runs_as_a_module(tmp_path):
    done = subprocess.run([sys.executable, "-m", "imgdedupe", "--version"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"imgdedupe {__version__}"


def test_a_reader_that_goes_away_ends_the_report_quietly(tmp_path) -> None:
    """`imgdedupe scan ... | head` ended in a BrokenPipeError traceback."""
    from imgdedupe.cli import EXIT_BROKEN_PIPE

    scan = subprocess.Popen(
        [sys.executable, "-m", "imgdedupe", "scan", str(SAMPLES), "--db", str(tmp_path / "c.db"),
         "--backbone", "efficientnet-lite0", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert scan.stdout is not None and scan.stderr is not None
    scan.stdout.close()  # the reader is gone before the report is written
    with scan.stderr:
        errors = scan.stderr.read().decode()
    assert scan.wait(timeout=120) == EXIT_BROKEN_PIPE
    assert "Traceback" not in errors and "BrokenPipeError" not in errors

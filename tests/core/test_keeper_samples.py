"""The bundled samples, scanned with the offline model: every suggested
keeper is the original that resources/samples/EXPECTED.md names as the
group's "base photo", and each group says why, in the JSON and the text
report; the command line takes --keep-rules.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from imgdedupe.cli import EXIT_OK, main
from imgdedupe.core.groups.keeper_rules import KeeperChain
from imgdedupe.core.groups.orientation import graph_turned_copies
from imgdedupe.core.model.loading import load_backbone
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import ScanResult
from imgdedupe.core.scan.pipeline import run_scan
from imgdedupe.report import JSON_FORMAT, result_to_dict, write_csv, write_text

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


def expected_groups() -> dict[str, tuple[frozenset[str], str]]:
    """EXPECTED.md's groups: title -> (member paths relative to the samples,
    the base photo's path)."""
    groups: dict[str, tuple[frozenset[str], str]] = {}
    text = (SAMPLES / "EXPECTED.md").read_text(encoding="utf-8")
    part = text.split("## Groups that should be reported")[1].split("\n## ")[0]
    for section in part.split("\n### ")[1:]:
        title = section.splitlines()[0].strip()
        files = re.findall(r"^- `([^`]+)` - (.*)$", section, re.MULTILINE)
        bases = [path for path, words in files if words.startswith("base photo")]
        assert len(bases) == 1, title
        groups[title] = (frozenset(path for path, _ in files), bases[0])
    return groups


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> tuple[Path, Path, ScanResult]:  # noqa: ANN001
    """(the samples' copy, its database, the scan's result)."""
    base = tmp_path_factory.mktemp("keeper")
    root = base / "samples"
    shutil.copytree(SAMPLES, root, ignore=shutil.ignore_patterns("*.md"))
    db = base / "cache.sqlite3"
    backbone, _ = load_backbone("efficientnet-lite0", device="cpu")
    config = ScanConfig(roots=(str(root),), db_path=str(db), backbone="efficientnet-lite0",
                        device="cpu")
    *_, result = run_scan(config, backbone=backbone)
    assert isinstance(result, ScanResult)
    return root, db, result


def relative(path: str, root: Path) -> str:
    return Path(path).relative_to(root).as_posix()


def test_every_suggested_keeper_in_the_samples_is_the_original(samples):
    root, _, result = samples
    expected = expected_groups()
    assert len(expected) == 4
    checked = set()
    for group in result.groups:
        names = {relative(m.path, root) for m in group.members}
        title = next(t for t, (files, _) in expected.items() if names <= files)
        if group.deletable:
            _, base = expected[title]
            assert relative(group.keeper, root) == base, (title, group.keeper_reason)
            assert group.keeper_reason.startswith("kept: ")
            checked.add(title)
    assert checked == set(expected)  # every expected group was found, and checked


def test_the_samples_edited_copies_lose_and_the_reasons_say_why(samples):
    root, _, result = samples

    def reason_of(name: str) -> str:
        return next(g.keeper_reason for g in result.groups
                    if any(m.path.endswith(name) for m in g.members))

    assert "upright, chelsea_rotated.jpg is a turned or mirrored copy" in \
        reason_of("chelsea_rotated.jpg")
    assert "IMG_0002_bright.jpg is named as an edit" in reason_of("IMG_0002_bright.jpg")
    assert "IMG_0001 (1).jpg is named as a copy" in reason_of("IMG_0001 (1).jpg")
    # The turn is known from the verification itself, not only from the sizes.
    assert graph_turned_copies(result.graph, result.groups) == \
        {str(root / "Archive" / "chelsea_rotated.jpg")}


def test_the_json_and_the_text_report_say_why_each_keeper(samples):
    _, _, result = samples
    report = result_to_dict(result)
    assert report["format"] == JSON_FORMAT == 3
    for group in report["groups"]:
        if group["keeper"] is None:  # a similar shot suggests no keeper, so no reason
            assert group["keeper_reason"] is None
        else:
            assert group["keeper_reason"].startswith("kept: ")
    text = io.StringIO()
    write_text(result, text)
    for group in result.groups:
        if group.deletable:
            assert f"  {group.keeper_reason}\n" in text.getvalue()
    table = io.StringIO()
    write_csv(result.groups, table)
    rows = list(csv.DictReader(io.StringIO(table.getvalue())))
    assert {r["keeper_reason"] for r in rows} == \
        {g.keeper_reason for g in result.groups if g.deletable}


def test_the_command_line_takes_keep_rules(samples, tmp_path):
    root, db, _ = samples
    out = tmp_path / "report.json"
    archive = root / "Archive"
    code = main(["scan", str(root), "--db", str(db), "--backbone", "efficientnet-lite0",
                 "--device", "cpu", "--json", str(out), "-q",
                 "--keep-rules", f"folder={archive},pixels,name"])
    assert code == EXIT_OK
    report = json.loads(out.read_text())
    chelsea = next(g for g in report["groups"]
                   if any(m["path"].endswith("chelsea.webp") for m in g["members"]))
    assert Path(chelsea["keeper"]).parent == archive
    assert chelsea["keeper_reason"].startswith(f"kept: in the preferred folder {archive}")


@pytest.mark.parametrize(("rules", "says"), [
    ("pixels,biggest", "unknown keeper rule 'biggest'; choose from pixels, upright, exif"),
    ("folder=/no/such/folder", "the preferred folder does not exist: /no/such/folder"),
    ("date,date", "name each keeper rule once"),
])
def test_a_wrong_keep_rules_exits_2_with_a_clear_message(rules, says, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["scan", str(tmp_path), "--keep-rules", rules])
    assert exit_info.value.code == 2
    assert says in capsys.readouterr().err


def test_help_lists_the_keeper_rules(capsys):
    with pytest.raises(SystemExit):
        main(["scan", "--help"])
    text = capsys.readouterr().out
    assert "--keep-rules" in text
    for name in KeeperChain().criteria:
        assert f"\n  {name} " in text
    assert "Default: pixels,upright,exif,name,compression,date,path\n" in text

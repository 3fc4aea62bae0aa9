"""Companion files: found beside their photo, reported, counted, and trashed
and restored with it as one unit."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from imgdedupe.core.actions.trashing import FolderTrash, plan_deletions, trash_files, undo
from imgdedupe.core.files import walk
from imgdedupe.core.files.companions import companions_on_disk, find_companions
from imgdedupe.core.model.loading import load_backbone
from imgdedupe.core.records import Companion, Group, Member
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import ScanResult, ScanStats
from imgdedupe.core.scan.pipeline import run_scan
from imgdedupe.core.storage.store import Store
from imgdedupe.report import JSON_FORMAT, result_to_dict, write_csv, write_text

FOLDER = "/lib/2024"


def _found(photos: list[str], names: list[str]) -> dict[str, set[tuple[str, str]]]:
    """find_companions in one folder, by bare names."""
    result = find_companions([f"{FOLDER}/{p}" for p in photos], {FOLDER: [*photos, *names]})
    return {os.path.basename(photo): {(os.path.basename(p), kind) for p, kind in found}
            for photo, found in result.of_photo.items()}


def _absorbed(photos: list[str], names: list[str]) -> set[str]:
    result = find_companions([f"{FOLDER}/{p}" for p in photos], {FOLDER: [*photos, *names]})
    return {os.path.basename(p) for p in result.absorbed}


# -- detection --------------------------------------------------------------
def test_each_kind_of_companion_is_found_beside_its_photo() -> None:
    found = _found(["IMG_1.JPG", "IMG_2.HEIC", "DSC_3.png"],
                   ["IMG_1.xmp", "IMG_1.CR2", "IMG_2.MOV", "IMG_2.AAE", "DSC_3.thm",
                    "notes.txt", "IMG_9.xmp"])
    assert found == {
        "IMG_1.JPG": {("IMG_1.xmp", "sidecar"), ("IMG_1.CR2", "raw")},
        "IMG_2.HEIC": {("IMG_2.MOV", "live_photo"), ("IMG_2.AAE", "sidecar")},
        "DSC_3.png": {("DSC_3.thm", "sidecar")},
    }


@pytest.mark.parametrize("raw", ["a.CR2", "a.cr3", "a.NEF", "a.arw", "a.DNG", "a.RAF",
                                 "a.orf", "a.Rw2"])
def test_every_raw_format_in_any_case_is_its_jpegs(raw: str) -> None:
    assert _found(["a.jpg"], [raw]) == {"a.jpg": {(raw, "raw")}}
    assert _absorbed(["a.jpg"], [raw]) == {raw}


def test_names_match_in_any_case() -> None:
    found = _found(["IMG_0042.JPG"], ["img_0042.XMP", "Img_0042.nef", "IMG_0042.mov"])
    assert found == {"IMG_0042.JPG": {("img_0042.XMP", "sidecar"), ("Img_0042.nef", "raw"),
                                      ("IMG_0042.mov", "live_photo")}}


def test_a_sidecar_of_the_full_name_is_that_files() -> None:
    # IMG_1.JPG.xmp is the JPEG's, IMG_1.CR2.xmp the RAW's (so the JPEG's too),
    # even where a stem alone would be ambiguous.
    found = _found(["IMG_1.JPG", "IMG_1.HEIC"],
                   ["IMG_1.JPG.xmp", "IMG_1.heic.XMP", "IMG_1.xmp"])
    assert found == {"IMG_1.JPG": {("IMG_1.JPG.xmp", "sidecar")},
                     "IMG_1.HEIC": {("IMG_1.heic.XMP", "sidecar")}}
    found = _found(["P.jpg"], ["P.CR2", "P.CR2.xmp"])
    assert found == {"P.jpg": {("P.CR2", "raw"), ("P.CR2.xmp", "sidecar")}}


def test_a_companion_two_photos_could_own_belongs_to_neither() -> None:
    # An export beside its original: moving IMG_1.xmp, the RAW or the video
    # with either would orphan the other.
    photos = ["IMG_1.JPG", "IMG_1.HEIC"]
    assert _found(photos, ["IMG_1.xmp", "IMG_1.CR2", "IMG_1.MOV"]) == {}
    # The RAW is still the same photo as they are: not scanned on its own.
    assert _absorbed(photos, ["IMG_1.CR2"]) == {"IMG_1.CR2"}


def test_a_lone_raw_is_a_photo_with_its_own_sidecars() -> None:
    photos = ["DSC_7.NEF", "DSC_8.NEF", "DSC_8.JPG"]
    assert _absorbed(photos, ["DSC_7.xmp"]) == {"DSC_8.NEF"}
    assert _found(photos, ["DSC_7.xmp"]) == {"DSC_7.NEF": {("DSC_7.xmp", "sidecar")},
                                             "DSC_8.JPG": {("DSC_8.NEF", "raw")}}


def test_a_png_or_a_video_camera_thumbnail_takes_no_raw_or_live_video() -> None:
    # Only a camera's or a phone's own rendering (JPEG, HEIC) pairs with them.
    assert _found(["a.png"], ["a.CR2", "a.MOV"]) == {}
    assert _absorbed(["a.png"], ["a.CR2"]) == set()


def test_companions_are_looked_for_in_the_photos_own_folder_only() -> None:
    result = find_companions(["/lib/a/IMG_1.JPG"], {"/lib/b": ["IMG_1.xmp", "IMG_1.CR2"]})
    assert result.of_photo == {} and result.absorbed == frozenset()


def test_on_disk_they_carry_size_and_mtime_and_links_are_left_out(tmp_path: Path) -> None:
    photo = tmp_path / "IMG_5.jpg"
    photo.write_bytes(b"jpeg")
    (tmp_path / "IMG_5.xmp").write_bytes(b"<x:xmpmeta/>")
    (tmp_path / "elsewhere.CR2").write_bytes(b"raw" * 10)
    os.symlink(tmp_path / "elsewhere.CR2", tmp_path / "IMG_5.CR2")
    found = companions_on_disk([str(photo)])
    xmp = tmp_path / "IMG_5.xmp"
    assert found.of_photo == {str(photo): (Companion(str(xmp), 12, xmp.stat().st_mtime_ns,
                                                     "sidecar"),)}


# -- the scan -------------------------------------------------------------
def _jpeg_raw_xmp(folder: Path, photo_maker, stem: str = "IMG_0007") -> dict[str, Path]:  # noqa: ANN001
    """A camera's JPEG, its RAW and a sidecar. The RAW stand-in holds the
    JPEG's very bytes, so were it scanned it would be an exact copy."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"jpeg": folder / f"{stem}.JPG", "raw": folder / f"{stem}.CR2",
             "xmp": folder / f"{stem}.xmp"}
    photo_maker(paths["jpeg"], seed=7)
    shutil.copyfile(paths["jpeg"], paths["raw"])
    paths["xmp"].write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    return paths


@pytest.fixture(scope="module")
def lite0():  # noqa: ANN201
    backbone, _ = load_backbone("efficientnet-lite0", device="cpu")
    return backbone


def test_a_raw_beside_its_jpeg_is_not_scanned_and_never_grouped_with_it(
        tmp_path: Path, photo_maker, lite0, monkeypatch) -> None:  # noqa: ANN001
    # As once RAW files are scanned: the walk finds the .CR2 too.
    monkeypatch.setattr(walk, "IMAGE_EXTENSIONS", walk.IMAGE_EXTENSIONS | {".cr2"})
    camera = _jpeg_raw_xmp(tmp_path / "lib" / "camera", photo_maker)
    backup = tmp_path / "lib" / "backup" / "IMG_0007.JPG"
    backup.parent.mkdir()
    shutil.copyfile(camera["jpeg"], backup)
    lone_raw = tmp_path / "lib" / "raws" / "DSC_1.CR2"  # no JPEG beside it: a photo
    lone_raw.parent.mkdir()
    shutil.copyfile(camera["jpeg"], lone_raw)
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    result = list(run_scan(config, backbone=lite0))[-1]
    assert isinstance(result, ScanResult)
    assert [{m.path for m in g.members} for g in result.groups] == [
        {str(camera["jpeg"]), str(backup), str(lone_raw)}]
    assert result.stats.files_seen == 3
    members = {m.path: m for m in result.groups[0].members}
    assert {(c.path, c.kind) for c in members[str(camera["jpeg"])].companions} == {
        (str(camera["raw"]), "raw"), (str(camera["xmp"]), "sidecar")}
    assert members[str(backup)].companions == ()
    # A rescan replays the memo; a sidecar added since is found all the same.
    (backup.parent / "IMG_0007.xmp").write_text("<x/>")
    again = list(run_scan(config, backbone=lite0))[-1]
    assert isinstance(again, ScanResult)
    members = {m.path: m for m in again.groups[0].members}
    assert [c.path for c in members[str(backup)].companions] == [
        str(backup.parent / "IMG_0007.xmp")]
    assert again.graph is not None and str(backup) in again.graph.companions


# -- reports ----------------------------------------------------------------
def _group(paths: dict[str, Path], keeper: Path) -> Group:
    def member(path: Path, companions: tuple[Companion, ...] = ()) -> Member:
        st = path.stat()
        return Member(str(path), 100.0, 0, st.st_size, 640, 480, st.st_mtime_ns, companions)

    companions = tuple(Companion(str(paths[k]), paths[k].stat().st_size,
                                 paths[k].stat().st_mtime_ns, kind)
                       for k, kind in (("raw", "raw"), ("xmp", "sidecar")))
    return Group("exact", (member(keeper), member(paths["jpeg"], companions)), str(keeper),
                 "exact", "same bytes")


def _with_keeper(tmp_path: Path, photo_maker) -> tuple[dict[str, Path], Path]:  # noqa: ANN001
    paths = _jpeg_raw_xmp(tmp_path / "lib" / "camera", photo_maker)
    keeper = tmp_path / "lib" / "backup" / "IMG_0007.JPG"
    keeper.parent.mkdir()
    shutil.copyfile(paths["jpeg"], keeper)
    return paths, keeper


def test_json_lists_each_members_companions_and_text_shows_them(
        tmp_path: Path, photo_maker) -> None:  # noqa: ANN001
    paths, keeper = _with_keeper(tmp_path, photo_maker)
    result = ScanResult((_group(paths, keeper),), (), ScanStats(2, 1, 0, 0, 0, {}), (),
                        "efficientnet-lite0", "m", 90.0)
    report = json.loads(json.dumps(result_to_dict(result)))
    assert report["format"] == JSON_FORMAT == 3
    kept, copy = report["groups"][0]["members"]
    assert kept["companions"] == []
    assert copy["companions"] == [
        {"path": str(paths["raw"]), "kind": "raw", "size": paths["raw"].stat().st_size},
        {"path": str(paths["xmp"]), "kind": "sidecar", "size": paths["xmp"].stat().st_size}]
    text = io.StringIO()
    write_text(result, text)
    lines = text.getvalue().splitlines()
    at = next(n for n, line in enumerate(lines) if line.endswith(str(paths["jpeg"])))
    assert "+ RAW" in lines[at + 1] and lines[at + 1].endswith(str(paths["raw"]))
    assert "+ XMP" in lines[at + 2] and lines[at + 2].endswith(str(paths["xmp"]))
    exported = io.StringIO()
    write_csv(result.groups, exported)
    rows = list(csv.DictReader(io.StringIO(exported.getvalue())))
    assert [r["companions"].splitlines() for r in rows] == [
        [], [str(paths["raw"]), str(paths["xmp"])]]


# -- trash and undo as one unit ----------------------------------------------
def test_jpeg_xmp_and_raw_are_trashed_and_restored_as_one_unit(
        tmp_path: Path, photo_maker) -> None:  # noqa: ANN001
    paths, keeper = _with_keeper(tmp_path, photo_maker)
    before = {k: p.read_bytes() for k, p in paths.items()}
    group = _group(paths, keeper)
    plan = plan_deletions([group], {str(paths["jpeg"])})
    assert plan.files == 1 and plan.companion_files == 2
    assert plan.total_bytes == sum(p.stat().st_size for p in paths.values())
    assert "1 file and 2 companion files" in plan.summary()
    with Store(tmp_path / "c.db") as store:
        result = trash_files(store, plan, FolderTrash(str(tmp_path / "lib")))
        assert [(os.path.basename(o.path), o.status) for o in result.outcomes] == [
            ("IMG_0007.JPG", "moved"), ("IMG_0007.CR2", "moved"), ("IMG_0007.xmp", "moved")]
        assert not any(p.exists() for p in paths.values()) and keeper.exists()
        assert {r.path for r in store.journal_rows(states=("done",))} == {
            str(p) for p in paths.values()}
        restored = undo(store)
    assert sorted(o.status for o in restored.outcomes) == ["restored"] * 3
    assert {k: p.read_bytes() for k, p in paths.items()} == before


@pytest.mark.parametrize("change", ["vanished", "changed"])
def test_a_companion_that_vanished_or_changed_is_reported_and_the_rest_move(
        tmp_path: Path, photo_maker, change: str) -> None:  # noqa: ANN001
    paths, keeper = _with_keeper(tmp_path, photo_maker)
    group = _group(paths, keeper)
    if change == "vanished":
        paths["xmp"].unlink()
    else:  # an editor wrote the sidecar after the scan: its edits stay put
        paths["xmp"].write_text("<x:xmpmeta>edited since</x:xmpmeta>")
    plan = plan_deletions([group], {str(paths["jpeg"])})
    with Store(tmp_path / "c.db") as store:
        result = trash_files(store, plan, FolderTrash(str(tmp_path / "lib")))
    outcomes = {os.path.basename(o.path): (o.status, o.code) for o in result.outcomes}
    assert outcomes["IMG_0007.JPG"] == ("moved", "")
    assert outcomes["IMG_0007.CR2"] == ("moved", "")
    assert outcomes["IMG_0007.xmp"] == (
        "refused", "companion_missing" if change == "vanished" else "companion_modified")
    reason = next(o.reason for o in result.outcomes if o.path == str(paths["xmp"]))
    assert str(paths["jpeg"]) in reason
    assert paths["xmp"].exists() == (change == "changed")
    assert not paths["jpeg"].exists() and not paths["raw"].exists()


def test_a_photo_that_cannot_move_keeps_its_companions_in_place(
        tmp_path: Path, photo_maker) -> None:  # noqa: ANN001
    paths, keeper = _with_keeper(tmp_path, photo_maker)
    group = _group(paths, keeper)
    paths["jpeg"].write_bytes(b"replaced after the scan")
    plan = plan_deletions([group], {str(paths["jpeg"])})
    with Store(tmp_path / "c.db") as store:
        result = trash_files(store, plan, FolderTrash(str(tmp_path / "lib")))
    assert [(o.path, o.status) for o in result.outcomes] == [(str(paths["jpeg"]), "refused")]
    assert all(p.exists() for p in paths.values())

"""Camera RAW files (images.raw): decoded through LibRaw like any photo.

The RAW files are DNGs written at test time (tests/raw_files.py) from the
bundled CC0 samples: a Bayer mosaic LibRaw really demosaics, with or
without an embedded JPEG preview.
"""

from __future__ import annotations

import io
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgdedupe.core.errors import DecodeError
from imgdedupe.core.files.walk import walk
from imgdedupe.core.images import raw as raw_module
from imgdedupe.core.images.capture_time import capture_time_of
from imgdedupe.core.images.decode import decode_image, read_image_size
from imgdedupe.core.images.preprocess import INPUT_SIZE, decode_for_network
from imgdedupe.core.images.raw_header import RawHeader, read_header
from imgdedupe.core.records import ErrorReason, FileError, ImageFile
from tests.raw_files import cr3_outline, raf_outline, write_dng

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
TURNED = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_270,
          8: Image.Transpose.ROTATE_90}


def coffee(size: tuple[int, int] = (1536, 1024)) -> Image.Image:
    return Image.open(SAMPLES / "Holiday" / "IMG_0002.jpg").convert("RGB").resize(
        size, Image.Resampling.LANCZOS)


def cat() -> Image.Image:
    return Image.open(SAMPLES / "Phone" / "PXL_20230814_093012.jpg").convert("RGB")


def difference(decoded: Image.Image, expected: Image.Image) -> float:
    """Mean absolute difference (0-255) of two pictures at the decoded size."""
    a = np.asarray(decoded.convert("L"), dtype=np.float32)
    b = np.asarray(expected.convert("L").resize(decoded.size, Image.Resampling.BILINEAR),
                   dtype=np.float32)
    return float(np.abs(a - b).mean())


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
@pytest.mark.parametrize("preview", [1024, None, "linear"],
                         ids=["preview", "half-size", "linear-raw"])
def test_a_dng_decodes_upright_at_its_full_size(tmp_path, orientation, preview):
    picture = coffee()
    linear = preview == "linear"
    path = write_dng(tmp_path / "IMG_0002.DNG", picture, orientation=orientation,
                     preview_long_side=None if linear else preview, linear=linear)
    decoded = decode_image(str(path), target=180)
    turn = TURNED[orientation]
    upright = picture.transpose(turn) if turn is not None else picture
    assert (decoded.width, decoded.height) == upright.size  # the sensor's, not the preview's
    assert min(decoded.image.size) == 180
    assert decoded.format == "DNG"
    # The picture itself is upright: close to the source turned the same
    # way, far from it turned the other way.
    assert difference(decoded.image, upright) < 12
    wrong = upright.transpose(Image.Transpose.ROTATE_180)
    assert difference(decoded.image, wrong) > 2 * difference(decoded.image, upright)
    assert read_image_size(str(path)) == upright.size


def test_the_network_input_of_a_raw_is_that_of_its_jpeg(tmp_path):
    picture = coffee()
    raw = write_dng(tmp_path / "a.dng", picture, orientation=6)
    jpeg = tmp_path / "a.jpg"
    picture.transpose(Image.Transpose.ROTATE_270).save(jpeg, quality=92)
    from_raw, from_jpeg = decode_for_network(str(raw)), decode_for_network(str(jpeg))
    assert from_raw.array.shape == (INPUT_SIZE, INPUT_SIZE, 3)
    assert (from_raw.width, from_raw.height) == (from_jpeg.width, from_jpeg.height)
    assert np.abs(from_raw.array.astype(int) - from_jpeg.array).mean() < 8


@pytest.mark.parametrize(("preview", "target", "sensor", "used"), [
    (1024, 180, (1536, 1024), "preview"),  # a big preview: the camera's own rendering
    (800, 180, (1536, 1024), "raw"),  # under PREVIEW_MIN_LONG_SIDE
    ("letterboxed", 180, (1536, 1024), "raw"),  # 4:3 from a 3:2 sensor
    (1024, 1600, (3072, 2048), "raw"),  # the compare view: half-size has more pixels
    (1024, 1600, (1536, 1024), "preview"),  # ... unless it has fewer
])
def test_the_preview_is_used_when_big_enough_and_of_the_sensors_shape(
        tmp_path, preview, target, sensor, used):
    picture, other = coffee(sensor), cat()  # the preview shows another picture here
    if preview == "letterboxed":
        boxed = Image.new("RGB", (other.width, other.width * 3 // 4))
        boxed.paste(other, (0, (boxed.height - other.height) // 2))
        other, preview = boxed, 1200
    path = write_dng(tmp_path / "x.dng", picture, preview=other, preview_long_side=preview)
    decoded = decode_image(str(path), target=target)
    near, far = (other, picture) if used == "preview" else (picture, other)
    assert difference(decoded.image, near) < 12 < difference(decoded.image, far)
    assert (decoded.width, decoded.height) == sensor


def test_a_preview_stored_upright_is_not_turned_again(tmp_path):
    picture = coffee()
    upright = picture.transpose(Image.Transpose.ROTATE_270)
    path = write_dng(tmp_path / "x.dng", picture, orientation=6, preview=upright)
    decoded = decode_image(str(path), target=180)
    assert decoded.image.height > decoded.image.width
    assert difference(decoded.image, upright) < 12


def test_a_damaged_preview_gives_way_to_the_raw_data(tmp_path):
    picture = coffee()
    path = write_dng(tmp_path / "x.dng", picture, preview=cat(), preview_damaged=True,
                     orientation=8)
    decoded = decode_image(str(path), target=180)
    upright = picture.transpose(Image.Transpose.ROTATE_90)
    assert (decoded.width, decoded.height) == upright.size
    assert difference(decoded.image, upright) < 12


def _time(stamp: str) -> float | None:
    return capture_time_of(stamp)


@pytest.mark.parametrize(("options", "expected"), [
    # The RAW's own EXIF first, then its preview's, then LibRaw's (read
    # only where the raw data was unpacked anyway).
    ({"taken": "2024:07:14 10:21:33", "preview_taken": "2001:01:01 00:00:00"},
     "2024:07:14 10:21:33"),
    ({"preview_taken": "2023:03:04 05:06:07"}, "2023:03:04 05:06:07"),
    ({"taken": "2022:02:02 02:02:02", "taken_in_ifd0": True, "preview_long_side": None},
     "2022:02:02 02:02:02"),
    ({}, None),
])
def test_the_capture_time_comes_from_the_raw_or_its_preview(tmp_path, options, expected):
    path = write_dng(tmp_path / "x.dng", coffee(), **options)
    decoded = decode_image(str(path), target=180)
    assert decoded.taken == (None if expected is None else _time(expected))
    assert decode_for_network(str(path)).taken == decoded.taken


@pytest.mark.parametrize("fraction", [0.001, 0.02, 0.5, 0.999])
@pytest.mark.parametrize("preview", [1024, None], ids=["preview", "half-size"])
def test_a_raw_cut_short_is_reported_with_a_reason(tmp_path, fraction, preview):
    whole = write_dng(tmp_path / "whole.dng", coffee(), preview_long_side=preview)
    data = whole.read_bytes()
    cut = tmp_path / "cut.dng"
    cut.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(DecodeError) as caught:
        decode_image(str(cut))
    assert caught.value.reason == ErrorReason.TRUNCATED
    assert "cut short" in caught.value.detail


def test_libraw_reports_a_cut_its_header_reader_missed(tmp_path, monkeypatch):
    # A format whose header images.raw_header does not read: LibRaw finds
    # the raw data missing when it decodes it.
    whole = write_dng(tmp_path / "whole.dng", coffee(), preview_long_side=None)
    cut = tmp_path / "cut.dng"
    cut.write_bytes(whole.read_bytes()[:-1000])
    monkeypatch.setattr(raw_module, "read_header", lambda fh, size: RawHeader(None, None))
    with pytest.raises(DecodeError) as caught:
        decode_image(str(cut))
    assert caught.value.reason == ErrorReason.TRUNCATED
    assert "LibRaw" in caught.value.detail


@pytest.mark.parametrize(("content", "reason"), [
    (b"", ErrorReason.EMPTY),
    (b"not a raw file at all " * 50, ErrorReason.UNSUPPORTED),
    ("jpeg", ErrorReason.UNSUPPORTED),  # a JPEG named .CR2
])
def test_other_files_with_raw_names_are_reported(tmp_path, content, reason):
    path = tmp_path / "IMG_0001.CR2"
    if content == "jpeg":
        shutil.copy(SAMPLES / "Holiday" / "IMG_0002.jpg", path)
    else:
        path.write_bytes(content)
    with pytest.raises(DecodeError) as caught:
        decode_image(str(path))
    assert caught.value.reason == reason
    assert caught.value.detail
    assert read_image_size(str(path)) is None


def test_without_rawpy_a_raw_is_reported_unsupported(tmp_path, monkeypatch):
    path = write_dng(tmp_path / "x.dng", coffee())

    def missing() -> None:
        raise DecodeError(ErrorReason.UNSUPPORTED, "this installation cannot read RAW files")

    monkeypatch.setattr(raw_module, "_module", missing)
    with pytest.raises(DecodeError) as caught:
        decode_image(str(path))
    assert caught.value.reason == ErrorReason.UNSUPPORTED


def test_the_walk_finds_raw_files_in_any_case(tmp_path):
    names = ["IMG_1.CR2", "IMG_2.cr3", "DSC_3.NEF", "DSC_4.ARW", "x.dng", "DSCF5.RAF",
             "P6.ORF", "P7.RW2", "notes.xmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    found = {Path(f.path).name for f in walk([tmp_path]) if isinstance(f, ImageFile)}
    assert found == set(names) - {"notes.xmp"}


# -- the header reader on containers the DNG writer does not make ---------

def test_the_header_of_a_cr3_gives_its_time_and_its_cut():
    data = cr3_outline(b"2024:05:06 07:08:09\0")
    whole = read_header(io.BytesIO(data), len(data))
    assert whole == RawHeader(None, _time("2024:05:06 07:08:09") + 0.25)
    cut = read_header(io.BytesIO(data[:-10]), len(data) - 10)
    assert cut.cut is not None and f"{len(data):,}" in cut.cut


def test_the_header_of_a_raf_gives_its_cut():
    data = raf_outline()
    assert read_header(io.BytesIO(data), len(data)) == RawHeader(None, None)
    assert read_header(io.BytesIO(data[:5000]), 5000).cut is not None


def test_the_header_reader_says_nothing_of_what_it_cannot_read():
    for data in (b"", b"\xff\xd8\xff\xe1junk", b"II*\0\xff\xff\xff\x7f", b"II*\0" + b"\0" * 12):
        assert read_header(io.BytesIO(data), len(data)).taken is None
    # An IFD beyond the end of the file: cut short.
    assert read_header(io.BytesIO(b"II*\0\0\1\0\0"), 8).cut is not None


def _scan_error(errors: tuple[FileError, ...], path: Path) -> FileError:
    return next(e for e in errors if e.path == str(path))


# -- in a scan ------------------------------------------------------------

@pytest.fixture(scope="module")
def lite0():
    from imgdedupe.core.model.loading import load_backbone

    backbone, _ = load_backbone("efficientnet-lite0", device="cpu")
    return backbone


def _library(root: Path) -> dict[str, Path]:
    """Two RAW photos in Camera/ (one with a preview, one without: its
    pixels come from LibRaw's demosaicing), each exported as a smaller
    JPEG into Export/; a RAW cut short; an unrelated photo."""
    (root / "Camera").mkdir(parents=True)
    (root / "Export").mkdir()
    rocket = Image.open(SAMPLES / "Holiday" / "IMG_0001.jpg").convert("RGB").resize((1280, 854))
    paths = {
        "coffee_raw": write_dng(root / "Camera" / "IMG_0002.DNG", coffee(),
                                taken="2024:07:14 10:21:33"),
        "rocket_raw": write_dng(root / "Camera" / "IMG_0001.dng", rocket, orientation=6,
                                preview_long_side=None),
        "coffee_jpg": root / "Export" / "IMG_0002.jpg",
        "rocket_jpg": root / "Export" / "IMG_0001.jpg",
        "cut_raw": root / "Camera" / "IMG_0009.DNG",
        "cat": root / "Camera" / "cat.jpg",
    }
    coffee().resize((1200, 800), Image.Resampling.LANCZOS).save(paths["coffee_jpg"], quality=85)
    rocket.transpose(Image.Transpose.ROTATE_270).resize((600, 900)).save(paths["rocket_jpg"],
                                                                         quality=85)
    whole = write_dng(root / "whole.tmp", coffee((1200, 800)))
    paths["cut_raw"].write_bytes(whole.read_bytes()[:len(whole.read_bytes()) // 2])
    whole.unlink()
    cat().save(paths["cat"], quality=92)
    return paths


@pytest.mark.slow
def test_a_raw_is_a_near_duplicate_of_its_exported_jpeg_in_another_folder(tmp_path, lite0):
    from imgdedupe.core.scan.config import ScanConfig
    from imgdedupe.core.scan.events import ScanResult
    from imgdedupe.core.scan.pipeline import run_scan

    p = {k: str(v) for k, v in _library(tmp_path / "lib").items()}
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"))
    *_, result = run_scan(config, backbone=lite0)
    assert isinstance(result, ScanResult)
    groups = {frozenset(m.path for m in g.members): g for g in result.groups}
    coffee_group = groups[frozenset({p["coffee_raw"], p["coffee_jpg"]})]
    rocket_group = groups[frozenset({p["rocket_raw"], p["rocket_jpg"]})]
    assert coffee_group.tier == rocket_group.tier == "near_duplicate"
    assert "keypoints agree" in coffee_group.reason
    assert len(result.groups) == 2  # the cat is alone
    # A RAW member has the sensor's size, upright.
    sizes = {m.path: (m.width, m.height) for g in result.groups for m in g.members}
    assert sizes[p["coffee_raw"]] == (1536, 1024)
    assert sizes[p["rocket_raw"]] == (854, 1280)
    # The cut RAW is reported with its reason, and the scan went on.
    error = _scan_error(result.errors, Path(p["cut_raw"]))
    assert error.reason == ErrorReason.TRUNCATED and "cut short" in error.detail
    assert result.stats.embedded == 5
    # Cached like any photo: a rescan decodes nothing and finds the same.
    *_, again = run_scan(config, backbone=lite0)
    assert again.stats.embedded == 0 and again.stats.from_cache >= 5
    assert [{m.path for m in g.members} for g in again.groups] == [
        {m.path for m in g.members} for g in result.groups]
    # A byte copy of a RAW is an exact copy, found by its hash.
    backup = tmp_path / "lib" / "Backup"
    backup.mkdir()
    shutil.copy2(p["coffee_raw"], backup / "IMG_0002.DNG")
    *_, third = run_scan(config, backbone=lite0)
    exact = [g for g in third.groups if str(backup / "IMG_0002.DNG") in
             {m.path for m in g.members}]
    assert exact and any(m.exact for m in exact[0].members if m.path.endswith(".DNG"))


def test_a_costly_half_size_decode_is_left_to_the_pools_own_process(tmp_path, monkeypatch):
    from imgdedupe.core.images import decode as decode_module
    from imgdedupe.core.images.decode import DeferredDecode, defer_slow_decodes

    bare = write_dng(tmp_path / "bare.dng", coffee(), preview_long_side=None)
    with_preview = write_dng(tmp_path / "preview.dng", coffee())
    # Between a 1024 x 683 preview's work (1/8 of its pixels: draft) and
    # the 1536 x 1024 half-size decode's (every pixel of the sensor).
    monkeypatch.setattr(decode_module, "QUICK_MAX_WORK", 200_000)
    outcome: dict[str, object] = {}

    def in_a_pool_worker() -> None:
        defer_slow_decodes()
        outcome["preview"] = decode_image(str(with_preview)).width
        try:
            decode_image(str(bare))
        except DeferredDecode as exc:
            outcome["bare"] = exc

    worker = threading.Thread(target=in_a_pool_worker)
    worker.start()
    worker.join()
    assert outcome["preview"] == 1536
    assert isinstance(outcome["bare"], DeferredDecode)
    assert decode_image(str(bare)).width == 1536  # where the pool decodes it
    monkeypatch.setattr(decode_module, "MAX_DECODE_BYTES", 5_000_000)
    with pytest.raises(DecodeError) as caught:
        decode_image(str(bare))
    assert caught.value.reason == ErrorReason.TOO_LARGE and "RAW picture" in caught.value.detail
    with pytest.raises(DecodeError) as caught:
        decode_image(str(with_preview), max_pixels=1_000_000)
    assert caught.value.reason == ErrorReason.TOO_LARGE


def test_the_decode_pool_decodes_raw_files_in_threads_and_processes_alike(tmp_path):
    from tests.core.test_decode_pool import decoded_by_threads_and_processes

    paths = [str(write_dng(tmp_path / "a.dng", coffee(), orientation=8)),
             str(write_dng(tmp_path / "b.dng", coffee(), preview_long_side=None))]
    cut = tmp_path / "c.ARW"
    cut.write_bytes(Path(paths[1]).read_bytes()[:50_000])
    paths.append(str(cut))
    results = {kind: [r.reason if isinstance(r, DecodeError) else (r.width, r.height, r.phash)
                      for r in found]
               for kind, found in decoded_by_threads_and_processes(paths).items()}
    assert results[False] == results[True]
    assert results[True][0][:2] == (1024, 1536) and results[True][1][:2] == (1536, 1024)
    assert results[True][2] == ErrorReason.TRUNCATED


@pytest.mark.slow
def test_a_raw_with_its_own_jpeg_is_one_photo_and_a_near_duplicate_of_its_export(
        tmp_path, lite0):
    """The issue's case with real RAW pixels: Camera/ holds IMG_0002.DNG and
    the camera's IMG_0002.JPG beside it (one photo: the RAW is the JPEG's
    companion, never offered as its duplicate), Export/ a resized copy.
    The one group is the camera JPEG (carrying its RAW) and the export; the
    suggested keeper is the camera's pair, so the RAW is never suggested
    for the trash."""
    from imgdedupe.core.scan.config import ScanConfig
    from imgdedupe.core.scan.pipeline import run_scan

    root = tmp_path / "lib"
    (root / "Camera").mkdir(parents=True)
    (root / "Export").mkdir()
    raw = write_dng(root / "Camera" / "IMG_0002.DNG", coffee(), taken="2024:07:14 10:21:33")
    camera_jpeg = root / "Camera" / "IMG_0002.JPG"
    coffee().save(camera_jpeg, quality=92)
    export = root / "Export" / "IMG_0002_web.jpg"
    coffee().resize((1200, 800), Image.Resampling.LANCZOS).save(export, quality=85)
    *_, result = run_scan(ScanConfig(roots=(str(root),), db_path=str(tmp_path / "c.db")),
                          backbone=lite0)
    assert [{m.path for m in g.members} for g in result.groups] == [
        {str(camera_jpeg), str(export)}]
    [group] = result.groups
    assert group.tier == "near_duplicate"
    member = next(m for m in group.members if m.path == str(camera_jpeg))
    assert [(c.path, c.kind) for c in member.companions] == [(str(raw), "raw")]
    assert group.keeper == str(camera_jpeg)
    assert not any(str(raw) == m.path for g in result.groups for m in g.members)


def test_a_header_pointing_absurdly_far_is_damage_not_a_cut(tmp_path):
    """Random bytes after a TIFF magic were reported as "cut short ... runs
    to byte 1,311,176,909": a header that points past any plausible end is
    damaged, and said so."""
    import struct

    far = b"II*\0" + struct.pack("<I", 1_311_176_909) + bytes(range(256)) * 40
    header = read_header(io.BytesIO(far), len(far))
    assert header.damaged and header.cut.startswith("the file is damaged: its header points")
    near = b"II*\0" + struct.pack("<I", len(far) + 10) + bytes(range(256)) * 40
    cut = read_header(io.BytesIO(near), len(near))
    assert not cut.damaged and cut.cut.startswith("the file is cut short")
    path = tmp_path / "corrupt.DNG"
    path.write_bytes(far)
    with pytest.raises(DecodeError) as raised:
        decode_image(str(path))
    assert raised.value.reason == ErrorReason.DECODE_FAILED

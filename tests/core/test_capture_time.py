"""Capture times from EXIF: what tells a burst from a copy."""

from __future__ import annotations

from PIL import Image

from imgdedupe.core.images.capture_time import (
    DATE_TIME_ORIGINAL,
    EXIF_IFD,
    SUBSEC_TIME_ORIGINAL,
    capture_time,
)
from imgdedupe.core.images.preprocess import decode_for_network
from tests.conftest import make_photo


def _exif(stamp: str | None, subsec: str | None = None) -> Image.Exif:
    exif = Image.Exif()
    ifd = exif.get_ifd(EXIF_IFD)
    if stamp is not None:
        ifd[DATE_TIME_ORIGINAL] = stamp
    if subsec is not None:
        ifd[SUBSEC_TIME_ORIGINAL] = subsec
    return exif


def test_reads_the_second_and_its_fraction(tmp_path):
    path = tmp_path / "burst_1.jpg"
    make_photo(None, 1).save(path, exif=_exif("2024:07:14 10:21:33", "08"))
    taken = decode_for_network(str(path)).taken
    assert taken is not None
    assert abs(taken % 60 - 33.08) < 1e-6
    later = tmp_path / "burst_2.jpg"
    make_photo(None, 1).save(later, exif=_exif("2024:07:14 10:21:33", "58"))
    assert abs(decode_for_network(str(later)).taken - taken - 0.5) < 1e-6


def test_missing_or_broken_times_are_none():
    assert capture_time(_exif(None)) is None
    assert capture_time(_exif("0000:00:00 00:00:00")) is None
    assert capture_time(_exif("not a date")) is None
    assert capture_time(_exif("2024:07:14 10:21:33", "x")) is not None  # junk fraction: 0
    assert capture_time(object()) is None


def test_a_photo_without_exif_has_no_time(tmp_path):
    path = tmp_path / "plain.png"
    make_photo(path, 2)
    assert decode_for_network(str(path)).taken is None

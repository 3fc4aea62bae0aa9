"""Hostile image files: every input either decodes or raises DecodeError,
quickly. Hypothesis mutates real small JPEG, PNG, WebP, GIF, BMP, TIFF, MPO
and HEIC files here (a few hundred inputs; bench/fuzz_decode.py runs
10,000+), then a file of every format Pillow can write and crafted hostile
ones (PostScript, BMP RLE, huge declared sizes, many JPEG scans); crafted
headers declare huge pictures."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imgdedupe.core.errors import DecodeError
from imgdedupe.core.images.decode import decode_image
from imgdedupe.core.records import ErrorReason

from .fuzzing import (
    READ_FORMATS,
    TIME_LIMIT_S,
    check,
    every_format_files,
    every_format_seeds,
    hostile_seeds,
    jpeg_declaring,
    mutations,
    png_declaring,
    seed_files,
)

pytestmark = pytest.mark.reliability

SEEDS = seed_files()
OTHER_SEEDS = {**every_format_files(), **hostile_seeds()}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("fuzz"))


def test_every_seed_decodes(folder):
    formats = {name.rsplit(".", 1)[1] for name in SEEDS}
    assert {"jpg", "png", "webp", "gif", "bmp", "tif"} <= formats
    try:
        import pillow_heif  # noqa: F401

        assert "heic" in formats  # pillow_heif here can write HEIC, so it is fuzzed too
    except ImportError:
        pass
    for name, data in SEEDS.items():
        for network in (False, True):
            assert check(folder, name, data, network).decoded, name


@settings(max_examples=300, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mutations(SEEDS), network=st.booleans())
def test_mutated_files_decode_or_raise_decode_error(folder, case, network):
    name, data = case
    outcome = check(folder, name, data, network)  # anything but DecodeError fails here
    assert outcome.seconds < TIME_LIMIT_S, (name, outcome)


@settings(max_examples=150, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mutations(OTHER_SEEDS))
def test_mutated_files_of_every_format_decode_or_raise_decode_error(folder, case):
    """Seeds of all the formats Pillow can write (not only the ones we
    read: a hostile file can be any of them) and crafted hostile files."""
    name, data = case
    outcome = check(folder, name, data, network=True)
    assert outcome.seconds < TIME_LIMIT_S, (name, outcome)


def test_only_the_formats_we_read_are_opened(folder):
    """A file of any other format Pillow knows, named .jpg, is reported,
    never decoded: each format's plugin is code we never meant to run on
    a stranger's file (EPS runs Ghostscript)."""
    seeds = every_format_seeds()
    files = every_format_files()
    assert {"EPS", "ICO", "PCX", "TGA", "JPEG2000", "PDF"} <= set(seeds)  # this Pillow writes them
    for fmt, name in seeds.items():
        outcome = check(folder, name, files[name], network=False)
        if fmt in READ_FORMATS:
            assert outcome.decoded, fmt
        else:
            assert outcome.reason in (ErrorReason.UNSUPPORTED, ErrorReason.NOT_AN_IMAGE), fmt


@pytest.mark.parametrize(("name", "data", "reason"), [
    # 176 Mpx progressive: under the general limit, but libjpeg would hold
    # ~530 MB of coefficients; refused from the header.
    ("progressive.jpg", jpeg_declaring(16000, 11000, True), ErrorReason.TOO_LARGE),
    ("baseline.jpg", jpeg_declaring(65500, 65500, False), ErrorReason.TOO_LARGE),
    ("bomb.png", png_declaring(50_000, 50_000, 2), ErrorReason.TOO_LARGE),
    # 169 Mpx of grey: under the general limit, over the 512 MB a picture
    # decoded at full size may take (8 bytes a pixel budgeted).
    ("over.png", png_declaring(13_000, 13_000, 0), ErrorReason.TOO_LARGE),
    # Just under it: allocated, then the data runs out at once.
    ("under.png", png_declaring(7_900, 7_900, 0), ErrorReason.TRUNCATED),
])
def test_huge_declared_sizes_end_quickly(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    started = time.perf_counter()
    with pytest.raises(DecodeError) as caught:
        decode_image(str(path))
    assert caught.value.reason == reason
    assert time.perf_counter() - started < 2.0


def test_a_big_baseline_jpeg_still_decodes_at_a_reduced_scale(tmp_path):
    """The progressive limit must not cost a real large baseline photo:
    draft() decodes it at 1/8 without holding the whole picture."""
    path = tmp_path / "big.jpg"
    Image.new("RGB", (12_000, 8_000), (30, 60, 90)).save(path, quality=50)
    started = time.perf_counter()
    decoded = decode_image(str(path))
    assert (decoded.width, decoded.height) == (12_000, 8_000)
    assert time.perf_counter() - started < 5.0

"""Hostile image files: every input either decodes or raises DecodeError,
quickly. Hypothesis mutates real small JPEG, PNG, WebP and HEIC files here
(a few hundred inputs; bench/fuzz_decode.py runs 10,000+), and crafted
headers declare huge pictures."""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imgdedupe.core.errors import DecodeError
from imgdedupe.core.images.decode import decode_image
from imgdedupe.core.records import ErrorReason

from .fuzzing import TIME_LIMIT_S, check, mutations, seed_files

pytestmark = pytest.mark.reliability

SEEDS = seed_files()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("fuzz"))


def test_every_seed_decodes(folder):
    formats = {name.rsplit(".", 1)[1] for name in SEEDS}
    assert {"jpg", "png", "webp"} <= formats
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


def _jpeg_declaring(width: int, height: int, progressive: bool) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 140, 200)).save(buffer, "JPEG", progressive=progressive)
    data = buffer.getvalue()
    at = 2
    while data[at + 1] not in (0xC0, 0xC2):  # walk the segments to the frame header
        at += 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
    return data[:at + 5] + struct.pack(">HH", height, width) + data[at + 9:]


def _png_declaring(width: int, height: int, colour_type: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b""))


@pytest.mark.parametrize(("name", "data", "reason"), [
    # 176 Mpx progressive: under the general limit, but libjpeg would hold
    # ~530 MB of coefficients; refused from the header.
    ("progressive.jpg", _jpeg_declaring(16000, 11000, True), ErrorReason.TOO_LARGE),
    ("baseline.jpg", _jpeg_declaring(65500, 65500, False), ErrorReason.TOO_LARGE),
    ("bomb.png", _png_declaring(50_000, 50_000, 2), ErrorReason.TOO_LARGE),
    # Just under the limit: allocated, then the data runs out at once.
    ("under.png", _png_declaring(13_000, 13_000, 0), ErrorReason.TRUNCATED),
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

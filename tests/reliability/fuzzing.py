"""Byte-level mutations of small real image files, for test_hostile_images.py
and bench/fuzz_decode.py (which runs many more of them), and the crafted
hostile files of test_decode_containment.py. Every file is made here."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from dataclasses import dataclass

from hypothesis import strategies as st
from PIL import Image

from imgdedupe.core.errors import DecodeError
from imgdedupe.core.images.decode import decode_image
from imgdedupe.core.images.preprocess import decode_for_network

TIME_LIMIT_S = 5.0  # per input; the slowest legitimate one takes ~0.4 s here


def _picture(seed: int, size: tuple[int, int]) -> Image.Image:
    import numpy as np

    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    return Image.fromarray(grid, "RGB").resize(size, Image.Resampling.BICUBIC)


def seed_files() -> dict[str, bytes]:
    """Name (whose extension the decoder sees) -> bytes of a small valid file."""
    picture = _picture(1, (48, 32))
    out: dict[str, bytes] = {}

    def save(name: str, image: Image.Image, fmt: str, **params: object) -> None:
        buffer = io.BytesIO()
        image.save(buffer, fmt, **params)
        out[name] = buffer.getvalue()

    exif = Image.Exif()
    exif[0x0112] = 6
    save("baseline.jpg", picture, "JPEG", quality=80, exif=exif.tobytes())
    save("progressive.jpg", picture, "JPEG", quality=80, progressive=True)
    save("rgb.png", picture, "PNG")
    save("palette.png", picture.convert("P"), "PNG", transparency=0)
    save("lossy.webp", picture, "WEBP", quality=70)
    save("lossless.webp", picture.convert("RGBA"), "WEBP", lossless=True)
    save("palette.gif", picture.convert("P"), "GIF")
    save("rgb.bmp", picture, "BMP")
    save("lzw.tif", picture, "TIFF", compression="tiff_lzw")
    save("two.jpg", picture, "MPO", save_all=True, append_images=[picture.rotate(90)])
    out["rle8.bmp"] = rle_bmp(48, 32)
    if _register_heif():
        try:
            save("photo.heic", picture, "HEIF", quality=60)
        except Exception:  # noqa: BLE001 - HEIC only where pillow_heif can write it
            pass
    return out


def _register_heif() -> bool:
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        return True
    except Exception:  # noqa: BLE001 - no pillow_heif, or a broken libheif
        return False


# Pillow's names of the formats decode_image reads (MPO: a JPEG of two
# pictures, opened by JPEG's opener; HEIF from pillow_heif).
READ_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF"})
_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif",
               "BMP": "bmp", "TIFF": "tif", "HEIF": "heic", "AVIF": "avif"}


def every_format_seeds() -> dict[str, str]:
    """Format -> the name of its seed in every_format_files: a small picture
    in each format this Pillow can write (its first mode that saves), the
    ones we read under their extension, every other one named .jpg, as a
    hostile or confused user would."""
    return {fmt: name for fmt, (name, _) in _every_format().items()}


def every_format_files() -> dict[str, bytes]:
    """Name -> bytes of every_format_seeds' files."""
    return dict(_every_format().values())


_every_format_cache: dict[str, tuple[str, bytes]] = {}


def _every_format() -> dict[str, tuple[str, bytes]]:
    if not _every_format_cache:
        _register_heif()
        Image.init()
        picture = _picture(2, (48, 32))
        for fmt in sorted(Image.SAVE):
            for mode in ("RGB", "L", "P", "1"):
                buffer = io.BytesIO()
                try:
                    picture.convert(mode).save(buffer, fmt)
                except Exception:  # noqa: BLE001 - a mode or a stub this format lacks
                    continue
                name = f"{fmt.lower()}.{_EXTENSIONS.get(fmt, 'jpg')}"
                _every_format_cache[fmt] = (name, buffer.getvalue())
                break
    return _every_format_cache


def rle_bmp(width: int, height: int, rows: int | None = None) -> bytes:
    """An 8-bit run-length-encoded BMP (which Pillow decodes in Python).
    ``rows`` None: each row a run of one grey, a real picture; else that
    many rows of a 1-pixel run ended early, the rest left to the decoder:
    with a wide ``width``, 2 KB that cost seconds and 0.5 GB."""
    palette = b"".join(struct.pack("<BBBB", i, i, i, 0) for i in range(256))
    if rows is None:
        runs = b"".join(_rle_row(width, (y * 5) % 256) for y in range(height))
    else:
        runs = b"\x01\x80\x00\x00" * rows
    data = runs + b"\x00\x01"  # end of bitmap
    offset = 14 + 40 + len(palette)
    header = struct.pack("<2sIHHI", b"BM", offset + len(data), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(data), 2835, 2835, 256, 0)
    return header + info + palette + data


def _rle_row(width: int, value: int) -> bytes:
    runs = b"".join(bytes((min(255, width - x), value)) for x in range(0, width, 255))
    return runs + b"\x00\x00"  # end of line


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int, colour_type: int) -> bytes:
    """A PNG whose header says width x height, with 4 KB of pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + _png_chunk(b"IEND", b""))


def black_rgba_png(side: int) -> bytes:
    """A complete, valid side x side black RGBA PNG, made in a fraction of
    a second: 100 rows are deflated once, after a full flush (so they refer
    to nothing before them) and that block repeated. 13000: 657 KB that
    decode to 676 MB of pixels."""
    row = b"\x00" * (side * 4 + 1)
    block_rows = 100
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(row * block_rows) + compressor.flush(zlib.Z_FULL_FLUSH)
    full, rest = divmod(side, block_rows)
    tail_compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = tail_compressor.compress(row * rest) + tail_compressor.flush()
    checksum = 1
    for _ in range(full):
        checksum = zlib.adler32(row * block_rows, checksum)
    checksum = zlib.adler32(row * rest, checksum)
    idat = b"\x78\xda" + block * full + tail + struct.pack(">I", checksum)
    header = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def jpeg_declaring(width: int, height: int, progressive: bool) -> bytes:
    """A small JPEG whose frame header is rewritten to width x height."""
    data = _jpeg(Image.new("RGB", (64, 48), (90, 140, 200)), progressive)
    at = 2
    while data[at + 1] not in (0xC0, 0xC2):  # walk the segments to the frame header
        at += 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
    return data[:at + 5] + struct.pack(">HH", height, width) + data[at + 9:]


def progressive_jpeg(size: tuple[int, int], extra_scans: int) -> bytes:
    """A flat progressive JPEG whose last scan (a refinement scan that
    libjpeg accepts again and again) is repeated ``extra_scans`` times:
    each repeat costs a pass over the whole picture for a few bytes."""
    data = _jpeg(Image.new("RGB", size, (120, 130, 140)), progressive=True)
    start = data.rindex(b"\xff\xda")
    end = data.rindex(b"\xff\xd9")
    return data[:end] + data[start:end] * extra_scans + data[end:]


def _jpeg(image: Image.Image, progressive: bool) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, progressive=progressive)
    return buffer.getvalue()


# A 60-byte PostScript program that never ends, as found named IMG_0042.jpg:
# Pillow hands any file that starts like this to Ghostscript.
POSTSCRIPT = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 200 150\n{ } loop\n"


def hostile_seeds() -> dict[str, bytes]:
    """Crafted files for the mutations: PostScript, a BMP RLE bomb, huge
    declared sizes, a progressive JPEG of 200 scans."""
    return {
        "IMG_0042.jpg": POSTSCRIPT,
        "bomb_rle.jpg": rle_bmp(700_000, 250, rows=250),
        "huge.png": png_declaring(20_000, 20_000, 6),
        "huge_progressive.jpg": jpeg_declaring(12_000, 9_000, True),
        "scans.jpg": progressive_jpeg((64, 48), 200),
    }


_INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00", b"\xff\xff",
                b"\x7f\xff\xff\xff", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00")


@st.composite
def mutations(draw: st.DrawFn, seeds: dict[str, bytes]) -> tuple[str, bytes]:
    """A seed file with 1-6 mutations: bytes flipped or overwritten with
    boundary values (sizes, lengths), slices cut, inserted or repeated,
    the tail cut off."""
    name = draw(st.sampled_from(sorted(seeds)))
    data = bytearray(seeds[name])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "repeat", "truncate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            value = draw(st.sampled_from(_INTERESTING))
            data[at:at + len(value)] = value
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 256))]
        else:
            del data[at:]
    return name, bytes(data)


@dataclass
class Outcome:
    decoded: bool
    reason: str | None  # DecodeError.reason
    seconds: float


def check(folder: str, name: str, data: bytes, network: bool) -> Outcome:
    """Decode ``data`` saved as ``name``: either an image or a DecodeError;
    any other exception propagates. ``network``: decode_for_network."""
    path = os.path.join(folder, name)
    with open(path, "wb") as handle:
        handle.write(data)
    started = time.perf_counter()
    try:
        if network:
            array, width, height, _ = decode_for_network(path)
            assert array.shape == (224, 224, 3) and width > 0 and height > 0
        else:
            image = decode_image(path).image
            assert image.mode == "RGB" and image.width > 0 and image.height > 0
    except DecodeError as exc:
        assert exc.reason and exc.detail
        return Outcome(False, exc.reason, time.perf_counter() - started)
    return Outcome(True, None, time.perf_counter() - started)

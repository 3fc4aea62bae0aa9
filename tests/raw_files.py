"""Camera RAW files for the tests, made at test time: DNGs LibRaw decodes,
and the outlines of a CR3 and a RAF for the header reader.

No RAW sample with a clear CC0 or public-domain licence ships in any
package this project can install (rawpy's wheel carries no test data), so
the tests make their own: a Bayer (CFA) DNG, as a camera writes it, whose
mosaic LibRaw demosaics, with an optional embedded JPEG preview in IFD0 (as
Adobe's converter and most cameras lay it out: the preview first, the raw
data in a SubIFD), the Orientation tag, and the capture time LibRaw reads
from the EXIF IFD. The mosaic is made from a real picture (linearised
sRGB), so a half-size decode looks like that picture and verification
finds its keypoints. The TIFF structure is written here (a few dozen
lines): tifffile cannot store an already-compressed JPEG strip without
the imagecodecs package, and the layout is then ours to choose: the
metadata first and the raw data last, as in camera files, so that cutting
a file short cuts its raw data.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# XYZ (D65) -> linear sRGB: with it as ColorMatrix1 the "camera" sees
# linear sRGB, and LibRaw's output is the picture we started from.
_XYZ_TO_SRGB = ((3.2406, -1.5372, -0.4986),
                (-0.9689, 1.8758, 0.0415),
                (0.0557, -0.2040, 1.0570))
_WHITE = 4095  # a 12-bit sensor, like most
_BLACK = 0
ORIENTATIONS = {1: 1, 3: 3, 6: 6, 8: 8}  # EXIF values the tests use


def _linear(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 -> linear light in 0..1."""
    c = rgb.astype(np.float32) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _mosaic(picture: Image.Image) -> np.ndarray:
    """RGGB Bayer samples (uint16, 12-bit) of an even-sized RGB picture."""
    lin = _linear(np.asarray(picture.convert("RGB")))
    height, width = lin.shape[:2]
    cfa = np.empty((height, width), dtype=np.float32)
    cfa[0::2, 0::2] = lin[0::2, 0::2, 0]  # R
    cfa[0::2, 1::2] = lin[0::2, 1::2, 1]  # G
    cfa[1::2, 0::2] = lin[1::2, 0::2, 1]  # G
    cfa[1::2, 1::2] = lin[1::2, 1::2, 2]  # B
    return np.round(_BLACK + cfa * (_WHITE - _BLACK)).astype(np.uint16)


def _preview_jpeg(picture: Image.Image, long_side: int, taken: str | None) -> bytes:
    """A camera's preview: EXIF first (no JFIF segment), as cameras write
    it, so that LibRaw hands it on as it is."""
    preview = picture.convert("RGB")
    scale = long_side / max(preview.size)
    preview = preview.resize((round(preview.width * scale), round(preview.height * scale)),
                             Image.Resampling.LANCZOS)
    exif = Image.Exif()
    exif[0x010F] = "imgdedupe"  # Make: an EXIF segment even without a time
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
    out = io.BytesIO()
    preview.save(out, format="JPEG", quality=90, exif=exif)
    data = out.getvalue()
    if data[2:4] == b"\xff\xe0":  # drop Pillow's JFIF APP0
        data = data[:2] + data[4 + int.from_bytes(data[4:6], "big"):]
    return data


def _rational(value: float) -> tuple[int, int]:
    return round(value * 10000), 10000


# TIFF field types: (type code, struct format of one value).
_TYPES = {"B": (1, "B"), "A": (2, "s"), "H": (3, "H"), "I": (4, "I"),
          "R": (5, "II"), "SR": (10, "ii")}
Entries = dict[int, tuple[str, object]]


def _encode(kind: str, value: object) -> tuple[int, int, bytes]:
    """(type code, count, bytes) of one IFD entry's value."""
    code, fmt = _TYPES[kind]
    if kind == "A":
        data = str(value).encode("ascii") + b"\0"
        return code, len(data), data
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if kind in ("R", "SR"):
        pairs = [v if isinstance(v, tuple) else _rational(float(v)) for v in values]
        return code, len(pairs), b"".join(struct.pack("<" + fmt, *p) for p in pairs)
    return code, len(values), struct.pack(f"<{len(values)}{fmt}", *values)


class _Layout:
    """The small part of the file (header, IFDs, their values) at the
    start; the big strips after it at offsets known in advance."""

    def __init__(self, data_base: int) -> None:
        self.buf = bytearray(b"II*\0\0\0\0\0")
        self.data_base = data_base

    def _put(self, data: bytes) -> int:
        if len(self.buf) % 2:
            self.buf += b"\0"
        offset = len(self.buf)
        self.buf += data
        return offset

    def ifd(self, entries: Entries) -> int:
        encoded = []
        for tag in sorted(entries):
            code, count, data = _encode(*entries[tag])
            field = data.ljust(4, b"\0") if len(data) <= 4 else struct.pack("<I", self._put(data))
            encoded.append(struct.pack("<HHI", tag, code, count) + field)
        return self._put(struct.pack("<H", len(encoded)) + b"".join(encoded) + b"\0\0\0\0")


def _build(strips: list[bytes], make_ifds) -> bytes:  # noqa: ANN001
    """The file: ``make_ifds(layout, strip_offsets)`` writes the IFDs and
    returns IFD0's offset; the strips follow the metadata."""
    probe = _Layout(0)
    make_ifds(probe, [0] * len(strips))
    base = len(probe.buf) + 16
    offsets, position = [], base
    for strip in strips:
        offsets.append(position)
        position += len(strip) + len(strip) % 2
    layout = _Layout(base)
    first = make_ifds(layout, offsets)
    layout.buf[4:8] = struct.pack("<I", first)
    head = bytes(layout.buf).ljust(base, b"\0")
    return head + b"".join(strip + b"\0" * (len(strip) % 2) for strip in strips)


def write_dng(path: str | os.PathLike[str], picture: Image.Image, **options: Any) -> Path:
    """Write make_dng(picture, **options) to ``path``."""
    Path(path).write_bytes(make_dng(picture, **options))
    return Path(path)


def make_dng(picture: Image.Image, *,
             orientation: int = 1, preview_long_side: int | None = 1024,
             preview: Image.Image | None = None, preview_taken: str | None = None,
             taken: str | None = None, taken_in_ifd0: bool = False,
             linear: bool = False, preview_damaged: bool = False) -> bytes:
    """``picture`` (as the sensor saw it, before ``orientation``) as a CFA
    DNG, or with ``linear`` a LinearRaw one (demosaiced, as converters
    write). ``preview_long_side``: an embedded JPEG preview that long
    (None: none, as in some DNGs) of ``preview`` (default: ``picture``).
    ``preview_taken`` goes into the preview's own EXIF, ``taken`` (both
    "YYYY:MM:DD HH:MM:SS") into the DNG's EXIF DateTimeOriginal, or with
    ``taken_in_ifd0`` into IFD0's DateTime, which LibRaw reads and the
    header reader (images.raw_header) does not. ``preview_damaged``: the
    preview's JPEG ends halfway (the DNG's structure is whole)."""
    width, height = picture.size
    picture = picture.crop((0, 0, width - width % 2, height - height % 2))
    width, height = picture.size
    if linear:  # LinearRaw: three samples a pixel, demosaiced already
        samples = np.round(_linear(np.asarray(picture)) * _WHITE).astype("<u2")
        mosaic = samples.tobytes()
    else:
        mosaic = _mosaic(picture).astype("<u2").tobytes()
    jpeg = None if preview_long_side is None else _preview_jpeg(
        preview or picture, preview_long_side, preview_taken)
    if jpeg is not None and preview_damaged:  # its second half lost, the file whole
        jpeg = jpeg[:len(jpeg) // 2]
    camera: Entries = {
        271: ("A", "imgdedupe"),  # Make
        272: ("A", "Test DNG"),  # Model
        274: ("H", orientation),
        50706: ("B", (1, 4, 0, 0)),  # DNGVersion
        50707: ("B", (1, 1, 0, 0)),  # DNGBackwardVersion
        50708: ("A", "imgdedupe Test DNG"),  # UniqueCameraModel
        50721: ("SR", [v for row in _XYZ_TO_SRGB for v in row]),  # ColorMatrix1
        50778: ("H", 21),  # CalibrationIlluminant1: D65
        50728: ("R", (1, 1, 1)),  # AsShotNeutral
    }

    def raw_ifd(subfile: int, offset: int) -> Entries:
        layout = {254: ("I", subfile), 256: ("I", width), 257: ("I", height),
                  259: ("H", 1), 273: ("I", offset), 278: ("I", height),
                  279: ("I", len(mosaic)), 284: ("H", 1),
                  50714: ("H", _BLACK), 50717: ("H", _WHITE)}
        if linear:
            return {**layout, 258: ("H", (16, 16, 16)), 262: ("H", 34892),  # LinearRaw
                    277: ("H", 3)}
        return {**layout, 258: ("H", 16), 262: ("H", 32803), 277: ("H", 1),  # CFA
                33421: ("H", (2, 2)), 33422: ("B", (0, 1, 1, 2))}  # RGGB

    def make_ifds(layout: _Layout, offsets: list[int]) -> int:
        tags = dict(camera)
        if taken is not None and taken_in_ifd0:
            tags[306] = ("A", taken)  # DateTime
        elif taken is not None:
            tags[34665] = ("I", layout.ifd({36867: ("A", taken)}))  # Exif IFD
        if jpeg is None:
            return layout.ifd({**raw_ifd(0, offsets[0]), **tags})
        with Image.open(io.BytesIO(jpeg)) as im:
            pw, ph = im.size
        tags[330] = ("I", layout.ifd(raw_ifd(0, offsets[0])))  # SubIFDs
        return layout.ifd({**tags, 254: ("I", 1), 256: ("I", pw), 257: ("I", ph),
                           258: ("H", (8, 8, 8)), 259: ("H", 7), 262: ("H", 6),
                           273: ("I", offsets[1]), 277: ("H", 3), 278: ("I", ph),
                           279: ("I", len(jpeg)), 284: ("H", 1)})

    strips = [mosaic] if jpeg is None else [mosaic, jpeg]
    # Raw data last, as cameras write it: put the preview's strip first.
    return _build(strips[::-1], lambda layout, offs: make_ifds(layout, offs[::-1]))


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def cr3_outline(stamp: bytes, subsec: bytes = b"25") -> bytes:
    """A CR3's outline, without pictures: ftyp, moov with Canon's uuid box
    holding CMT2 (an EXIF IFD as a little TIFF: DateTimeOriginal
    ``stamp``, NUL-ended, and SubSecTimeOriginal), then the media data."""
    value_at = 8 + 2 + 2 * 12 + 4
    ifd = struct.pack("<H", 2) + struct.pack("<HHII", 0x9003, 2, len(stamp), value_at) \
        + struct.pack("<HHI4s", 0x9291, 2, len(subsec) + 1, subsec.ljust(4, b"\0")) \
        + b"\0\0\0\0"
    cmt2 = b"II*\0" + struct.pack("<I", 8) + ifd + stamp
    canon = _box(b"uuid", bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
                 + _box(b"CMT1", b"\0" * 8) + _box(b"CMT2", cmt2))
    return _box(b"ftyp", b"crx \0\0\0\1") + _box(b"moov", canon) + _box(b"mdat", b"\7" * 5000)


def raf_outline() -> bytes:
    """A Fujifilm RAF's header naming its JPEG, metadata and raw data
    (offset, length each), followed by that many bytes."""
    header = b"FUJIFILMCCD-RAW 0201FF129502" + b"\0" * 56
    header += struct.pack(">6I", 148, 1000, 1148, 200, 1348, 9000)
    return header + b"\0" * (1348 + 9000 - len(header))

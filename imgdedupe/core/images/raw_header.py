"""What a RAW file's header says, read without LibRaw: whether the file
is cut short, and when the photo was taken.

Cut short: a RAW file cut short (an interrupted copy, a failing card)
usually still holds its preview, which lies before the raw data, and
images.raw decodes the preview: the photo would look whole, win as the
keeper by its pixel count, and its intact JPEG copy would be the one
suggested for the trash. LibRaw only notices when it unpacks the raw
data, 10-50x the cost of the preview. So the layout each container
declares is checked against the file's size: the image data of every IFD
of a TIFF-based RAW (DNG, CR2, NEF, ARW, ORF, RW2 and others), the boxes
of an ISO-BMFF one (CR3), the sections of a Fujifilm RAF.

Taken: EXIF DateTimeOriginal and SubSecTimeOriginal, from the EXIF IFD of
a TIFF-based RAW or the CMT2 box of a CR3 (RAF's preview carries its own
EXIF). rawpy's own capture time (LibRaw's) costs an unpack of the raw
data and has no fraction of a second.

A few small reads: tens of microseconds a file.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO, NamedTuple

from imgdedupe.core.images.capture_time import (
    DATE_TIME_ORIGINAL,
    EXIF_IFD,
    SUBSEC_TIME_ORIGINAL,
    capture_time_of,
)

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"IIRO", b"IIRS", b"MMOR", b"IIU\x00")
_RAF_MAGIC = b"FUJIFILMCCD-RAW "
# (offsets tag, byte counts tag): strips, tiles, a JPEG (old-style).
_EXTENT_TAGS = ((273, 279), (324, 325), (513, 514))
_SUB_IFDS = 330
_WANTED = frozenset({_SUB_IFDS, EXIF_IFD, *(tag for pair in _EXTENT_TAGS for tag in pair)})
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 13: 4, 16: 8}  # BYTE, ASCII, SHORT, LONG, IFD, LONG8
_MAX_IFDS = 64
_MAX_ENTRIES = 4096
_MAX_BOXES = 10_000
# Canon's metadata box in a CR3's moov: CMT1..CMT4 (CMT2: the EXIF IFD).
_CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
_MAX_CMT2 = 1 << 20  # a real one is a few hundred bytes: never read a hostile gigabyte


class RawHeader(NamedTuple):
    cut: str | None  # a sentence saying how the file is cut short, or None
    taken: float | None  # EXIF capture time (images.capture_time), or None
    damaged: bool = False  # the layout points far past any plausible end: garbage, not a cut


# A cut file lacks its tail: its layout ends past the end, by up to all of
# a real RAW's length (100-300 MB for the largest sensors). A layout
# pointing past a gigabyte (a 1 MB file "running to" byte 1.3 billion) is a
# damaged header, not a cut.
_LARGEST_PLAUSIBLE_RAW = 1 << 30


def read_header(fh: BinaryIO, file_size: int) -> RawHeader:
    """What ``fh``'s header says. Nothing when the file is of a kind not
    read here or too damaged to say: LibRaw then has its own say."""
    try:
        fh.seek(0)
        head = fh.read(16)
        if head[:4] in _TIFF_MAGIC:
            end, taken = _tiff(fh, file_size, "<" if head[:2] == b"II" else ">")
        elif head[4:8] == b"ftyp":
            end, taken = _bmff(fh, file_size)
        elif head == _RAF_MAGIC:
            end, taken = _raf_end(fh), None
        else:
            return RawHeader(None, None)
    except (OSError, ValueError, struct.error):
        return RawHeader(None, None)
    if end is None or end <= file_size:
        return RawHeader(None, taken)
    if end > _LARGEST_PLAUSIBLE_RAW:
        return RawHeader(f"the file is damaged: its header points to byte {end:,} of a "
                         f"{file_size:,}-byte file", taken, damaged=True)
    return RawHeader(f"the file is cut short: it is {file_size:,} bytes long but its own "
                     f"layout runs to byte {end:,} (an interrupted copy or a damaged card?)",
                     taken)


class _PastEnd(ValueError):
    """The header points past the end of the file."""


def _read(fh: BinaryIO, offset: int, size: int) -> bytes:
    fh.seek(offset)
    data = fh.read(size)
    if len(data) != size:
        raise _PastEnd(offset + size)
    return data


def _ifd(fh: BinaryIO, offset: int, order: str, wanted: frozenset[int],
         file_size: int) -> tuple[dict[int, list[int] | bytes], int | None]:
    """The ``wanted`` tags of the IFD at ``offset`` (numbers, or bytes for
    ASCII) and the offset of the next IFD (None: none, or cut off)."""
    count = struct.unpack(order + "H", _read(fh, offset, 2))[0]
    if count > _MAX_ENTRIES:
        raise ValueError("not an IFD")
    entries = _read(fh, offset + 2, 12 * count)
    values: dict[int, list[int] | bytes] = {}
    for i in range(count):
        tag, kind, n = struct.unpack(order + "HHI", entries[12 * i:12 * i + 8])
        if tag in wanted and kind in _TYPE_SIZES and 0 < n <= 65536:
            field = entries[12 * i + 8:12 * i + 12]
            size = _TYPE_SIZES[kind] * n
            data = field[:size] if size <= 4 else _read(
                fh, struct.unpack(order + "I", field)[0], size)
            if kind == 2:
                values[tag] = data
            else:
                fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}[_TYPE_SIZES[kind]]
                values[tag] = list(struct.unpack(f"{order}{n}{fmt}", data))
    next_at = offset + 2 + 12 * count
    following = struct.unpack(order + "I", _read(fh, next_at, 4))[0] \
        if next_at + 4 <= file_size else None
    return values, following


def _taken(values: dict[int, list[int] | bytes]) -> float | None:
    stamp = values.get(DATE_TIME_ORIGINAL)
    return capture_time_of(stamp, values.get(SUBSEC_TIME_ORIGINAL)) \
        if isinstance(stamp, bytes) else None


def _tiff(fh: BinaryIO, file_size: int, order: str) -> tuple[int | None, float | None]:
    """The furthest byte any IFD's image data reaches (an IFD that starts
    past the end of the file counts as cut off), and the EXIF time."""
    pending = [struct.unpack(order + "I", _read(fh, 4, 4))[0]]
    seen: set[int] = set()
    end, taken = 0, None
    while pending and len(seen) < _MAX_IFDS:
        offset = pending.pop()
        if offset == 0 or offset in seen:
            continue
        seen.add(offset)
        try:
            values, following = _ifd(fh, offset, order, _WANTED, file_size)
        except _PastEnd as past:  # an IFD, or its values, cut off
            end = max(end, past.args[0])
            continue
        for offsets_tag, counts_tag in _EXTENT_TAGS:
            starts, sizes = values.get(offsets_tag, []), values.get(counts_tag, [])
            end = max([end, *(s + n for s, n in zip(starts, sizes, strict=False) if n)])
        subs, exif = values.get(_SUB_IFDS, []), values.get(EXIF_IFD)
        pending.extend(subs if isinstance(subs, list) else [])
        if taken is None and isinstance(exif, list) and exif:
            taken = _exif_time(fh, exif[0], order, file_size)
        if following is not None:
            pending.append(following)
    return end or None, taken


def _exif_time(fh: BinaryIO, offset: int, order: str, file_size: int) -> float | None:
    try:
        values, _ = _ifd(fh, offset, order,
                         frozenset({DATE_TIME_ORIGINAL, SUBSEC_TIME_ORIGINAL}), file_size)
    except (ValueError, struct.error):
        return None
    return _taken(values)


def _boxes(fh: BinaryIO, start: int, stop: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes from ``start`` to ``stop``;
    the last one's end may lie past ``stop`` when the file is cut short."""
    found: list[tuple[bytes, int, int]] = []
    position = start
    while position + 8 <= stop and len(found) < _MAX_BOXES:
        size, kind = struct.unpack(">I4s", _read(fh, position, 8))
        header = 8
        if size == 1:  # a 64-bit size follows the type
            size, header = struct.unpack(">Q", _read(fh, position + 8, 8))[0], 16
        elif size == 0:  # the box runs to the end
            size = stop - position
        if size < header:
            raise ValueError("damaged box")
        found.append((kind, position + header, position + size))
        position += size
    return found


def _bmff(fh: BinaryIO, file_size: int) -> tuple[int | None, float | None]:
    """Where the last top-level box ends (CR3, like HEIC, is a series of
    boxes, each with its length), and the time in Canon's CMT2 box."""
    top = _boxes(fh, 0, file_size)
    end = max((box_end for _, _, box_end in top), default=None)
    taken = None
    for kind, start, box_end in top:
        if kind == b"moov" and box_end <= file_size:
            taken = _cr3_time(fh, start, box_end)
    return end, taken


def _cr3_time(fh: BinaryIO, start: int, stop: int) -> float | None:
    for kind, payload, end in _boxes(fh, start, stop):
        if kind != b"uuid" or end > stop or _read(fh, payload, 16) != _CANON_UUID:
            continue
        for inner, data_at, data_end in _boxes(fh, payload + 16, end):
            if inner == b"CMT2" and data_end <= end and data_end - data_at <= _MAX_CMT2:
                tiff = io.BytesIO(_read(fh, data_at, data_end - data_at))
                order = "<" if tiff.read(2) == b"II" else ">"
                offset = struct.unpack(order + "I", _read(tiff, 4, 4))[0]
                return _exif_time(tiff, offset, order, data_end - data_at)
    return None


def _raf_end(fh: BinaryIO) -> int | None:
    """A Fujifilm RAF's header gives the offset and length of its JPEG,
    its metadata and its raw data."""
    fields = struct.unpack(">6I", _read(fh, 84, 24))
    return max(fields[i] + fields[i + 1] for i in (0, 2, 4)) or None

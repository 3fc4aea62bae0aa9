"""Camera RAW files (files.walk.RAW_EXTENSIONS) through LibRaw (rawpy).

decode.decode_image hands a RAW file here and passes its own finishing
step (reduce, squash, EXIF transpose), so a RAW photo leaves as the same
DecodedImage as a JPEG and is hashed, cached and shown like one.

Which pixels: the camera's embedded JPEG preview when it is big enough,
else a half-size decode of the raw data. A preview is the camera's own
rendering of the shot (its white balance, tone curve, picture style), the
closest thing to the JPEG the camera or an export wrote beside the RAW,
and costs a JPEG decode; demosaicing costs 10-50x more. It is used when
its long side is at least PREVIEW_MIN_LONG_SIDE, its short side reaches
the size the caller asked for, and its shape is the sensor's (a 160 x 120
EXIF thumbnail, or a 4:3 preview letterboxed from a 3:2 sensor, is not).
The half-size decode (each 2 x 2 Bayer block to one pixel: no demosaic)
is a quarter of the pixels at a fraction of a full decode's cost, still
far more than the network's input or a thumbnail need.

rawpy is imported on the first RAW file: it loads LibRaw (~0.1 s), which
a scan of JPEGs never needs.
"""

from __future__ import annotations

import calendar
import io
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from types import ModuleType, SimpleNamespace
from typing import Any, BinaryIO, ClassVar, Protocol, TypeVar

import numpy as np
from PIL import Image

from imgdedupe.core.errors import DecodeError
from imgdedupe.core.files.walk import RAW_EXTENSIONS
from imgdedupe.core.images.raw_header import read_header
from imgdedupe.core.records import ErrorReason

logger = logging.getLogger(__name__)

# A preview this long on its long side (683 px short at 3:2) holds twice
# the pixels the network's input is reduced from (preprocess.DECODE_TARGET
# 336) and more than the largest thumbnail (400), so the preview's JPEG
# artefacts are averaged away. Cameras embed either a small thumbnail
# (160 x 120 to 640 x 480, often letterboxed) or a preview of 1,600 px and
# more (Sony 1616 x 1080, Fujifilm 1920 x 1280, Canon and recent Nikon at
# full size): 1024 takes every preview of the second kind and none of the
# first.
PREVIEW_MIN_LONG_SIDE = 1024
# A preview whose shape differs from the sensor's by more than this is
# letterboxed or cropped: it would not match the photo's other copies.
_SHAPE_TOLERANCE = 0.02
# LibRaw's ``flip`` (dcraw's) -> the EXIF orientation that shows it upright.
_ORIENTATION_OF_FLIP = {0: 1, 1: 2, 3: 3, 2: 4, 4: 5, 6: 6, 7: 7, 5: 8}
_SWAPPED = frozenset({5, 6, 7, 8})
_ORIENTATION_TAG = 0x0112

_import_lock = threading.Lock()
_rawpy: ModuleType | None = None


class _Picture(Protocol):
    """What images.raw needs of decode.DecodedImage (a frozen dataclass)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def image(self) -> Image.Image: ...
    @property
    def taken(self) -> float | None: ...


Decoded = TypeVar("Decoded", bound=_Picture)
# decode._decode_opened(im, fh, target, max_pixels, squash_to)
Finish = Callable[[Image.Image, BinaryIO, int, int, tuple[int, int] | None], Decoded]
CheckBudget = Callable[[Any, BinaryIO, int], None]  # decode._check_budget(im, fh, max_pixels)


def is_raw_file(path: str) -> bool:
    """Whether ``path`` names a camera RAW file (by its extension, any case)."""
    return os.path.splitext(path)[1].lower() in RAW_EXTENSIONS


def _module() -> ModuleType:
    global _rawpy
    if _rawpy is None:
        with _import_lock:
            if _rawpy is None:
                try:
                    import rawpy
                except Exception as exc:  # ImportError, or a LibRaw that fails to load
                    logger.warning("RAW support unavailable: %s", exc)
                    raise DecodeError(ErrorReason.UNSUPPORTED,
                                      f"a camera RAW file, and this installation cannot "
                                      f"read RAW files (rawpy: {exc})") from exc
                _rawpy = rawpy
    return _rawpy


def decode_raw(path: str, finish: Finish[Decoded], check_budget: CheckBudget,
               target: int, max_pixels: int,
               squash_to: tuple[int, int] | None) -> Decoded:
    """decode.decode_image for a RAW file; ``finish`` and ``check_budget``
    are decode's own steps. Raises DecodeError; an OSError of reading the
    file is left to the caller, which words those for every format."""
    with open(path, "rb") as fh:  # PermissionError, FileNotFoundError: the caller's
        file_size = os.fstat(fh.fileno()).st_size
        if file_size == 0:
            raise DecodeError(ErrorReason.EMPTY, "the file is empty (0 bytes)")
        header = read_header(fh, file_size)
    if header.cut is not None:
        raise DecodeError(ErrorReason.DECODE_FAILED if header.damaged else ErrorReason.TRUNCATED,
                          header.cut)
    rawpy = _module()
    try:
        with rawpy.imread(path) as raw:
            decoded, unpacked = _decode(raw, path, finish, check_budget, target, max_pixels,
                                        squash_to)
            # LibRaw's own time costs an unpack: only once it is done.
            late = _taken(raw) if unpacked and header.taken is None else None
    except rawpy.LibRawFileUnsupportedError as exc:
        raise DecodeError(ErrorReason.UNSUPPORTED,
                          f"not a RAW file that LibRaw {_version(rawpy)} reads (an unknown "
                          f"camera, or another kind of file with a RAW name)") from exc
    except (rawpy.LibRawIOError, rawpy.LibRawDataError) as exc:
        # LibRaw reads past the end of a cut-off file as an I/O error, and
        # counts damaged raw data as data errors.
        raise DecodeError(ErrorReason.TRUNCATED,
                          f"the raw data is cut short or damaged (LibRaw: "
                          f"{_message(exc)})") from exc
    except (rawpy.LibRawTooBigError, rawpy.LibRawUnsufficientMemoryError) as exc:
        raise DecodeError(ErrorReason.TOO_LARGE, f"LibRaw: {_message(exc)}") from exc
    except rawpy.LibRawError as exc:
        raise DecodeError(ErrorReason.DECODE_FAILED, f"LibRaw: {_message(exc)}") from exc
    # The RAW's own EXIF, else the preview's (a copy), else LibRaw's.
    candidates = (header.taken, decoded.taken, late)
    return replace(decoded, taken=next((t for t in candidates if t is not None), None))


def _decode(raw: Any, path: str, finish: Finish[Decoded], check_budget: CheckBudget,
            target: int, max_pixels: int,
            squash_to: tuple[int, int] | None) -> tuple[Decoded, bool]:
    """The picture, and whether LibRaw unpacked the raw data for it."""
    sizes = raw.sizes
    width, height = sizes.width, sizes.height
    if width * height > max_pixels:
        raise DecodeError(ErrorReason.TOO_LARGE,
                          f"{width}x{height} pixels is over the limit of {max_pixels}")
    orientation = _ORIENTATION_OF_FLIP.get(sizes.flip, 1)
    decoded: Decoded | None = None
    unpacked = False
    preview = _preview(raw, width, height, target)
    if preview is not None:
        try:
            with preview:
                # ``finish`` turns a picture as its EXIF says: say it here.
                preview.getexif()[_ORIENTATION_TAG] = _preview_orientation(
                    preview, width, height, orientation)
                decoded = finish(preview, io.BytesIO(), target, max_pixels, squash_to)
        except (OSError, SyntaxError, ValueError):  # Pillow's words for a damaged JPEG
            # The preview is a copy: the raw data may be whole.
            logger.info("damaged preview in %r: decoding its raw data", path)
    if decoded is None:
        # Judged like any decode from its header (as "RAW": 6 bytes a
        # pixel): LibRaw holds the raw data (2 bytes a pixel), a quarter-
        # size picture of 4 channels of 16 bits (2 more) and its 8-bit
        # copy; the peak measured 5.5 at 12, 24 and 45 Mpx. So a pool
        # worker leaves a half-size decode over 32 Mpx to the pool's own
        # process (decode.QUICK_MAX_WORK), and none over 85 Mpx is done
        # (decode.MAX_DECODE_BYTES).
        header = SimpleNamespace(size=(width, height), format="RAW", info={}, tile=())
        check_budget(header, io.BytesIO(), max_pixels)
        # LibRaw applies the orientation itself; camera white balance, as
        # the camera's own JPEG has it.
        pixels = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
        unpacked = True
        picture = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
        decoded = finish(picture, io.BytesIO(), target, max_pixels, squash_to)
    if orientation in _SWAPPED:
        width, height = height, width
    return replace(decoded, width=width, height=height,
                   format=os.path.splitext(path)[1][1:].upper() or "RAW"), unpacked


def _preview(raw: Any, width: int, height: int, target: int) -> Image.Image | None:
    """The embedded preview, opened (not yet decoded), or None when there
    is none or it is too small or of another shape."""
    rawpy = _module()
    try:
        thumb = raw.extract_thumb()
    except rawpy.LibRawError:  # none, unsupported, or damaged: the raw data decides
        return None
    picture: Image.Image
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            picture = Image.open(io.BytesIO(thumb.data), formats=["JPEG"])
        else:
            picture = Image.fromarray(np.ascontiguousarray(thumb.data), "RGB")
    except Exception:  # noqa: BLE001 - a preview Pillow cannot read: decode the raw data
        logger.debug("unreadable RAW preview", exc_info=True)
        return None
    long_side, short_side = max(picture.size), min(picture.size)
    # Enough pixels: the caller's target, or at least as many as the
    # half-size decode would give (a compare view asks for 1,600).
    enough = short_side >= min(target, min(width, height) // 2)
    shape = _shape_of(picture.size, width, height)
    if long_side < PREVIEW_MIN_LONG_SIDE or not enough or shape is None:
        picture.close()
        return None
    return picture


def _shape_of(size: tuple[int, int], width: int, height: int) -> str | None:
    """"sensor" when ``size`` has the sensor's proportions, "turned" when
    those of the sensor turned a quarter, None when neither."""
    ratio = size[0] / max(1, size[1])
    for name, expected in (("sensor", width / max(1, height)), ("turned", height / max(1, width))):
        if abs(ratio / expected - 1) <= _SHAPE_TOLERANCE:
            return name
    return None


def _preview_orientation(preview: Image.Image, width: int, height: int,
                         orientation: int) -> int:
    """How to turn the preview upright. A preview with an orientation of
    its own is shown as it says, like any JPEG (LibRaw writes the RAW's
    into the EXIF it adds to a preview that has none); one already stored
    turned (the sensor's shape turned a quarter, as some cameras store
    it) is shown as it is; any other takes the RAW's orientation."""
    if orientation in _SWAPPED and width != height \
            and _shape_of(preview.size, width, height) == "turned":
        return 1
    try:
        own = preview.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - malformed EXIF is common
        own = 1
    return own if isinstance(own, int) and 2 <= own <= 8 else orientation


def _taken(raw: Any) -> float | None:
    """The capture time LibRaw read from the RAW's own metadata (whole
    seconds), as images.capture_time counts it: the camera's wall clock
    read as if it were UTC. LibRaw turned that clock into a timestamp
    with the local zone (mktime) and rawpy back with the same zone."""
    try:
        stamp: datetime = raw.other.timestamp
        if abs(stamp.timestamp()) < 1:  # 0: the file says nothing
            return None
        return float(calendar.timegm(stamp.timetuple()))
    except Exception:  # noqa: BLE001 - a missing or absurd date is not an error
        return None


def _message(exc: BaseException) -> str:
    text = exc.args[0] if exc.args else str(exc)
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _version(rawpy: ModuleType) -> str:
    version = getattr(rawpy, "libraw_version", None)
    return ".".join(map(str, version)) if version else ""


def raw_capture_time(path: str) -> float | None:
    """The capture time in the RAW's own header (images.raw_header), or
    None; no LibRaw, for captions."""
    try:
        with open(path, "rb") as fh:
            return read_header(fh, os.fstat(fh.fileno()).st_size).taken
    except OSError:
        return None


def raw_size(path: str) -> tuple[int, int] | None:
    """Full-resolution (width, height) after orientation, from the RAW's
    metadata only; None when LibRaw cannot read it."""
    try:
        with _module().imread(path) as raw:
            sizes = raw.sizes
    except Exception:  # a size is only a hint
        logger.debug("cannot read the size of %r", path, exc_info=True)
        return None
    swapped = _ORIENTATION_OF_FLIP.get(sizes.flip, 1) in _SWAPPED
    return (sizes.height, sizes.width) if swapped else (sizes.width, sizes.height)

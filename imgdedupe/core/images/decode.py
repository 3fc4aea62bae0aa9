"""Turn one image file into a small upright RGB picture, or a clear reason why not.

A scan decodes tens of thousands of files of unknown quality, so every
failure is mapped to a stable ErrorReason code and nothing but DecodeError
ever leaves decode_image: one bad file must never end the scan.

We rely on PIL.ImageFile.LOAD_TRUNCATED_IMAGES staying False (the default;
nothing in this package sets it, and it is a process-wide switch we must
not flip for other callers): with it True, Pillow would hand back
half-grey pictures of truncated files, and those would group as duplicates.

A new format: teach decode_image to open it, and add its extension to
files.walk.IMAGE_EXTENSIONS, or the walk never hands such files on.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from imgdedupe.core.errors import DecodeError, os_error_reason
from imgdedupe.core.images.capture_time import capture_time
from imgdedupe.core.records import ErrorReason

logger = logging.getLogger(__name__)

ORIENTATION_TAG = 0x0112
_SWAPPED_ORIENTATIONS = frozenset({5, 6, 7, 8})
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_BACKGROUND = (128, 128, 128)  # neutral: transparency neither whitens nor darkens the picture
_DRAFT_FORMATS = frozenset({"JPEG", "MPO"})
_ISO_BMFF_EXTENSIONS = frozenset({".heic", ".heif", ".avif"})
_TRUNCATION_HINTS = ("truncated", "broken data stream", "premature end", "unexpected end")

_warnings_lock = threading.Lock()
_heif_lock = threading.Lock()
_heif_available: bool | None = None


@dataclass(frozen=True)
class DecodedImage:
    """``image`` is RGB, upright and reduced; ``width``/``height`` are the
    full-resolution size after EXIF orientation (what the user sees)."""

    image: Image.Image
    width: int
    height: int
    format: str | None
    taken: float | None = None  # EXIF capture time (images.capture_time)


def _ensure_heif_opener() -> bool:
    """Register pillow_heif once, on first use; False when it is unavailable.

    Lazy so importing this module stays cheap and a broken or missing
    pillow_heif turns HEIC files into UNSUPPORTED errors, not an import crash.
    """
    global _heif_available
    if _heif_available is not None:
        return _heif_available
    with _heif_lock:
        if _heif_available is None:
            try:
                import pillow_heif

                pillow_heif.register_heif_opener()
                # Pillow >= 11.2 reads AVIF itself; older pillow_heif had a plugin.
                register_avif = getattr(pillow_heif, "register_avif_opener", None)
                if register_avif is not None and not features.check("avif"):
                    register_avif()
                _heif_available = True
            except Exception as exc:  # ImportError, or a broken libheif build
                logger.warning("HEIC/HEIF support unavailable: %s", exc)
                _heif_available = False
    return _heif_available


@contextmanager
def _bomb_warning_ignored() -> Iterator[None]:
    """Silence Pillow's DecompressionBombWarning, for this block only.

    Ignored rather than raised: Pillow warns from 89 Mpx on, below our own
    max_pixels, which _decode_opened checks right after opening; the caller's
    limit decides. catch_warnings swaps the process-wide filter list and is
    not thread-safe before Python 3.14: two threads interleaving would leave
    one's filter installed for good. The lock keeps our own uses in pairs,
    and the block is kept to header parsing so decoding stays parallel.
    """
    with _warnings_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _over_pillow_warning_limit(im: Image.Image) -> bool:
    limit = Image.MAX_IMAGE_PIXELS
    return limit is not None and im.width * im.height > limit


def _orientation(im: Image.Image, *, allow_load: bool) -> int:
    # PNG keeps eXIf anywhere in the file and Pillow loads the whole image to
    # find one after the pixel data; a header-only caller cannot afford that.
    if not allow_load and im.format == "PNG" and "exif" not in im.info:
        return 1
    try:
        value = im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # malformed EXIF is common and must not cost the picture
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _taken(im: Image.Image) -> float | None:
    try:
        exif = im.getexif()  # parsed once by _orientation: Pillow keeps it
    except Exception:
        return None
    return capture_time(exif)


def _to_8bit_gray(im: Image.Image) -> Image.Image:
    """16-bit and float grey to L without clipping bright values to white
    (Pillow's own I -> L conversion clamps at 255)."""
    arr = np.asarray(im)
    if im.mode.startswith("I;16"):
        out = (arr.astype(np.uint16) >> 8).astype(np.uint8)
    else:
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0 and hi <= 255:
            out = arr.astype(np.uint8)
        elif lo >= 0 and hi <= 65535 and im.mode == "I":
            out = (arr.astype(np.uint32) >> 8).astype(np.uint8)
        else:
            span = hi - lo or 1.0
            out = ((arr.astype(np.float32) - lo) * (255.0 / span)).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(out), mode="L")


def _normalise_mode(im: Image.Image) -> Image.Image:
    """Reduce the zoo of Pillow modes to RGB, RGBA, L or LA, which resize well."""
    mode = im.mode
    if mode in ("RGB", "RGBA", "L", "LA"):
        return im
    if mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if mode in ("PA", "RGBa", "La"):
        return im.convert("RGBA") if mode != "La" else im.convert("LA")
    if mode == "1":
        return im.convert("L")
    if mode.startswith("I") or mode == "F":
        return _to_8bit_gray(im)
    # CMYK, YCbCr, LAB, HSV, RGBX and anything exotic.
    return im.convert("RGB")


def _reduce(im: Image.Image, target: int) -> Image.Image:
    """Shrink so the shorter side is ``target``; never enlarge."""
    width, height = im.size
    short = min(width, height)
    if short <= target:
        return im
    scale = target / short
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reducing_gap lets Pillow box-reduce by an integer factor first: much
    # faster on big PNGs and no visible loss at embedding resolution.
    return im.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _flatten(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA"):
        background = Image.new("RGB", im.size, _BACKGROUND)
        background.paste(im.convert("RGB"), mask=im.getchannel("A"))
        return background
    return im.convert("RGB")


def _decode_opened(im: Image.Image, target: int, max_pixels: int,
                   squash_to: tuple[int, int] | None = None) -> DecodedImage:
    raw_width, raw_height = im.size
    if raw_width * raw_height > max_pixels:
        raise DecodeError(
            ErrorReason.TOO_LARGE,
            f"{raw_width}x{raw_height} pixels is over the limit of {max_pixels}",
        )
    if im.format in _DRAFT_FORMATS and im.info.get("progressive") \
            and raw_width * raw_height > max_pixels // 2:
        # A progressive JPEG cannot be decoded at a reduced scale the way
        # draft() decodes a baseline one: libjpeg keeps every coefficient of
        # the whole picture (about 3 bytes a pixel) until the last scan,
        # whatever the output size, and a 60-byte file can declare 170 Mpx.
        # Half the limit bounds one decode to ~270 MB (several run at once).
        raise DecodeError(
            ErrorReason.TOO_LARGE,
            f"progressive JPEG of {raw_width}x{raw_height} pixels is over the limit of "
            f"{max_pixels // 2} for progressive files (decoding needs about "
            f"{raw_width * raw_height * 3 // 1_000_000} MB)",
        )
    if im.tell() != 0:
        # Animations: the first frame stands for the file. Not n_frames,
        # which reads a whole GIF to count them.
        im.seek(0)
    if im.format in _DRAFT_FORMATS:
        # libjpeg scales by 1/2, 1/4 or 1/8 while decoding, keeping both
        # sides >= target: by far the largest saving of the whole scan.
        im.draft("RGB", (target, target))
    im.load()
    orientation = _orientation(im, allow_load=True)
    taken = _taken(im)
    if orientation in _SWAPPED_ORIENTATIONS:
        raw_width, raw_height = raw_height, raw_width
    if squash_to is not None:
        # One resample straight from the draft to the network's input
        # instead of two (reduce, then squash): ~0.7 ms a photo. Squashing
        # before the EXIF transpose is equivalent for a square output.
        out = _flatten(_normalise_mode(im).resize(squash_to, Image.Resampling.BILINEAR,
                                                  reducing_gap=2.0))
    else:
        out = _flatten(_reduce(_normalise_mode(im), target))
    # Transposing after the reduction moves ~50x fewer pixels than
    # ImageOps.exif_transpose on the decoded picture would.
    method = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    if method is not None:
        out = out.transpose(method)
    if out is im:
        out = im.copy()  # the caller's image must outlive the closed file
    return DecodedImage(image=out, width=raw_width, height=raw_height, format=im.format,
                        taken=taken)


def _looks_like_iso_bmff(fh: BinaryIO) -> bool:
    """HEIC/AVIF files start with an ISO-BMFF 'ftyp' box."""
    try:
        fh.seek(0)
        head = fh.read(12)
    except (OSError, ValueError):
        return False
    return head[4:8] == b"ftyp"


def decode_image(path: str, *, target: int = 448, max_pixels: int = 178_956_970,
                 squash_to: tuple[int, int] | None = None) -> DecodedImage:
    """Decode ``path`` to an upright RGB image whose shorter side is at most
    about ``target`` (never enlarged), or, with ``squash_to``, resized to
    exactly that (width, height) whatever its aspect ratio. ``width`` and
    ``height`` of the result are always the original's. Raises DecodeError,
    and nothing else."""
    heif = _ensure_heif_opener()
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise DecodeError(ErrorReason.EMPTY, "the file is empty (0 bytes)")
            try:
                with _bomb_warning_ignored():
                    im = Image.open(fh)
                with im:
                    if not _over_pillow_warning_limit(im):
                        return _decode_opened(im, target, max_pixels, squash_to)
                    # Rare (> 89 Mpx): Pillow may warn again while loading.
                    with _bomb_warning_ignored():
                        return _decode_opened(im, target, max_pixels, squash_to)
            except UnidentifiedImageError:
                ext = os.path.splitext(path)[1].lower()
                if _looks_like_iso_bmff(fh) and (not heif or ext in _ISO_BMFF_EXTENSIONS):
                    raise DecodeError(
                        ErrorReason.UNSUPPORTED,
                        "HEIC/HEIF/AVIF file that this installation cannot decode",
                    ) from None
                raise DecodeError(
                    ErrorReason.NOT_AN_IMAGE, "not an image, or a format Pillow does not know"
                ) from None
    except DecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError(ErrorReason.TOO_LARGE, str(exc)) from exc
    except EOFError as exc:
        raise DecodeError(ErrorReason.TRUNCATED, str(exc) or "unexpected end of file") from exc
    except OSError as exc:
        # Pillow reports a cut-off file as an OSError too.
        message = str(exc)
        if any(hint in message.lower() for hint in _TRUNCATION_HINTS):
            raise DecodeError(ErrorReason.TRUNCATED, message) from exc
        raise DecodeError(*os_error_reason(exc)) from exc
    except MemoryError as exc:
        raise DecodeError(ErrorReason.TOO_LARGE, "not enough memory to decode") from exc
    except Exception as exc:  # one bad file must never crash the scan
        logger.debug("decoding %r failed", path, exc_info=True)
        raise DecodeError(ErrorReason.DECODE_FAILED, f"{type(exc).__name__}: {exc}") from exc


def read_image_size(path: str) -> tuple[int, int] | None:
    """Full-resolution (width, height) after EXIF orientation, from the
    header only; None when the file cannot be read as an image."""
    _ensure_heif_opener()
    try:
        with open(path, "rb") as fh:
            with _bomb_warning_ignored():
                im = Image.open(fh)
            with im:
                width, height = im.size
                if _orientation(im, allow_load=False) in _SWAPPED_ORIENTATIONS:
                    width, height = height, width
                return width, height
    except Exception:  # a size is only a hint for choosing the keeper
        logger.debug("cannot read the size of %r", path, exc_info=True)
        return None

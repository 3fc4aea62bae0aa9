"""Turn one image file into a small upright RGB picture, or a clear reason why not.

A scan decodes tens of thousands of files of unknown quality, so every
failure is mapped to a stable ErrorReason code and nothing but DecodeError
ever leaves decode_image: one bad file must never end the scan.

We rely on PIL.ImageFile.LOAD_TRUNCATED_IMAGES staying False (the default;
nothing in this package sets it, and it is a process-wide switch we must
not flip for other callers): with it True, Pillow would hand back
half-grey pictures of truncated files, and those would group as duplicates.

Decoding is contained (docs/reliability.md, "Decoding is contained"):
Pillow is only ever asked for the formats in _READ_FORMATS, so a file of
any other format (PostScript, which Pillow hands to Ghostscript, above
all) is reported, never opened; and the cost of a decode is judged from
the header, before a pixel is decoded (_check_budget): past a budget the
file is refused with a reason, and a pool worker (defer_slow_decodes)
leaves the costly ones to a process the pool can kill.

A new format: add it to _READ_FORMATS, its cost to _check_budget if it is
not one full decode, and its extension to files.walk.IMAGE_EXTENSIONS, or
the walk never hands such files on. Camera RAW files go to images.raw.
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
from imgdedupe.core.images.raw import decode_raw, is_raw_file, raw_size
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
# The only formats Image.open may try, in this order (the common first).
# JPEG's opener also gives MPO files (two-picture JPEGs). HEIF comes from
# pillow_heif, AVIF from Pillow >= 11.2 or pillow_heif; either may be
# missing, and only registered ones are passed (Pillow raises KeyError on
# an unknown name).
_READ_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF", "AVIF", "GIF", "TIFF", "BMP")
_formats_cache: dict[bool, tuple[str, ...]] = {}

# What a decode may cost, judged from the header by _check_budget (figures:
# docs/reliability.md, "Decoding is contained"). Memory: every format but
# JPEG (draft() decodes it at 1/2-1/8 scale) is decoded at full size, and
# the peak measured 4-8 bytes a pixel (a PNG, TIFF or HEIC; twice Pillow's
# 4 while an RGBA picture is resized), 16 for WebP (libwebp's buffer, then
# Pillow's copy). 512 MB lets through 64 Mpx (8000 x 8000, more than any
# phone or most scanners give) and refuses the 657 KB 13000 x 13000 PNG
# that took 1.36 GB.
MAX_DECODE_BYTES = 512_000_000
_BYTES_PER_PIXEL = {"WEBP": 16, "RAW": 6}  # others: 8; RAW: images.raw's half-size decode
# Time, as "work": pixels a C decoder writes, 8-50 ns each here. 96 M lets
# through a 64 Mpx PNG (3 s, the slowest file we decode) and an 89 Mpx
# progressive JPEG of libjpeg's usual 10 scans, and refuses what costs
# seconds from a tiny file: BMP RLE (decoded in Python holding the GIL,
# 170 ns a pixel) over 6 Mpx, progressive JPEGs of hundreds of scans.
MAX_WORK = 96_000_000
_PYTHON_DECODER_FACTOR = 16
_SCANS_PER_DECODE = 10  # each scan of a progressive JPEG revisits every block
# In a pool worker (defer_slow_decodes), a file over either of these is
# left to the pool's one killable process: a 24 MP iPhone HEIC stays on
# the fast path; a 48 MP one or a big PNG is decoded one at a time there,
# so that several workers never hold 0.5 GB each.
QUICK_MAX_WORK = 32_000_000
QUICK_MAX_BYTES = 256_000_000
_ISO_BMFF_EXTENSIONS = frozenset({".heic", ".heif", ".avif"})
_TRUNCATION_HINTS = ("truncated", "broken data stream", "premature end", "unexpected end")

_warnings_lock = threading.Lock()
_heif_lock = threading.Lock()
_heif_available: bool | None = None
_worker = threading.local()  # .quick_only: set by defer_slow_decodes


class DeferredDecode(DecodeError):
    """Raised only in a pool worker (defer_slow_decodes): this file costs
    more than QUICK_MAX_WORK or QUICK_MAX_BYTES, and the pool decodes it in
    its own process."""

    def __init__(self, reason: str = "deferred", detail: str = "") -> None:
        super().__init__(reason, detail)


def defer_slow_decodes() -> None:
    """Make decode_image in this thread raise DeferredDecode instead of
    decoding a file over QUICK_MAX_WORK or QUICK_MAX_BYTES. The decode pool
    calls it in each of its workers (threads or processes), whose decodes
    it cannot stop or whose memory adds up; never in the one process where
    it decodes those."""
    _worker.quick_only = True


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


def prepare() -> None:
    """Do now what a process's first decode would (pillow_heif, Pillow's
    plugins: ~0.3 s), so that the first file is not charged for it."""
    _formats(_ensure_heif_opener())


def _formats(heif: bool) -> tuple[str, ...]:
    """The registered names of _READ_FORMATS (HEIF only with pillow_heif)."""
    found = _formats_cache.get(heif)
    if found is None:
        Image.init()  # registers every plugin once (~35 ms); we choose below
        found = tuple(f for f in _READ_FORMATS
                      if f in Image.OPEN and (heif or f != "HEIF"))
        _formats_cache[heif] = found
    return found


def _other_format(fh: BinaryIO) -> str | None:
    """The name of a format Pillow knows and we do not open, from the
    file's first bytes only (each plugin's signature check; nothing is
    parsed or run), or None."""
    try:
        fh.seek(0)
        prefix = fh.read(16)
    except (OSError, ValueError):
        return None
    Image.init()
    for name, (factory, accept) in Image.OPEN.items():
        if name in _READ_FORMATS or accept is None:
            continue
        try:
            matched = accept(prefix)
        except Exception:  # noqa: BLE001 - a plugin's own check failing says nothing
            continue
        if matched is True or (matched and not isinstance(matched, str)):
            description = getattr(factory, "format_description", None)
            return f"{name} ({description})" if description else name
    return None


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


def _count_scans(fh: BinaryIO, stop: int) -> int:
    """Start-of-scan markers in the file, counted up to ``stop``. A marker
    in an EXIF thumbnail or an ICC profile may add one or two: harmless
    for a limit of hundreds. The file position is restored. numpy: 0.5 ms
    for a 1.4 MB photo, where bytes.count took 1.5 ms."""
    position = fh.tell()
    fh.seek(0)
    count, carry = 0, b""
    try:
        while count < stop:
            chunk = fh.read(1 << 22)
            if not chunk:
                break
            if carry == b"\xff" and chunk[0] == 0xDA:  # split between two reads
                count += 1
            data = np.frombuffer(chunk, dtype=np.uint8)
            after_ff = np.flatnonzero(data[:-1] == 0xFF) + 1
            count += int(np.count_nonzero(data[after_ff] == 0xDA))
            carry = chunk[-1:]
    finally:
        fh.seek(position)
    return count


def _uses_python_decoder(im: Image.Image) -> bool:
    # Pillow's decoders written in Python (BMP RLE among ours) are
    # registered in Image.DECODERS; the C ones are not.
    return any(tile[0] in Image.DECODERS for tile in getattr(im, "tile", ()))


def _check_budget(im: Image.Image, fh: BinaryIO, max_pixels: int) -> None:
    """Refuse from the header what would cost too much memory or time
    (DecodeError TOO_LARGE with the figures), or leave it to the pool's
    own process (DeferredDecode) in a worker that asked for that."""
    width, height = im.size
    pixels = width * height
    size = f"{width}x{height} pixels"
    if pixels > max_pixels:
        raise DecodeError(ErrorReason.TOO_LARGE, f"{size} is over the limit of {max_pixels}")
    progressive = im.format in _DRAFT_FORMATS and bool(im.info.get("progressive"))
    if progressive and pixels > max_pixels // 2:
        # A progressive JPEG cannot be decoded at a reduced scale the way
        # draft() decodes a baseline one: libjpeg keeps every coefficient of
        # the whole picture (about 3 bytes a pixel) until the last scan,
        # whatever the output size, and a 60-byte file can declare 170 Mpx.
        # Half the limit bounds one decode to ~270 MB (several run at once).
        raise DecodeError(
            ErrorReason.TOO_LARGE,
            f"progressive JPEG of {size} is over the limit of "
            f"{max_pixels // 2} for progressive files (decoding needs about "
            f"{pixels * 3 // 1_000_000} MB)",
        )
    if progressive:
        # A 97 KB file of 1,010 scans over 12 Mpx took 8 s, one of 3,000
        # scans over 48 Mpx over two minutes. Usual files have ~10.
        scans = _count_scans(fh, stop=MAX_WORK * _SCANS_PER_DECODE // pixels + 2)
        work, memory = pixels * max(scans, 1) // _SCANS_PER_DECODE, pixels * 3
        what = f"progressive JPEG of {size} in {scans} scans"
    elif im.format in _DRAFT_FORMATS:
        # draft(): entropy decoding at full size, the rest at 1/8 (the
        # 176 Mpx limit took 0.15 s and 12 MB).
        work, memory = pixels // 8, pixels // 16
        what = f"JPEG of {size}"
    else:
        work, memory = pixels, pixels * _BYTES_PER_PIXEL.get(str(im.format), 8)
        what = f"{im.format} picture of {size}"
        if _uses_python_decoder(im):
            work *= _PYTHON_DECODER_FACTOR
            what += " in an encoding Pillow decodes slowly (in Python)"
    if memory > MAX_DECODE_BYTES:
        raise DecodeError(ErrorReason.TOO_LARGE,
                          f"{what}: decoding it needs about {memory // 1_000_000} MB, over "
                          f"the limit of {MAX_DECODE_BYTES // 1_000_000} MB for one file")
    if work > MAX_WORK:
        raise DecodeError(ErrorReason.TOO_LARGE,
                          f"{what}: decoding it would take too long (the work of "
                          f"{work // 1_000_000} M pixels, over the limit of "
                          f"{MAX_WORK // 1_000_000} M)")
    if (work > QUICK_MAX_WORK or memory > QUICK_MAX_BYTES) \
            and getattr(_worker, "quick_only", False):
        raise DeferredDecode("deferred", f"{what}: decoded in a process of its own")


def _decode_opened(im: Image.Image, fh: BinaryIO, target: int, max_pixels: int,
                   squash_to: tuple[int, int] | None = None) -> DecodedImage:
    _check_budget(im, fh, max_pixels)
    raw_width, raw_height = im.size
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


def _unread_format(fh: BinaryIO, path: str, heif: bool) -> DecodeError:
    """Why a file that none of _READ_FORMATS opened is not decoded."""
    ext = os.path.splitext(path)[1].lower()
    if _looks_like_iso_bmff(fh) and (not heif or ext in _ISO_BMFF_EXTENSIONS):
        return DecodeError(ErrorReason.UNSUPPORTED,
                           "HEIC/HEIF/AVIF file that this installation cannot decode")
    other = _other_format(fh)
    if other is not None:
        return DecodeError(ErrorReason.UNSUPPORTED,
                           f"a file of another format, {other}, which imgdedupe does not "
                           f"open (it reads JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC and AVIF)")
    return DecodeError(ErrorReason.NOT_AN_IMAGE, "not an image, or a format imgdedupe does "
                       "not read (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC and AVIF)")


def decode_image(path: str, *, target: int = 448, max_pixels: int = 178_956_970,
                 squash_to: tuple[int, int] | None = None) -> DecodedImage:
    """Decode ``path`` to an upright RGB image whose shorter side is at most
    about ``target`` (never enlarged), or, with ``squash_to``, resized to
    exactly that (width, height) whatever its aspect ratio. ``width`` and
    ``height`` of the result are always the original's. Raises DecodeError,
    and nothing else."""
    heif = _ensure_heif_opener()
    try:
        if is_raw_file(path):  # LibRaw: the preview or a half-size decode, then as below
            return decode_raw(path, _decode_opened, _check_budget, target, max_pixels, squash_to)
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise DecodeError(ErrorReason.EMPTY, "the file is empty (0 bytes)")
            try:
                with _bomb_warning_ignored():
                    im = Image.open(fh, formats=_formats(heif))
                with im:
                    if not _over_pillow_warning_limit(im):
                        return _decode_opened(im, fh, target, max_pixels, squash_to)
                    # Rare (> 89 Mpx): Pillow may warn again while loading.
                    with _bomb_warning_ignored():
                        return _decode_opened(im, fh, target, max_pixels, squash_to)
            except UnidentifiedImageError:
                raise _unread_format(fh, path, heif) from None
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
    if is_raw_file(path):
        return raw_size(path)
    heif = _ensure_heif_opener()
    try:
        with open(path, "rb") as fh:
            with _bomb_warning_ignored():
                im = Image.open(fh, formats=_formats(heif))
            with im:
                width, height = im.size
                if _orientation(im, allow_load=False) in _SWAPPED_ORIENTATIONS:
                    width, height = height, width
                return width, height
    except Exception:  # a size is only a hint for choosing the keeper
        logger.debug("cannot read the size of %r", path, exc_info=True)
        return None

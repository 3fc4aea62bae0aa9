"""What a photo's file says about where it came from: the camera's EXIF
(make and model, capture time, GPS), the program that last saved it, and
its format. The keeper rules (groups.keeper_rules) use them to prefer the
camera's original over an export.

Read lazily and only for the members of groups (a small part of a
library), from the header alone: no pixel is decoded. Never raises:
broken or missing EXIF is common, and a fact is only a hint.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from PIL import Image

from imgdedupe.core.images.capture_time import capture_time
from imgdedupe.core.images.decode import (  # the contained opening read_image_size uses
    _bomb_warning_ignored,
    _ensure_heif_opener,
    _formats,
)
from imgdedupe.core.records import FileLike

log = logging.getLogger(__name__)

MAKE, MODEL, SOFTWARE = 0x010F, 0x0110, 0x0131
GPS_IFD = 0x8825
GPS_LATITUDE, GPS_LONGITUDE = 0x0002, 0x0004

# Formats a camera or a phone writes its photos in; anything else (WebP,
# PNG, GIF, BMP, AVIF) is an export. RAW files are named by extension: a
# RAW is the most original copy there is.
RAW_EXTENSIONS = frozenset({".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf", ".orf", ".rw2"})
CAMERA_FORMATS = frozenset({"JPEG", "MPO", "HEIF", "TIFF", "RAW"})
_FORMAT_OF_EXTENSION = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".png": "PNG",
                        ".webp": "WEBP", ".gif": "GIF", ".bmp": "BMP", ".tif": "TIFF",
                        ".tiff": "TIFF", ".heic": "HEIF", ".heif": "HEIF", ".avif": "AVIF",
                        **{ext: "RAW" for ext in RAW_EXTENSIONS}}
# Programs that re-save a photo after the camera: a Software tag naming one
# marks an edit or an export. Cameras and phones write their firmware
# there too ("Ver.1.01", "HDR+ 1.0", "17.2"), so only known editors count.
EDITORS = ("photoshop", "lightroom", "gimp", "snapseed", "picasa", "paint.net", "affinity",
           "darktable", "rawtherapee", "capture one", "luminar", "acdsee", "pixelmator",
           "photoscape", "irfanview", "xnview", "fotor", "canva", "instagram", "vsco",
           "facetune", "polarr", "digikam", "shotwell", "imagemagick", "graphicsmagick",
           "photo editor", "photos legacy", "windows photo", "preview", "photopea")


@dataclass(frozen=True, slots=True)
class PhotoFacts:
    """``format``: Pillow's name (JPEG, PNG, WEBP, ...) or RAW; ``camera``:
    "Make Model" from EXIF; ``taken``: EXIF DateTimeOriginal in seconds
    (images.capture_time); ``editor``: the Software tag when it names a
    known editor."""

    format: str | None = None
    camera: str | None = None
    taken: float | None = None
    gps: bool = False
    editor: str | None = None
    # A JPEG's luminance quantization table, summed: smaller is finer, a
    # higher quality setting. Read from the header, like the rest.
    jpeg_quantization: int | None = None
    grey: bool = False  # stored as grey levels (mode L): of copies, the edit of a colour one

    @property
    def camera_format(self) -> bool:
        return self.format in CAMERA_FORMATS


def format_of_name(path: str) -> str | None:
    return _FORMAT_OF_EXTENSION.get(os.path.splitext(path)[1].lower())


def read_photo_facts(path: str) -> PhotoFacts:
    """The facts of one file; the format alone (from its name) when Pillow
    cannot read it, or nothing."""
    by_name = format_of_name(path)
    if by_name == "RAW":
        return PhotoFacts("RAW")  # Pillow reads no RAW; its format says enough
    heif = _ensure_heif_opener()
    try:
        with open(path, "rb") as fh:
            with _bomb_warning_ignored():
                im = Image.open(fh, formats=_formats(heif))
            with im:
                return _facts(im)
    except Exception:  # a fact is only a hint for choosing the keeper
        log.debug("cannot read the EXIF of %r", path, exc_info=True)
        return PhotoFacts(by_name)


def _facts(im: Image.Image) -> PhotoFacts:
    fmt = im.format
    tables = getattr(im, "quantization", None) if fmt == "JPEG" else None
    quantization = sum(tables[0]) if tables and 0 in tables else None
    grey = im.mode in ("1", "L", "LA", "I", "I;16")
    if fmt == "PNG" and "exif" not in im.info:
        return PhotoFacts(fmt, grey=grey)  # its EXIF may follow the pixels: not worth a full read
    try:
        exif = im.getexif()
    except Exception:
        return PhotoFacts(fmt, jpeg_quantization=quantization, grey=grey)
    make, model = _text(exif.get(MAKE)), _text(exif.get(MODEL))
    # Many makers repeat the make in the model ("Canon" "Canon EOS R5").
    camera = model if make and model and model.lower().startswith(make.lower()) \
        else " ".join(t for t in (make, model) if t) or None
    software = _text(exif.get(SOFTWARE))
    editor = software if software and any(e in software.lower() for e in EDITORS) else None
    try:
        gps_ifd = exif.get_ifd(GPS_IFD)
        gps = GPS_LATITUDE in gps_ifd and GPS_LONGITUDE in gps_ifd
    except Exception:
        gps = False
    return PhotoFacts(fmt, camera, capture_time(exif), gps, editor, quantization, grey)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    return value.strip("\x00 ") or None


class FactsCache:
    """Facts read once per file version (path, size, mtime), shared by the
    threads that choose keepers. Byte copies share their facts, so a caller
    may pass any copy."""

    def __init__(self) -> None:
        self._facts: dict[tuple[str, int, int], PhotoFacts] = {}
        self._lock = threading.Lock()

    def __call__(self, file: FileLike) -> PhotoFacts:
        key = (file.path, file.size, file.mtime_ns)
        with self._lock:
            known = self._facts.get(key)
        if known is None:
            known = read_photo_facts(file.path)  # outside the lock: reads run in parallel
            with self._lock:
                self._facts[key] = known
        return known

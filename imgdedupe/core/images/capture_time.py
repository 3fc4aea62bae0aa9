"""When a photo was taken, from its EXIF: DateTimeOriginal plus
SubSecTimeOriginal, so two frames of one burst (same second) differ.

Verification (verify.tiers) uses it: two photos taken at different moments
are at most a similar shot, however well their pixels align. The time is
the camera's wall clock without a zone; only differences between photos
are used, so it is read as if it were UTC.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping
from typing import Any

EXIF_IFD = 0x8769
DATE_TIME_ORIGINAL = 0x9003
SUBSEC_TIME_ORIGINAL = 0x9291
DATE_TIME = 0x0132  # the file's last change by the camera or an editor: not used


def capture_time(exif: Any) -> float | None:
    """Seconds (with the sub-second fraction) of an Image.Exif, or None
    when the photo says nothing usable. Never raises: broken EXIF is common."""
    try:
        ifd: Mapping[int, Any] = exif.get_ifd(EXIF_IFD)
        stamp = ifd.get(DATE_TIME_ORIGINAL)
        if not stamp:
            return None
        seconds = float(calendar.timegm(time.strptime(_text(stamp)[:19], "%Y:%m:%d %H:%M:%S")))
    except Exception:  # missing IFD, "0000:00:00 00:00:00", junk bytes
        return None
    return seconds + _fraction(ifd.get(SUBSEC_TIME_ORIGINAL))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip("\x00 ")


def _fraction(subsec: Any) -> float:
    """"08" -> 0.08: the digits are the decimals of the second."""
    digits = _text(subsec) if subsec is not None else ""
    digits = "".join(ch for ch in digits if ch.isdigit())[:6]
    return int(digits) / 10 ** len(digits) if digits else 0.0


def capture_time_of(stamp: Any, subsec: Any = None) -> float | None:
    """capture_time for a DateTimeOriginal (and SubSecTimeOriginal) read
    from elsewhere than Pillow's EXIF (images.raw_header); never raises."""
    try:
        seconds = float(calendar.timegm(time.strptime(_text(stamp)[:19], "%Y:%m:%d %H:%M:%S")))
    except Exception:
        return None
    return seconds + _fraction(subsec)

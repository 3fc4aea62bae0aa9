"""Byte-level mutations of small real image files, for test_hostile_images.py
and bench/fuzz_decode.py (which runs many more of them)."""

from __future__ import annotations

import io
import os
import time
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
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        save("photo.heic", picture, "HEIF", quality=60)
    except Exception:  # noqa: BLE001 - HEIC only where pillow_heif can write it
        pass
    return out


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

"""decode_image() and read_image_size(): reason codes, speed paths, modes."""

from __future__ import annotations

import builtins
import dataclasses
import errno
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from PIL import Image, ImageFile, JpegImagePlugin

from imgdedupe.core.errors import DecodeError
from imgdedupe.core.images import decode as decode_module
from imgdedupe.core.images.decode import DecodedImage, decode_image, read_image_size
from imgdedupe.core.records import ErrorReason

if TYPE_CHECKING:
    from conftest import PhotoTree

GREY = (128, 128, 128)


def _reason(path: str | os.PathLike[str], **kwargs: Any) -> str:
    with pytest.raises(DecodeError) as info:
        decode_image(os.fspath(path), **kwargs)
    return info.value.reason


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    size = (64, 48) if a.width >= a.height else (48, 64)
    x = np.asarray(a.convert("RGB").resize(size), dtype=np.float32)
    y = np.asarray(b.convert("RGB").resize(size), dtype=np.float32)
    return float(np.abs(x - y).mean())


def _load(path: str | os.PathLike[str]) -> Image.Image:
    """Open, read and close: a bare Image.open leaks a file handle."""
    with Image.open(path) as im:
        im.load()
        return im.copy()


def _stored_mode(path: str | os.PathLike[str]) -> str:
    with Image.open(path) as im:
        return im.mode


def _pixel(decoded: DecodedImage, xy: tuple[int, int]) -> tuple[int, ...]:
    value = decoded.image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def _fake_open(monkeypatch: pytest.MonkeyPatch, victim: str, exc: OSError) -> None:
    real_open = builtins.open

    def fake(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str) and file == victim:
            raise exc
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake)


# -- reason codes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "reason"),
    [
        ("empty", ErrorReason.EMPTY),
        ("truncated_jpeg", ErrorReason.TRUNCATED),
        ("truncated_png", ErrorReason.TRUNCATED),
        ("not_an_image", ErrorReason.NOT_AN_IMAGE),
        ("bomb", ErrorReason.TOO_LARGE),
    ],
)
def test_bad_files_give_their_reason(photo_tree: PhotoTree, role: str, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_image(photo_tree.bad[role])
    assert info.value.reason == reason
    assert info.value.detail  # a human sentence for the report


def test_truncated_images_stay_errors() -> None:
    # Process-wide switch; with it True truncated files decode half grey.
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_bomb_is_rejected_without_decoding(photo_tree: PhotoTree) -> None:
    start = time.perf_counter()
    assert _reason(photo_tree.bad["bomb"]) == ErrorReason.TOO_LARGE
    assert time.perf_counter() - start < 0.5


def test_max_pixels_is_checked_before_loading(
    photo_tree: PhotoTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_load(self: Image.Image) -> None:
        raise AssertionError("loaded an image over max_pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_load)
    assert _reason(photo_tree.bases[0], max_pixels=640 * 480 - 1) == ErrorReason.TOO_LARGE


def test_pillow_bomb_warning_is_local_and_honours_max_pixels(
    photo_tree: PhotoTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 640x480 is over this limit (Pillow warns; pytest makes warnings errors)
    # but under max_pixels, so the caller's limit decides: it decodes.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200_000)
    assert decode_image(photo_tree.bases[0]).width == 640
    # Over twice Pillow's limit Pillow refuses by itself: still TOO_LARGE.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    assert _reason(photo_tree.bases[0]) == ErrorReason.TOO_LARGE
    assert read_image_size(photo_tree.bases[0]) is None


def test_deleted_file_is_vanished(photo_tree: PhotoTree) -> None:
    os.remove(photo_tree.bases[1])
    assert _reason(photo_tree.bases[1]) == ErrorReason.VANISHED


def test_permission_error_simulated(photo_tree: PhotoTree, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated because the tests run as root, who reads chmod 000 files.
    path = photo_tree.unreadable
    _fake_open(monkeypatch, path, PermissionError(errno.EACCES, "Permission denied", path))
    with pytest.raises(DecodeError) as info:
        decode_image(path)
    assert info.value.reason == ErrorReason.PERMISSION
    assert "Permission denied" in info.value.detail


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root reads chmod 000 files"
)
def test_permission_error_for_real(photo_tree: PhotoTree) -> None:
    assert _reason(photo_tree.unreadable) == ErrorReason.PERMISSION


def test_other_os_errors_are_io_errors(
    photo_tree: PhotoTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = photo_tree.bases[0]
    _fake_open(monkeypatch, path, OSError(errno.EIO, "Input/output error", path))
    assert _reason(path) == ErrorReason.IO_ERROR
    assert _reason(photo_tree.root) == ErrorReason.IO_ERROR  # a folder


def test_unexpected_exceptions_become_decode_failed(
    photo_tree: PhotoTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_open(*args: Any, **kwargs: Any) -> Image.Image:
        raise KeyError("a plugin bug")

    monkeypatch.setattr(Image, "open", broken_open)
    assert _reason(photo_tree.bases[0]) == ErrorReason.DECODE_FAILED


def test_every_file_in_the_tree_decodes_or_fails_cleanly(photo_tree: PhotoTree) -> None:
    for path in sorted(photo_tree.expected - {photo_tree.unreadable}):
        try:
            decoded = decode_image(path)
        except DecodeError as exc:
            assert path in photo_tree.bad.values(), (path, exc)
        else:
            assert decoded.image.mode == "RGB"
            assert path not in photo_tree.bad.values()


# -- size, draft mode and orientation ------------------------------------


def test_large_jpeg_uses_draft_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photo_maker: Callable[..., Image.Image]
) -> None:
    path = tmp_path / "big.jpg"
    photo_maker(path, 7, size=(4000, 3000))
    drafted: list[tuple[int, int]] = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, *args: Any, **kwargs: Any) -> Any:
        result = real_draft(self, *args, **kwargs)
        drafted.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    decoded = decode_image(str(path), target=448)
    assert (decoded.width, decoded.height) == (4000, 3000)
    assert drafted == [(1000, 750)]  # libjpeg decoded at 1/4 scale
    assert 448 <= min(decoded.image.size) <= 900
    assert decoded.image.mode == "RGB" and decoded.format == "JPEG"


def test_reduces_shorter_side_to_target(photo_tree: PhotoTree) -> None:
    decoded = decode_image(photo_tree.near["png"], target=224)
    assert decoded.image.size == (299, 224)
    assert (decoded.width, decoded.height) == (640, 480)


def test_never_upscales(tmp_path: Path) -> None:
    path = tmp_path / "tiny.png"
    Image.new("RGB", (100, 80), (10, 200, 30)).save(path)
    decoded = decode_image(str(path), target=448)
    assert decoded.image.size == (100, 80)
    assert decoded.image.getpixel((5, 5)) == (10, 200, 30)


def test_exif_orientation_six_is_upright(photo_tree: PhotoTree) -> None:
    stored = _load(photo_tree.near["exif6"])
    assert stored.size == (480, 640)  # pixels as stored: portrait
    decoded = decode_image(photo_tree.near["exif6"])
    assert (decoded.width, decoded.height) == (640, 480)
    assert decoded.image.width > decoded.image.height
    base = decode_image(photo_tree.bases[0]).image
    upright = _mean_abs_diff(decoded.image, base)
    sideways = _mean_abs_diff(stored.resize((640, 480)), base)
    assert upright < 6 < sideways


def test_rotated_pixels_without_exif_stay_rotated(photo_tree: PhotoTree) -> None:
    decoded = decode_image(photo_tree.near["rot90"])
    assert (decoded.width, decoded.height) == (480, 640)
    assert decoded.image.height > decoded.image.width


def test_read_image_size(photo_tree: PhotoTree) -> None:
    assert read_image_size(photo_tree.bases[0]) == (640, 480)
    assert read_image_size(photo_tree.near["exif6"]) == (640, 480)
    assert read_image_size(photo_tree.near["rot90"]) == (480, 640)
    assert read_image_size(photo_tree.near["png"]) == (640, 480)
    assert read_image_size(photo_tree.bad["not_an_image"]) is None
    assert read_image_size(photo_tree.bad["empty"]) is None
    assert read_image_size(os.path.join(photo_tree.root, "missing.jpg")) is None


def test_decoded_image_is_frozen(photo_tree: PhotoTree) -> None:
    decoded = decode_image(photo_tree.bases[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.width = 1  # type: ignore[misc]
    decoded.image.load()  # still usable after the file was closed


# -- modes ----------------------------------------------------------------


def test_cmyk_jpeg(tmp_path: Path, photo_tree: PhotoTree) -> None:
    base = _load(photo_tree.near["png"]).convert("RGB")
    path = tmp_path / "cmyk.jpg"
    base.convert("CMYK").save(path, quality=95)
    assert _stored_mode(path) == "CMYK"
    decoded = decode_image(str(path))
    assert decoded.image.mode == "RGB"
    assert _mean_abs_diff(decoded.image, base) < 6


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert _stored_mode(path) == "I;16"
    decoded = decode_image(str(path))
    assert decoded.image.mode == "RGB"
    pixels = np.asarray(decoded.image)
    assert pixels[:, 0].max() <= 2 and pixels[:, -1].min() >= 253
    assert 110 < pixels.mean() < 145  # Pillow's own convert would be ~255


def test_32_bit_integer_image(tmp_path: Path) -> None:
    path = tmp_path / "int.tif"
    Image.fromarray(np.full((40, 50), 40000, dtype=np.int32), "I").save(path)
    decoded = decode_image(str(path))
    assert decoded.image.getpixel((0, 0)) == (156, 156, 156)  # 40000 >> 8


def test_palette_with_transparency(tmp_path: Path) -> None:
    im = Image.new("P", (40, 30), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.paste(1, (20, 0, 40, 30))
    for name in ("pal.png", "pal.gif"):
        path = tmp_path / name
        im.save(path, transparency=0)
        decoded = decode_image(str(path))
        assert decoded.image.mode == "RGB"
        assert _pixel(decoded, (2, 2)) == GREY  # transparent: neutral grey
        assert _pixel(decoded, (30, 2)) == (0, 0, 255)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_grey(tmp_path: Path, mode: str) -> None:
    im = Image.new("RGBA", (40, 30), (255, 255, 255, 255))
    im.paste((0, 0, 0, 0), (0, 0, 20, 30))
    path = tmp_path / f"alpha_{mode}.png"
    im.convert(mode).save(path)
    decoded = decode_image(str(path))
    assert decoded.image.mode == "RGB"
    assert _pixel(decoded, (2, 2)) == GREY
    assert _pixel(decoded, (30, 2)) == (255, 255, 255)


@pytest.mark.parametrize(("mode", "ext"), [("1", "png"), ("L", "jpg"), ("LAB", "tif")])
def test_other_modes_become_rgb(tmp_path: Path, mode: str, ext: str) -> None:
    path = tmp_path / f"m.{ext}"
    Image.new("RGB", (30, 20), (255, 255, 255)).convert(mode).save(path)
    decoded = decode_image(str(path))
    assert decoded.image.mode == "RGB" and decoded.image.size == (30, 20)


@pytest.mark.parametrize("ext", ["gif", "webp", "png"])
def test_animation_gives_first_frame(tmp_path: Path, ext: str) -> None:
    colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200)]
    frames = [Image.new("RGB", (32, 24), c) for c in colours]
    path = tmp_path / f"anim.{ext}"
    extra = {"lossless": True} if ext == "webp" else {}
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, **extra)
    with Image.open(path) as stored:
        assert getattr(stored, "n_frames", 1) == 3
    decoded = decode_image(str(path))
    assert decoded.image.mode == "RGB"
    r, g, b = _pixel(decoded, (10, 10))
    assert r > 150 and g < 50 and b < 50


# -- HEIF / AVIF -----------------------------------------------------------


def _write_heif(path: Path, image: Image.Image) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    try:
        image.save(path, quality=90)
    except (KeyError, OSError, RuntimeError) as exc:  # no HEVC encoder in this build
        pytest.skip(f"cannot write HEIF here: {exc}")


@pytest.mark.parametrize("ext", ["heic", "avif"])
def test_heif_and_avif(tmp_path: Path, photo_tree: PhotoTree, ext: str) -> None:
    base = _load(photo_tree.near["png"]).convert("RGB")
    path = tmp_path / f"photo.{ext}"
    _write_heif(path, base)
    decoded = decode_image(str(path), target=224)
    assert decoded.format == ("HEIF" if ext == "heic" else "AVIF")
    assert decoded.image.mode == "RGB" and decoded.image.size == (299, 224)
    assert (decoded.width, decoded.height) == (640, 480)
    assert read_image_size(str(path)) == (640, 480)
    assert _mean_abs_diff(decoded.image, base) < 8


def test_heif_without_pillow_heif_is_unsupported(
    tmp_path: Path, photo_tree: PhotoTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "photo.heic"
    _write_heif(path, _load(photo_tree.bases[0]).resize((64, 48)))
    # As if pillow_heif were missing: no opener registered, none to register.
    monkeypatch.setattr(decode_module, "_heif_available", False)
    monkeypatch.setattr(Image, "ID", [i for i in Image.ID if i != "HEIF"])
    assert _reason(path) == ErrorReason.UNSUPPORTED

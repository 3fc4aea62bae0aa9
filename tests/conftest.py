"""Shared fixtures: every test image is generated here, seeded, in tmp_path.

No binary fixtures live in the repository: generated pictures are
reproducible, licence-free and can be made in whatever shape a test needs.
"""

from __future__ import annotations

import http.server
import os
import random
import shutil
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

ORIENTATION_TAG = 0x0112


def make_photo(
    path: str | os.PathLike[str] | None, seed: int, size: tuple[int, int] = (640, 480)
) -> Image.Image:
    """A photo-like RGB picture: smooth colour gradients, a few shapes and
    mild noise. Different seeds look clearly different; the same seed gives
    the same pixels. Saved to ``path`` (format from the extension) if given."""
    width, height = size
    rng = np.random.default_rng(seed)
    # A coarse random colour grid blown up with bicubic gives the smooth
    # gradients of sky, walls and skin, cheaply at any size.
    grid = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    image = Image.fromarray(grid, "RGB").resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    shapes = random.Random(seed)
    for _ in range(6):
        x0, x1 = sorted(shapes.uniform(0, width) for _ in range(2))
        y0, y1 = sorted(shapes.uniform(0, height) for _ in range(2))
        colour = tuple(shapes.randrange(256) for _ in range(3))
        if shapes.random() < 0.5:
            draw.ellipse((x0, y0, x1 + 8, y1 + 8), fill=colour)
        else:
            draw.rectangle((x0, y0, x1 + 8, y1 + 8), fill=colour)
    # Noise from a small tile repeated: sensor-like texture without paying
    # for millions of random numbers on the big test pictures.
    tile = rng.integers(-6, 7, size=(min(height, 256), min(width, 256), 3), dtype=np.int16)
    reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]), 1)
    noise = np.tile(tile, reps)[:height, :width]
    pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if path is not None:
        save_image(image, path)
    return image


def save_image(image: Image.Image, path: str | os.PathLike[str], **params: object) -> None:
    """Save with sensible defaults (JPEG quality 90), creating parent folders."""
    os.makedirs(os.path.dirname(os.fspath(path)), exist_ok=True)
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext in (".jpg", ".jpeg"):
        params.setdefault("quality", 90)
    image.save(path, **params)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png_bomb(path: str | os.PathLike[str], side: int = 50_000) -> None:
    """A ~100-byte PNG whose header declares side x side pixels: a
    decompression bomb that costs nothing to write or to reject."""
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grey
    idat = zlib.compress(b"\x00" * 64)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
    data += _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    Path(path).write_bytes(data)


def write_truncated(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Copy the first 60% of ``source``'s bytes: a download cut short."""
    data = Path(source).read_bytes()
    Path(dest).write_bytes(data[: int(len(data) * 0.6)])


@dataclass
class PhotoTree:
    """Paths of a generated tree, by role. All paths are absolute str.

    The only duplicates in the tree are ``exact_copy`` and ``near`` (all of
    bases[0]); every other picture has its own seed. Links are None where
    the platform cannot make symlinks.
    """

    root: str
    outside: str  # a folder next to root, never to be yielded
    bases: tuple[str, str, str]  # three distinct photos (seeds 1, 2, 3)
    exact_copy: str  # byte copy of bases[0]
    near: dict[str, str]  # role -> near-duplicate of bases[0]
    bad: dict[str, str]  # role -> broken file (empty, truncated_jpeg, truncated_png, ...)
    hidden_image: str
    non_image: str  # notes.txt: not an image extension
    unreadable: str  # chmod 000 copy of a photo (still readable as root)
    non_utf8: str | None  # None where the file system refuses such names
    loop_link: str | None  # root/2020/loop -> ..; None without symlinks
    outside_file_link: str | None  # root/misc/elsewhere.jpg -> outside/far.jpg
    outside_dir_link: str | None  # root/misc/elsewhere_dir -> outside
    expected: frozenset[str] = frozenset()  # exactly what walk(root) yields

    @property
    def base_pixels(self) -> Image.Image:
        """The pixels bases[0] was made from (before JPEG compression)."""
        return make_photo(None, 1)


def _symlink(target: str, link: str, *, is_dir: bool) -> str | None:
    try:
        os.symlink(target, link, target_is_directory=is_dir)
    except (OSError, NotImplementedError):  # Windows without the privilege
        return None
    return link


def build_photo_tree(base_dir: Path) -> PhotoTree:
    root = str(base_dir / "photos")
    outside = str(base_dir / "outside")
    j = os.path.join
    bases = (
        j(root, "2019", "summer", "beach.jpg"),
        j(root, "2020", "city.jpg"),
        j(root, "2021", "trip", "deep", "forest.JPG"),  # upper-case extension
    )
    pixels = [make_photo(path, seed) for seed, path in enumerate(bases, start=1)]
    beach = pixels[0]

    exact_copy = j(root, "2019", "summer", "copy (1).jpg")
    shutil.copyfile(bases[0], exact_copy)

    exif6 = Image.Exif()
    exif6[ORIENTATION_TAG] = 6  # viewers rotate 90 degrees clockwise to show it
    near = {
        "small": j(root, "near", "beach_small.jpg"),
        "crop": j(root, "near", "beach_crop.jpg"),
        "rot90": j(root, "near", "beach_rot90.jpg"),
        "exif6": j(root, "near", "beach_exif6.jpg"),
        "png": j(root, "near", "beach.png"),
    }
    save_image(beach.resize((320, 240), Image.Resampling.LANCZOS), near["small"], quality=70)
    save_image(beach.crop((32, 24, 608, 456)), near["crop"])
    save_image(beach.transpose(Image.Transpose.ROTATE_90), near["rot90"])
    # Stored 90 degrees counter-clockwise: orientation 6 turns it upright.
    save_image(beach.transpose(Image.Transpose.ROTATE_90), near["exif6"], exif=exif6.tobytes())
    save_image(beach, near["png"])

    bad_dir = j(root, "bad")
    bad = {
        "empty": j(bad_dir, "empty.jpg"),
        "truncated_jpeg": j(bad_dir, "truncated.jpg"),
        "truncated_png": j(bad_dir, "truncated.png"),
        "not_an_image": j(bad_dir, "notes.jpg"),
        "bomb": j(bad_dir, "bomb.png"),
    }
    os.makedirs(bad_dir)
    Path(bad["empty"]).write_bytes(b"")
    write_truncated(bases[1], bad["truncated_jpeg"])
    write_truncated(near["png"], bad["truncated_png"])
    Path(bad["not_an_image"]).write_text("shopping list: milk, eggs\n", encoding="utf-8")
    make_png_bomb(bad["bomb"])

    non_image = j(root, "2020", "notes.txt")
    Path(non_image).write_text("not a picture\n", encoding="utf-8")
    # Distinct seeds: the only duplicates in the tree are exact_copy and near.
    hidden_image = j(root, ".hidden", "secret.jpg")
    make_photo(hidden_image, 6)
    unreadable = j(root, "2020", "locked.jpg")
    make_photo(unreadable, 5)
    os.chmod(unreadable, 0)

    non_utf8: str | None = j(root, "2020", os.fsdecode(b"caf\xe9.jpg"))
    try:
        make_photo(non_utf8, 4)
    except (OSError, UnicodeError):  # macOS and Windows refuse such names
        non_utf8 = None

    make_photo(j(outside, "far.jpg"), 99)
    os.makedirs(j(root, "misc"))
    loop_link = _symlink("..", j(root, "2020", "loop"), is_dir=True)
    outside_file_link = _symlink(
        j(outside, "far.jpg"), j(root, "misc", "elsewhere.jpg"), is_dir=False
    )
    outside_dir_link = _symlink(outside, j(root, "misc", "elsewhere_dir"), is_dir=True)

    expected = {*bases, exact_copy, *near.values(), *bad.values(), unreadable}
    if non_utf8 is not None:
        expected.add(non_utf8)
    return PhotoTree(
        root=root,
        outside=outside,
        bases=bases,
        exact_copy=exact_copy,
        near=near,
        bad=bad,
        hidden_image=hidden_image,
        non_image=non_image,
        unreadable=unreadable,
        non_utf8=non_utf8,
        loop_link=loop_link,
        outside_file_link=outside_file_link,
        outside_dir_link=outside_dir_link,
        expected=frozenset(expected),
    )


@pytest.fixture
def photo_tree(tmp_path: Path) -> PhotoTree:
    """A folder tree of photos, near-duplicates and broken files; see PhotoTree."""
    return build_photo_tree(tmp_path)


@pytest.fixture
def photo_maker() -> Callable[..., Image.Image]:
    """``make_photo`` for tests that cannot import conftest."""
    return make_photo


class FileServer:
    """A loopback HTTP server of in-memory files: the net, offline."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                body = files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # client went away (cancel test)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True  # server_close() must not wait on a stuck handler
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[FileServer]:
    """``server.files[path] = bytes`` serves them at ``server.base + path``."""
    srv = FileServer()
    yield srv
    srv.close()


# -- the cache and the trash of the trash tests (tests/core/test_actions.py,
# tests/reliability/test_last_copy.py) --------------------------------------
@pytest.fixture
def db(tmp_path: Path) -> Iterator[object]:
    """A fresh cache database in tmp_path."""
    from imgdedupe.core.storage.store import Store

    with Store(tmp_path / "cache.db") as store:
        yield store


@pytest.fixture
def fdo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """The freedesktop trash, its home in tmp_path: never the real one."""
    from imgdedupe.core.actions.trash_backends import FreedesktopTrash

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return FreedesktopTrash()

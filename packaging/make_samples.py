#!/usr/bin/env python3
"""Build the bundled demo photos in ``resources/samples/``.

The README demo ("install and run the app on the bundled sample photos")
scans this folder.  Every picture is derived from an image that ships inside
the scikit-image package (``skimage/data``) and that scikit-image itself
documents as public domain or CC0.  Nothing else may be used as a source; in
particular nothing from the research-only evaluation set.

The script is deterministic: it uses no randomness at all (every transform is
a fixed geometric/colour operation), writes no timestamps or other metadata,
and the same Pillow build produces byte-identical output on every run.  Run it from anywhere::

    python packaging/make_samples.py            # (re)write resources/samples/
    python packaging/make_samples.py --check    # also verify the result

Dependencies: Pillow, plus scikit-image only to locate the source files and
read their licence statements (images are opened with Pillow, not skimage).

Output (also written to ``LICENSES.md`` and ``EXPECTED.md`` in the folder):

* six distinct base photos in ``Holiday/``, ``Phone/`` and ``Archive/``,
  JPEG quality 90, long side <= 1024 px;
* realistic duplicates of four of them (exact byte copy, smaller re-encode,
  crop, rotated pixels, EXIF-rotated, PNG, brightness change, greyscale, WebP);
* one truncated JPEG, ``Phone/broken.jpg``, which the app must report as bad.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import io
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import skimage.data
from PIL import Image, ImageEnhance, ImageOps

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "resources" / "samples"
SUBFOLDERS = ("Holiday", "Phone", "Archive")
MAX_SIDE = 1024
BASE_QUALITY = 90
EXIF_ORIENTATION = 0x0112


# --------------------------------------------------------------------------
# Sources: only scikit-image data images documented as public domain / CC0.
# ``licence`` is quoted verbatim from the docstring of the named
# ``skimage.data`` function; ``_check_licences`` fails the build if the quote
# is no longer found there (e.g. after a scikit-image upgrade).
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    key: str  # skimage.data function name
    filename: str  # file inside skimage/data
    licence: str  # verbatim from the function's docstring
    credit: str  # who made it, as scikit-image states
    link: str = ""  # rights statement linked from the docstring, if any


SOURCES = {
    s.key: s
    for s in (
        Source(
            "astronaut",
            "astronaut.png",
            "No known copyright restrictions, released into the public domain.",
            "NASA (Eileen Collins), via the NASA Great Images database",
        ),
        Source(
            "coffee",
            "coffee.png",
            "No copyright restrictions.  CC0 by the photographer (Rachel Michetti).",
            "Rachel Michetti, courtesy of Pikolo Espresso Bar",
        ),
        Source(
            "chelsea",
            "chelsea.png",
            "No copyright restrictions.  CC0 by the photographer (Stefan van der Walt).",
            "Stefan van der Walt",
        ),
        Source(
            "rocket",
            "rocket.jpg",
            "The image was captured by SpaceX and `released in the public domain",
            "SpaceX (DSCOVR launch on Falcon 9)",
            "http://arstechnica.com/tech-policy/2015/03/"
            "elon-musk-puts-spacex-photos-into-the-public-domain/",
        ),
        Source(
            "hubble_deep_field",
            "hubble_deep_field.jpg",
            "The image was captured by NASA and `may be freely used in the public domain",
            "NASA / Hubble Space Telescope (eXtreme Deep Field)",
            "http://www.nasa.gov/audience/formedia/features/MP_Photo_Guidelines.html",
        ),
        Source(
            "camera",
            "camera.png",
            "No copyright restrictions. CC0 by the photographer (Lav Varshney).",
            "Lav Varshney",
        ),
        Source(
            "brick",
            "brick.png",
            "licensed under the Creative Commons CC0 License.",
            "CC0Textures (Bricks25), as cropped by scikit-image",
        ),
    )
}


def _data_dir() -> Path:
    return Path(skimage.data.__file__).resolve().parent


def _check_licences() -> None:
    for src in SOURCES.values():
        doc = inspect.getdoc(getattr(skimage.data, src.key)) or ""
        # getdoc dedents; compare with whitespace collapsed.
        if " ".join(src.licence.split()) not in " ".join(doc.split()):
            raise SystemExit(
                f"licence statement for skimage.data.{src.key} not found in its "
                f"docstring; re-check before shipping: {src.licence!r}"
            )
        if not (_data_dir() / src.filename).is_file():
            raise SystemExit(f"missing {src.filename} in {_data_dir()}")


def load(key: str) -> Image.Image:
    """Open a source image with Pillow, as RGB (or L for grey sources)."""
    with Image.open(_data_dir() / SOURCES[key].filename) as im:
        im.load()
        mode = "L" if im.mode in ("L", "I;16", "1") else "RGB"
        im = im.convert(mode)
    if max(im.size) > MAX_SIDE:
        scale = MAX_SIDE / max(im.size)
        size = (round(im.width * scale), round(im.height * scale))
        im = im.resize(size, Image.Resampling.LANCZOS)
    return im


# --------------------------------------------------------------------------
# Encoders (no metadata, no timestamps => byte-stable output).
# --------------------------------------------------------------------------


def jpeg_bytes(im: Image.Image, quality: int = BASE_QUALITY, exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    kw: dict = {"quality": quality}
    if exif is not None:
        kw["exif"] = exif
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def webp_bytes(im: Image.Image, quality: int = 80) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "WEBP", quality=quality, method=6)
    return buf.getvalue()


# --------------------------------------------------------------------------
# The sample set.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    path: str  # relative to OUT
    source: str  # key into SOURCES
    transform: str  # human description, goes into LICENSES.md
    group: str  # ground-truth group label ("" for the corrupt file)
    make: Callable[[dict[str, bytes]], bytes]  # gets already-built files


def _base(key: str) -> Callable[[dict[str, bytes]], bytes]:
    return lambda built: jpeg_bytes(load(key))


def _decoded(built: dict[str, bytes], path: str) -> Image.Image:
    with Image.open(io.BytesIO(built[path])) as im:
        im.load()
        return im.copy()


def _exact_copy(path: str) -> Callable[[dict[str, bytes]], bytes]:
    return lambda built: built[path]


def _half_q70(path: str) -> Callable[[dict[str, bytes]], bytes]:
    def make(built: dict[str, bytes]) -> bytes:
        im = _decoded(built, path)
        im = im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)
        return jpeg_bytes(im, quality=70)

    return make


def _crop10(key: str) -> Callable[[dict[str, bytes]], bytes]:
    # Keep the central 90 % of each side (5 % trimmed from every edge).
    def make(built: dict[str, bytes]) -> bytes:
        im = load(key)
        dx, dy = round(im.width * 0.05), round(im.height * 0.05)
        return jpeg_bytes(im.crop((dx, dy, im.width - dx, im.height - dy)))

    return make


def _rot90_pixels(key: str) -> Callable[[dict[str, bytes]], bytes]:
    # Pixels turned 90 degrees clockwise, no EXIF: looks sideways in any viewer.
    return lambda built: jpeg_bytes(load(key).transpose(Image.Transpose.ROTATE_270))


def _exif_rotated(key: str) -> Callable[[dict[str, bytes]], bytes]:
    # Like a phone camera: the sensor pixels are stored turned 90 degrees
    # counter-clockwise and EXIF Orientation = 6 ("rotate 90 CW to display")
    # undoes it, so a viewer that honours EXIF shows the photo upright.
    def make(built: dict[str, bytes]) -> bytes:
        stored = load(key).transpose(Image.Transpose.ROTATE_90)
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = 6
        return jpeg_bytes(stored, exif=exif.tobytes())

    return make


def _png(key: str) -> Callable[[dict[str, bytes]], bytes]:
    return lambda built: png_bytes(load(key))


def _brightness(key: str, factor: float) -> Callable[[dict[str, bytes]], bytes]:
    return lambda built: jpeg_bytes(ImageEnhance.Brightness(load(key)).enhance(factor))


def _grey(key: str) -> Callable[[dict[str, bytes]], bytes]:
    return lambda built: jpeg_bytes(load(key).convert("L"))


def _webp(key: str) -> Callable[[dict[str, bytes]], bytes]:
    return lambda built: webp_bytes(load(key))


def _truncated(key: str, keep: float) -> Callable[[dict[str, bytes]], bytes]:
    def make(built: dict[str, bytes]) -> bytes:
        data = jpeg_bytes(load(key))
        return data[: int(len(data) * keep)]

    return make


SAMPLES: list[Sample] = [
    # --- base photos (JPEG q90) ---------------------------------------------
    Sample("Holiday/IMG_0001.jpg", "rocket", "base photo, JPEG q90", "A", _base("rocket")),
    Sample("Holiday/IMG_0002.jpg", "coffee", "base photo, JPEG q90", "B", _base("coffee")),
    Sample(
        "Holiday/IMG_0003.jpg",
        "hubble_deep_field",
        "base photo, JPEG q90",
        "E",
        _base("hubble_deep_field"),
    ),
    Sample(
        "Phone/PXL_20230814_093012.jpg", "chelsea", "base photo, JPEG q90", "C", _base("chelsea")
    ),
    Sample("Archive/scan_0042.jpg", "astronaut", "base photo, JPEG q90", "D", _base("astronaut")),
    Sample(
        "Archive/cameraman_1988.jpg",
        "camera",
        "base photo (greyscale original), JPEG q90",
        "F",
        _base("camera"),
    ),
    # --- duplicates ----------------------------------------------------------
    Sample(
        "Holiday/IMG_0001 (1).jpg",
        "rocket",
        "exact byte-for-byte copy of Holiday/IMG_0001.jpg",
        "A",
        _exact_copy("Holiday/IMG_0001.jpg"),
    ),
    Sample(
        "Phone/IMG_0001_small.jpg",
        "rocket",
        "Holiday/IMG_0001.jpg decoded, resized to 50 % (Lanczos), re-encoded JPEG q70",
        "A",
        _half_q70("Holiday/IMG_0001.jpg"),
    ),
    Sample(
        "Phone/IMG_0002_crop.jpg",
        "coffee",
        "10 % crop: 5 % trimmed from every edge (central 90 % of width and height), JPEG q90",
        "B",
        _crop10("coffee"),
    ),
    Sample(
        "Archive/IMG_0002_bright.jpg",
        "coffee",
        "brightness raised 25 % (PIL.ImageEnhance.Brightness 1.25), JPEG q90",
        "B",
        _brightness("coffee", 1.25),
    ),
    Sample(
        "Phone/PXL_20230814_093012_exif.jpg",
        "chelsea",
        "pixels stored rotated 90 deg counter-clockwise + EXIF Orientation=6 "
        "(displays upright in EXIF-aware viewers), JPEG q90",
        "C",
        _exif_rotated("chelsea"),
    ),
    Sample(
        "Archive/chelsea_rotated.jpg",
        "chelsea",
        "pixels rotated 90 deg clockwise, no EXIF (appears sideways), JPEG q90",
        "C",
        _rot90_pixels("chelsea"),
    ),
    Sample(
        "Archive/chelsea.webp",
        "chelsea",
        "WebP re-encode (lossy, quality 80)",
        "C",
        _webp("chelsea"),
    ),
    Sample(
        "Archive/scan_0042.png",
        "astronaut",
        "lossless PNG of the same photo",
        "D",
        _png("astronaut"),
    ),
    Sample(
        "Archive/scan_0042_bw.jpg",
        "astronaut",
        "converted to greyscale (PIL mode L), JPEG q90",
        "D",
        _grey("astronaut"),
    ),
    # --- corrupt file ----------------------------------------------------------
    Sample(
        "Phone/broken.jpg",
        "brick",
        "JPEG q90 truncated to its first 30 % of bytes (no end-of-image marker)",
        "",
        _truncated("brick", 0.30),
    ),
]

GROUP_NAMES = {
    "A": "Rocket launch (rocket)",
    "B": "Coffee cup (coffee)",
    "C": "Chelsea the cat (chelsea)",
    "D": "Astronaut portrait (astronaut)",
    "E": "Hubble deep field (hubble_deep_field)",
    "F": "Cameraman, black and white (camera)",
}

GROUP_NOTES = {
    "A": "exact byte copy + a half-size, lower-quality re-encode in another folder.",
    "B": "a crop and a brightness change; both are re-encodes of the original pixels.",
    "C": "EXIF-rotated copy, sideways copy without EXIF, and a WebP. A tool that "
    "honours EXIF orientation sees `_exif.jpg` as upright; `chelsea_rotated.jpg` is "
    "genuinely sideways, so it is only found by a rotation-aware comparison.",
    "D": "lossless PNG and a greyscale JPEG.",
    "E": "no duplicates: must stay on its own.",
    "F": "no duplicates: must stay on its own (already a greyscale photo; not a copy of anything).",
}


# --------------------------------------------------------------------------
# Documentation files.
# --------------------------------------------------------------------------


def _describe(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as im:
            size = f"{im.width}x{im.height}"
            im.load()
            return f"{im.format}, {size}, {im.mode}"
    except Exception as exc:  # the broken file
        return f"unreadable ({type(exc).__name__})"


def write_licenses(built: dict[str, bytes]) -> str:
    lines = [
        "# Licences of the bundled sample photos",
        "",
        "Generated by `packaging/make_samples.py`; do not edit by hand.",
        "",
        "Every file here is derived from an image shipped inside the scikit-image",
        "package (`skimage/data/`), using only images whose scikit-image docstring",
        "states that they are public domain or CC0. The licence column quotes that",
        "docstring verbatim (`skimage.data.<name>.__doc__`, scikit-image "
        f"{skimage.__version__}); the build fails if the quote is no longer there.",
        "The derived files are released under the same terms (public domain / CC0).",
        "",
        "## Sources",
        "",
        "| scikit-image source | file in `skimage/data` | credit | licence as stated by "
        "scikit-image |",
        "|---|---|---|---|",
    ]
    used = sorted({s.source for s in SAMPLES})
    for key in used:
        src = SOURCES[key]
        lic = " ".join(src.licence.split()).replace("`", "")
        lic = f'"{lic}"'
        if src.link:
            lic = f'{lic[:-1]}" (docstring links this to {src.link})'
        lines.append(f"| `skimage.data.{key}()` | `{src.filename}` | {src.credit} | {lic} |")
    lines += [
        "",
        "## Files",
        "",
        "| file | bytes | format | source | transform |",
        "|---|---:|---|---|---|",
    ]
    for s in SAMPLES:
        data = built[s.path]
        lines.append(
            f"| `{s.path}` | {len(data)} | {_describe(data)} | `skimage.data.{s.source}` "
            f"({SOURCES[s.source].filename}) | {s.transform} |"
        )
    lines.append("")
    return "\n".join(lines)


def write_expected() -> str:
    lines = [
        "# Expected result of scanning the sample photos",
        "",
        "Generated by `packaging/make_samples.py`; ground truth for the README demo.",
        "Scan the whole `resources/samples/` folder (recursively).",
        "",
        f"There are {len(SAMPLES)} files: {len(GROUP_NAMES)} distinct photos, "
        f"{sum(1 for s in SAMPLES if s.group) - len(GROUP_NAMES)} duplicates of them, "
        "and 1 corrupt file.",
        "",
        "## Groups that should be reported",
        "",
    ]
    for g, name in GROUP_NAMES.items():
        members = [s for s in SAMPLES if s.group == g]
        if len(members) < 2:
            continue
        lines.append(f"### {name}: {len(members)} files")
        lines.append("")
        for s in members:
            lines.append(f"- `{s.path}` - {s.transform}")
        lines.append("")
        lines.append(f"Why: {GROUP_NOTES[g]}")
        lines.append("")
    lines += ["## Photos that must NOT be grouped with anything", ""]
    for g, name in GROUP_NAMES.items():
        members = [s for s in SAMPLES if s.group == g]
        if len(members) == 1:
            lines.append(f"- `{members[0].path}` - {name}; {GROUP_NOTES[g]}")
    lines += [
        "",
        "No file of one group should be put in another group. In particular the",
        "two greyscale pictures (`Archive/scan_0042_bw.jpg`, an astronaut, and",
        "`Archive/cameraman_1988.jpg`) are different photos and must not be paired",
        "just because both are grey.",
        "",
        "## Bad file that should be reported",
        "",
        "- `Phone/broken.jpg` - a JPEG cut off after 30 % of its bytes (no end-of-image",
        "  marker). The scan should list it as unreadable/corrupt (with the file name",
        "  and a reason such as `truncated`) and carry on; it must not crash the scan",
        "  and must not appear in any group. (A decoder that accepts truncated JPEGs",
        "  would see the top third of a brick-wall texture, which matches no other",
        "  sample, so it must not be grouped even then.)",
        "",
        "## Summary",
        "",
        "| group | files |",
        "|---|---|",
    ]
    for g, name in GROUP_NAMES.items():
        members = ", ".join(f"`{s.path}`" for s in SAMPLES if s.group == g)
        lines.append(f"| {name} | {members} |")
    lines.append("| corrupt | `Phone/broken.jpg` |")
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------


def build() -> dict[str, bytes]:
    built: dict[str, bytes] = {}
    for s in SAMPLES:
        built[s.path] = s.make(built)
    return built


def check(built: dict[str, bytes]) -> None:
    """Sanity checks on what was built; raises AssertionError on failure."""
    by = {s.path: s for s in SAMPLES}
    assert built["Holiday/IMG_0001 (1).jpg"] == built["Holiday/IMG_0001.jpg"]
    for path, data in built.items():
        if path == "Phone/broken.jpg":
            assert not data.endswith(b"\xff\xd9")
            try:
                with Image.open(io.BytesIO(data)) as im:
                    im.load()
            except OSError:
                pass
            else:
                raise AssertionError("broken.jpg decoded without error")
            continue
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            assert max(im.size) <= MAX_SIDE, path
            if by[path].transform.startswith("base photo"):
                assert im.format == "JPEG", path
            has_orientation = im.getexif().get(EXIF_ORIENTATION)
            if path.endswith("_exif.jpg"):
                assert has_orientation == 6, path
                upright = ImageOps.exif_transpose(im)
                assert upright.size == load(by[path].source).size, path
            else:
                assert not has_orientation, path
    total = sum(len(d) for d in built.values())
    assert total < 2_500_000, f"samples too large: {total} bytes"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT, help="output folder (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="verify the result after writing")
    args = ap.parse_args(argv)

    _check_licences()
    built = build()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for sub in SUBFOLDERS:  # only folders this script owns
        shutil.rmtree(out / sub, ignore_errors=True)
    for path, data in built.items():
        dest = out / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    (out / "LICENSES.md").write_text(write_licenses(built), encoding="utf-8")
    (out / "EXPECTED.md").write_text(write_expected(), encoding="utf-8")

    if args.check:
        check(built)
    total = sum(len(d) for d in built.values())
    digest = hashlib.sha256(b"".join(built[s.path] for s in SAMPLES)).hexdigest()[:16]
    print(f"wrote {len(built)} files, {total} bytes, to {out} (content sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

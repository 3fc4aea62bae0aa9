"""The keeper criteria, one function each: which of the candidates still
tied it prefers, and in words why (groups.keeper_rules chains them).

Each takes the candidates and what it may consult (a Context) and returns
the ones it keeps; when it keeps fewer than it was given, also a phrase
that says what the kept ones have over the others ("4× the pixels of
IMG_0001_small.jpg"). A criterion that cannot tell them apart, or that
would keep none, keeps them all: a rule never empties a group.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from imgdedupe.core.images.photo_facts import PhotoFacts, format_of_name
from imgdedupe.core.records import Member

# Re-encodes at one quality differ by a few percent in size: within this
# ratio of bytes a pixel, two copies are equally compressed.
SAME_COMPRESSION = 1.05
SAME_MOMENT_S = 1.0  # EXIF capture times (whole seconds, or centiseconds)
SAME_MTIME_NS = 2_000_000_000  # FAT keeps modification times to 2 s

# Names that say "a copy" or "an edit" whatever the rest of the group is
# called, on the name without its extension, lower case: "IMG_0001 (1)",
# "IMG_0001 - Copy", "Copy of IMG_0001", "IMG_0001-edited", "IMG_0002_bright".
_EDIT_WORDS = ("edited|edit|copy|bright|brighter|brightened|dark|darker|crop|cropped|small|"
               "smaller|resized|resize|scaled|rotated|bw|grey|gray|mono|sepia|enhanced|"
               "filtered|retouched|export|exported|web|thumb|thumbnail|sharpened|"
               "watermarked|compressed")
_COPY_NAME = re.compile(rf"(\(\d+\)|~\d+|[ _.-]({_EDIT_WORDS})([ _-]?\(?\d+\)?)?)$|^(copy) of ")
_IOS_EDIT = re.compile(r"(img_)e(\d{4})")  # iPhone saves an edit of IMG_1234 as IMG_E1234
_SEPARATORS = " _-.(~"


@dataclass(frozen=True)
class Context:
    """What the criteria may consult about one group. ``facts``: a member's
    PhotoFacts (images.photo_facts, read lazily); ``turned``: paths of
    turned copies, by the verification or the sizes (groups.orientation)."""

    facts: Callable[[Member], PhotoFacts]
    turned: Collection[str] = frozenset()
    folder: str | None = None


Outcome = tuple[list[Member], str]
Criterion = Callable[[list[Member], Context], Outcome]


def _name(member: Member) -> str:
    return os.path.basename(member.path)


def _others(dropped: Sequence[Member], one: str, many: str) -> str:
    """``one`` with {name} the dropped member's name, or ``many`` with
    "the others" counted: a later rule drops only some of a group, and "the
    others are named as copies" read as a claim about every other photo."""
    return one.format(name=_name(dropped[0])) if len(dropped) == 1 else _counted(many, dropped)


def _counted(many: str, dropped: Sequence[Member]) -> str:
    return many.replace("the others", f"{len(dropped)} others", 1)


def _split(candidates: list[Member], keep: Callable[[Member], bool]
           ) -> tuple[list[Member], list[Member]]:
    kept = [m for m in candidates if keep(m)]
    return (kept, [m for m in candidates if not keep(m)]) if kept else (candidates, [])


def _pixels_of(member: Member) -> int:
    return (member.width or 0) * (member.height or 0)


def _times(ratio: float) -> str:
    return f"{ratio:.1f}".removesuffix(".0") + "×"


def more_pixels(candidates: list[Member], _ctx: Context) -> Outcome:
    best = max(map(_pixels_of, candidates))
    kept, dropped = _split(candidates, lambda m: _pixels_of(m) == best)
    if not dropped:
        return kept, ""
    runner_up = max(dropped, key=_pixels_of)
    if not _pixels_of(runner_up):
        return kept, "the only one whose size is known"
    ratio = best / _pixels_of(runner_up)
    if ratio >= 1.1:
        amount = f"{_times(ratio)} the pixels"
        return kept, _others(dropped, amount + " of {name}", f"{amount} of the next largest")
    size = f"{kept[0].width}×{kept[0].height} against {runner_up.width}×{runner_up.height}"
    return kept, _others(dropped, "more pixels than {name} (" + size + ")",
                         f"the most pixels ({size})")


def upright(candidates: list[Member], ctx: Context) -> Outcome:
    kept, dropped = _split(candidates, lambda m: m.path not in ctx.turned)
    return kept, _others(dropped, "upright, {name} is a turned or mirrored copy",
                         "upright, the others are turned or mirrored copies")


def _origin_score(facts: PhotoFacts) -> tuple[bool, bool, bool, bool, bool, bool, bool]:
    """Signs of the camera's own file, most telling first. A RAW is the
    camera's own file whatever Pillow could read of its EXIF (nothing); a
    camera writes colour, so a grey copy of a colour photo is an edit."""
    return (facts.format == "RAW", facts.camera is not None, facts.editor is None,
            facts.taken is not None, facts.gps, not facts.grey, facts.camera_format)


# What the kept copy has over the next best, by the first sign that differs
# (_origin_score's order): (one other copy, several).
_ORIGIN_PHRASES = (
    ("the camera's RAW file, {name} is not", "the camera's RAW file, the others are not"),
    ("has the camera's EXIF ({camera}), {name} was exported",
     "has the camera's EXIF ({camera}), the others were exported"),
    ("not re-saved by an editor ({name} was, by {editor})",
     "not re-saved by an editor, the others were"),
    ("has its capture date in EXIF, {name} has none",
     "has its capture date in EXIF, the others have none"),
    ("has its GPS position in EXIF, {name} has none",
     "has its GPS position in EXIF, the others have none"),
    ("in colour, {name} is a grey copy", "in colour, the others are grey copies"),
    ("a camera's format ({format}), {name} is an export ({other})",
     "a camera's format ({format}), the others are exports"),
)


def _with_raw(member: Member) -> bool:
    """A photo shot with its RAW (the RAW beside it is its companion): the
    camera's own pair, and trashing the photo would trash the RAW too."""
    return any(c.kind == "raw" for c in member.companions)


def camera_exif(candidates: list[Member], ctx: Context) -> Outcome:
    score = {m.path: (_with_raw(m) or ctx.facts(m).format == "RAW",
                      *_origin_score(ctx.facts(m))[1:]) for m in candidates}
    best = max(score.values())
    kept, dropped = _split(candidates, lambda m: score[m.path] == best)
    if not dropped:
        return kept, ""
    runner_up = max(dropped, key=lambda m: score[m.path])
    sign = next(n for n, (a, b) in enumerate(zip(best, score[runner_up.path], strict=True))
                if a != b)
    keeper, other = ctx.facts(kept[0]), ctx.facts(runner_up)
    one, many = _ORIGIN_PHRASES[sign]
    if sign == 0 and keeper.format != "RAW":
        one, many = ("has the camera's RAW beside it, {name} has not",
                     "has the camera's RAW beside it, the others have not")
    return kept, (one if len(dropped) == 1 else _counted(many, dropped)).format(
        name=_name(dropped[0]), camera=keeper.camera, editor=other.editor,
        format=_format_name(keeper.format), other=_format_name(other.format))


def _format_name(fmt: str | None) -> str:
    return {"WEBP": "WebP", "HEIF": "HEIC", "MPO": "JPEG"}.get(fmt or "", fmt or "unknown")


def copy_named(member: Member, candidates: Sequence[Member]) -> str | None:
    """"a copy" or "an edit" when ``member``'s name marks one: by itself,
    or as another candidate's name with something added ("IMG_0001_exif"
    beside "IMG_0001"); None for a name that looks original."""
    stem = os.path.splitext(_name(member))[0].lower()
    found = _COPY_NAME.search(stem)
    if found:
        return "an edit" if found.group(2) not in (None, "copy") else "a copy"
    for other in candidates:
        base = os.path.splitext(_name(other))[0].lower()
        if len(stem) > len(base) and stem.startswith(base) and stem[len(base)] in _SEPARATORS:
            return "a copy"
        edit = _IOS_EDIT.fullmatch(stem)
        if edit and base == edit.group(1) + edit.group(2):
            return "an edit"
    return None


def original_name(candidates: list[Member], _ctx: Context) -> Outcome:
    named = {m.path: copy_named(m, candidates) for m in candidates}
    kept, dropped = _split(candidates, lambda m: named[m.path] is None)
    return kept, _others(dropped, "the original name, {name} is named as "
                         + str(named[dropped[0].path] if dropped else ""),
                         "the original name, the others are named as copies or edits")


def _bytes_per_pixel(member: Member) -> float | None:
    pixels = _pixels_of(member)
    return member.size / pixels if pixels else None


def less_compression(candidates: list[Member], ctx: Context) -> Outcome:
    """JPEGs by their quantization tables: the finer one was saved at a
    higher quality. Between JPEGs of the same tables the bytes a pixel say
    how much detail the picture holds (a brightened copy compresses
    differently), not how hard it was compressed: a tie. Other formats:
    more bytes a pixel wins, only against a copy of the same format (a PNG
    is not "less compressed" than a JPEG for being larger)."""
    def fmt(m: Member) -> str | None:
        return ctx.facts(m).format or format_of_name(m.path)

    tables = {m.path: q for m in candidates
              if fmt(m) == "JPEG" and (q := ctx.facts(m).jpeg_quantization) is not None}
    if len(set(tables.values())) > 1:
        finest = min(tables.values())
        kept, dropped = _split(candidates, lambda m: tables.get(m.path, finest) == finest)
        return kept, _others(dropped, "saved at a higher JPEG quality than {name}",
                             "saved at a higher JPEG quality than the others")

    best: dict[str | None, float] = {}
    for m in candidates:
        if m.path in tables:
            continue  # same tables: bytes a pixel measure the content, not the saving
        bpp = _bytes_per_pixel(m)
        if bpp is not None and fmt(m) is not None:
            best[fmt(m)] = max(best.get(fmt(m), 0.0), bpp)

    def kept_by_format(m: Member) -> bool:
        bpp = _bytes_per_pixel(m)
        return bpp is None or m.path in tables or fmt(m) not in best \
            or bpp * SAME_COMPRESSION >= best[fmt(m)]

    kept, dropped = _split(candidates, kept_by_format)
    if not dropped:
        return kept, ""
    same = fmt(dropped[0])  # say it in one format's figures
    worse = max(b for m in dropped if (b := _bytes_per_pixel(m)) is not None and fmt(m) == same)
    top = best[same]
    figures = f"{top:.2f} against {worse:.2f} bytes a pixel"
    return kept, _others(dropped, "less compressed than {name} (" + figures + ")",
                         f"the least compressed ({figures})")


def earliest(candidates: list[Member], ctx: Context) -> Outcome:
    """The earliest EXIF capture time when every candidate has one, then
    the oldest modification time."""
    taken = {m.path: ctx.facts(m).taken for m in candidates}
    if all(t is not None for t in taken.values()):
        first = min(t for t in taken.values() if t is not None)
        kept, dropped = _split(candidates, lambda m: (taken[m.path] or 0) - first
                               <= SAME_MOMENT_S)
        if dropped:
            # EXIF times are the camera's clock without a zone: read as UTC.
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(first))
            return kept, _others(dropped, f"taken first ({when}), {{name}} later",
                                 f"taken first ({when}), the others later")
        candidates = kept
    oldest = min(m.mtime_ns for m in candidates)
    kept, dropped = _split(candidates, lambda m: m.mtime_ns - oldest <= SAME_MTIME_NS)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(oldest / 1e9))
    return kept, _others(dropped, f"the oldest file (modified {when}), {{name}} is newer",
                         f"the oldest file (modified {when})")


def in_folder(path: str, folder: str) -> bool:
    return os.path.abspath(path).startswith(os.path.join(os.path.abspath(folder), ""))


def preferred_folder(candidates: list[Member], ctx: Context) -> Outcome:
    folder = ctx.folder
    if not folder:
        return candidates, ""
    kept, _ = _split(candidates, lambda m: in_folder(m.path, folder))
    return kept, f"in the preferred folder {folder}"


def shorter_path(candidates: list[Member], _ctx: Context) -> Outcome:
    shortest = min(len(m.path) for m in candidates)
    kept, dropped = _split(candidates, lambda m: len(m.path) == shortest)
    return kept, "the shortest path"

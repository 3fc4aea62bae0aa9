"""A photo's companion files: the files that belong to it and travel with it.

* sidecars of the same name: ``IMG_1.xmp``, ``IMG_1.aae``, ``IMG_1.thm``,
  or of the full name, ``IMG_1.JPG.xmp`` (darktable, digiKam);
* the RAW beside a JPEG or HEIC of the same name: the camera wrote both,
  so they are one photo, never two to compare (the RAW is not scanned);
* the ``.MOV`` of a Live Photo, beside its HEIC or JPEG.

Names match in any case (``img_1.XMP`` is ``IMG_1.JPG``'s), within one
folder. When two photos share a name (``IMG_1.JPG`` and ``IMG_1.HEIC``, an
export beside its original) a companion named only by that name belongs
to neither: it stays where it is whichever of them moves, because moving
it with the wrong one would orphan the other. A sidecar of the full name
(``IMG_1.HEIC.xmp``) is never ambiguous. A RAW beside two such photos is
still not scanned on its own (it is the same photo as they are), but it
moves with neither.

Found after the walk, from one listing of each folder that holds photos:
the walk itself stays a loop over image names only.
"""

from __future__ import annotations

import logging
import os
import stat
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple

from imgdedupe.core.records import Companion, CompanionKind, Group

log = logging.getLogger(__name__)

RAW_EXTENSIONS = frozenset({".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf", ".orf", ".rw2"})
SIDECAR_EXTENSIONS = frozenset({".xmp", ".aae", ".thm"})
LIVE_PHOTO_EXTENSIONS = frozenset({".mov"})
# The photos a camera or phone renders beside a RAW or a Live Photo's video.
RENDERED_EXTENSIONS = frozenset({".jpg", ".jpeg", ".heic", ".heif"})
_COMPANION_EXTENSIONS = RAW_EXTENSIONS | SIDECAR_EXTENSIONS | LIVE_PHOTO_EXTENSIONS


class CompanionNames(NamedTuple):
    """What find_companions finds: each photo's companions as (path, kind),
    only for photos that have any; and ``absorbed``, the RAW files that
    are part of a rendered photo beside them and so not photos themselves."""

    of_photo: dict[str, tuple[tuple[str, CompanionKind], ...]]
    absorbed: frozenset[str]


class Companions(NamedTuple):
    """Companions as found on disk, with the size and mtime each had."""

    of_photo: dict[str, tuple[Companion, ...]]
    absorbed: frozenset[str]


def _split(name: str) -> tuple[str, str]:
    """(stem, extension), both case-folded: 'img_1', '.jpg'; what splitext
    says of a file name, cheaper."""
    dot = name.rfind(".")
    if dot <= 0:
        return name.casefold(), ""
    return name[:dot].casefold(), name[dot:].lower()


def _extension(name: str) -> str:
    """'.jpg' for 'IMG_1.JPG': splitext's answer for a file name, cheaper
    (called for every photo and every name in its folder)."""
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def find_companions(photo_paths: Iterable[str],
                    names_by_folder: Mapping[str, Iterable[str]]) -> CompanionNames:
    """Pair each photo with its companions among the file names of its folder.

    ``photo_paths``: the image files the walk found (absolute paths; RAW
    files among them or not). ``names_by_folder``: the plain files' names
    in each folder, keyed by the photos' folder (a path up to its last
    separator). Pure: no disk access."""
    return _match(_by_folder(photo_paths), names_by_folder)


def _by_folder(photo_paths: Iterable[str]) -> dict[str, list[str]]:
    # rpartition, not os.path.split: a third of the time, and folder + sep
    # + name gives the path back exactly.
    photos_by_folder: dict[str, list[str]] = defaultdict(list)
    for path in photo_paths:
        folder, _, name = path.rpartition(os.sep)
        photos_by_folder[folder].append(name)
    return photos_by_folder


def _match(photos_by_folder: Mapping[str, list[str]],
           names_by_folder: Mapping[str, Iterable[str]]) -> CompanionNames:
    of_photo: dict[str, tuple[tuple[str, CompanionKind], ...]] = {}
    absorbed: set[str] = set()
    for folder, photo_names in photos_by_folder.items():
        names = names_by_folder.get(folder, ())
        if not names and not any(n[-4:].lower() in RAW_EXTENSIONS for n in photo_names):
            continue  # the usual folder: nothing to pair (every RAW extension has 4 characters)
        found, raws = _in_folder(photo_names, names)
        prefix = folder + os.sep
        for owner, companions in found.items():
            of_photo[prefix + owner] = tuple(sorted((prefix + name, kind)
                                                    for name, kind in companions))
        absorbed.update(prefix + raw for raw in raws)
    return CompanionNames(of_photo, frozenset(absorbed))


def _in_folder(photo_names: Sequence[str], names: Iterable[str]
               ) -> tuple[dict[str, list[tuple[str, CompanionKind]]], set[str]]:
    """One folder: {photo name: [(companion name, kind)]}, absorbed RAW names."""
    candidates = [name for name in names if _extension(name) in _COMPANION_EXTENSIONS]
    # RAW files the walk found count whether or not the listing has them.
    listed = set(candidates)
    candidates += [name for name in photo_names  # every RAW extension has 4 characters
                   if name[-4:].lower() in RAW_EXTENSIONS and name not in listed]
    if not candidates:
        return {}, set()
    split = {name: _split(name) for name in candidates}
    # The stems and full names a candidate could point at; only photos
    # named so are looked at (a folder of 5,000 photos and one sidecar).
    wanted = {stem for stem, _ in split.values()}
    photos: list[tuple[str, str, str]] = []  # (name, folded stem, extension)
    for name in photo_names:  # inlined _split: this loop sees every photo
        dot = name.rfind(".")
        stem = name[:dot].casefold() if dot > 0 else name.casefold()
        if stem in wanted or name.casefold() in wanted:
            photos.append((name, stem, name[dot:].lower() if dot > 0 else ""))
    rendered_by_stem: dict[str, list[str]] = defaultdict(list)
    for name, stem, ext in photos:
        if ext in RENDERED_EXTENSIONS:
            rendered_by_stem[stem].append(name)
    # A RAW beside a rendered photo of its stem is that photo's, not a photo.
    raws = {name for name in candidates
            if split[name][1] in RAW_EXTENSIONS and split[name][0] in rendered_by_stem}
    by_stem: dict[str, list[str]] = defaultdict(list)
    by_name: dict[str, str] = {}
    for name, stem, _ in photos:
        if name not in raws:  # a lone RAW is a photo: its sidecars are its own
            by_stem[stem].append(name)
            by_name[name.casefold()] = name
    found: dict[str, list[tuple[str, CompanionKind]]] = defaultdict(list)
    raw_owner: dict[str, str] = {}  # folded RAW name -> its photo
    for name in sorted(raws):
        owner = _only(rendered_by_stem[split[name][0]])
        if owner is not None:
            found[owner].append((name, "raw"))
            raw_owner[name.casefold()] = owner
    for name in candidates:  # RAW files were placed above
        stem, ext = split[name]
        if ext in SIDECAR_EXTENSIONS:
            # 'IMG_1.JPG.xmp' names its file outright; 'IMG_1.xmp' by stem.
            owner = by_name.get(stem) or raw_owner.get(stem) or _only(by_stem.get(stem))
            if owner is not None:
                found[owner].append((name, "sidecar"))
        elif ext in LIVE_PHOTO_EXTENSIONS:
            owner = _only(rendered_by_stem.get(stem))
            if owner is not None:
                found[owner].append((name, "live_photo"))
    return found, raws


def _only(names: list[str] | None) -> str | None:
    """The one owner a stem names; None for none or several (ambiguous)."""
    return names[0] if names and len(names) == 1 else None


def companions_on_disk(photo_paths: Sequence[str]) -> Companions:
    """find_companions over the folders of ``photo_paths``, listed once each;
    companions that are not plain files (links, folders) are left out, and
    so are folders that cannot be listed (the photos are still scanned)."""
    photos_by_folder = _by_folder(photo_paths)
    names_by_folder: dict[str, list[str]] = {}
    for folder, photo_names in photos_by_folder.items():
        try:
            listing = os.scandir(os.path.dirname(folder + os.sep + photo_names[0]))
            with listing as entries:
                names_by_folder[folder] = [
                    entry.name for entry in entries
                    if _extension(entry.name) in _COMPANION_EXTENSIONS
                    and entry.is_file(follow_symlinks=False)]
        except OSError as exc:
            log.warning("cannot list %r for companion files: %s", folder, exc)
    names = _match(photos_by_folder, names_by_folder)
    of_photo: dict[str, tuple[Companion, ...]] = {}
    for photo, found in names.of_photo.items():
        companions = tuple(c for c in (_stat(path, kind) for path, kind in found) if c)
        if companions:
            of_photo[photo] = companions
    return Companions(of_photo, names.absorbed)


def _stat(path: str, kind: CompanionKind) -> Companion | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None  # gone since the listing
    if not stat.S_ISREG(st.st_mode):
        return None
    return Companion(path, st.st_size, st.st_mtime_ns, kind)


def with_companions(groups: Iterable[Group],
                    of_photo: Mapping[str, tuple[Companion, ...]]) -> tuple[Group, ...]:
    """``groups`` with each member's companions filled in from ``of_photo``."""
    if not of_photo:
        return tuple(groups)
    out = []
    for group in groups:
        if any(m.path in of_photo for m in group.members):
            members = tuple(replace(m, companions=of_photo[m.path]) if m.path in of_photo
                            else m for m in group.members)
            group = replace(group, members=members)
        out.append(group)
    return tuple(out)

"""Immutable records passed between the engine, the CLI and the GUI.

Frozen dataclasses so a worker thread can hand them to the GUI thread
without copies or locks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol


class ErrorReason:
    """Stable codes for per-file problems; they appear in JSON reports."""

    EMPTY = "empty_file"
    TRUNCATED = "truncated"
    NOT_AN_IMAGE = "not_an_image"
    TOO_LARGE = "decompression_bomb"
    PERMISSION = "permission_denied"
    VANISHED = "vanished"
    UNSUPPORTED = "unsupported_format"
    SYMLINK_LOOP = "symlink_loop"
    IO_ERROR = "io_error"
    DECODE_FAILED = "decode_failed"
    DECODER_CRASHED = "decoder_crashed"
    DECODE_TIMEOUT = "decode_timeout"  # a decode past images.decode_pool.TIME_BUDGET_S


class ImageFile(NamedTuple):
    """A file found by the walk. ``path`` is absolute; it may hold
    surrogate escapes for names that are not valid UTF-8. A named tuple,
    immutable like the records below but made in half the time: a rescan
    makes one per file, and ``zip(*files)`` gives its columns at C speed."""

    path: str
    size: int
    mtime_ns: int


class FileLike(Protocol):
    """A file as a group member or a trash action needs it: an ImageFile,
    a storage.store.CachedFile, a Member."""

    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...


@dataclass(frozen=True, slots=True)
class FileError:
    """A file that could not be used, and why. The scan goes on."""

    path: str
    reason: str
    detail: str


# What a companion file is to its photo (files.companions): a sidecar of
# the same name (.xmp, .aae, .thm), the camera's RAW beside its JPEG or
# HEIC, or the video of a Live Photo.
CompanionKind = Literal["sidecar", "raw", "live_photo"]


@dataclass(frozen=True, slots=True)
class Companion:
    """A file that travels with a photo: counted, trashed and restored with it."""

    path: str
    size: int
    mtime_ns: int
    kind: CompanionKind

    @property
    def label(self) -> str:
        """A short tag for a badge: "XMP", "AAE", "THM", "RAW" or "LIVE"."""
        if self.kind == "raw":
            return "RAW"
        if self.kind == "live_photo":
            return "LIVE"
        return self.path.rpartition(".")[2].upper()


@dataclass(frozen=True, slots=True)
class Member:
    """One image inside a group, with its companion files."""

    path: str
    similarity: float  # to the reference, 0-100 on the calibrated scale
    copy_set: int | None  # members sharing a number are byte-identical
    size: int
    width: int | None
    height: int | None
    mtime_ns: int
    companions: tuple[Companion, ...] = ()

    @property
    def size_with_companions(self) -> int:
        """The bytes moving this photo to the trash frees."""
        return self.size + sum(c.size for c in self.companions)

    @property
    def exact(self) -> bool:
        """True when another member of the group has the very same bytes."""
        return self.copy_set is not None


# How sure a group is, from verify.tiers: ``exact`` the same bytes;
# ``near_duplicate`` the same picture (an edited, resized, cropped or
# re-encoded copy), verified beyond the embedding; ``similar_shot`` the
# same scene taken again (a burst, a second take): for review only.
Tier = Literal["exact", "near_duplicate", "similar_shot"]
TIERS: tuple[Tier, ...] = ("exact", "near_duplicate", "similar_shot")
# The tiers whose extra members may be marked for deletion by a rule or a
# suggestion; a similar shot is a different photo and is only marked by hand.
DELETABLE_TIERS: frozenset[str] = frozenset({"exact", "near_duplicate"})


@dataclass(frozen=True, slots=True)
class Group:
    """Duplicates or near-duplicates; ``members[0]`` is the reference.
    ``kind`` says how it was found (byte hash, the embedding, the early
    perceptual hash), ``tier`` how sure it is and ``reason`` why, in words."""

    kind: Literal["exact", "similar", "near-exact"]
    members: tuple[Member, ...]
    keeper: str  # suggested path to keep; only a suggestion
    tier: Tier
    reason: str
    # Why ``keeper`` was suggested, a sentence ("kept: 2× the pixels of
    # IMG_1.jpg"), from groups.keeper_rules; "" where no chain chose it.
    keeper_reason: str = ""
    # The members best first by that chain (keeper first); () where none ran.
    keeper_ranking: tuple[str, ...] = ()

    @property
    def reference(self) -> str:
        return self.members[0].path

    @property
    def deletable(self) -> bool:
        """Whether rules and suggestions may mark members of this group."""
        return self.tier in DELETABLE_TIERS


# An ignore mark: the content digests (files.hashing) of photos the user
# said are not duplicates of each other (the window's "Not duplicates").
# Keyed by content, so renames and moves keep it; stored by storage.store.
IgnoreMark = frozenset[str]
IgnoreMarks = tuple[IgnoreMark, ...]


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the user must be told once, for example a backbone fallback."""

    code: str
    message: str

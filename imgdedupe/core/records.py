"""Immutable records passed between the engine, the CLI and the GUI.

Frozen dataclasses so a worker thread can hand them to the GUI thread
without copies or locks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from imgdedupe.core.groups.graph import SimilarityGraph


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


class ImageFile(NamedTuple):
    """A file found by the walk. ``path`` is absolute; it may hold
    surrogate escapes for names that are not valid UTF-8. A named tuple,
    immutable like the records below but made in half the time: a rescan
    makes one per file, and ``zip(*files)`` gives its columns at C speed."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class FileError:
    """A file that could not be used, and why. The scan goes on."""

    path: str
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Member:
    """One image inside a group."""

    path: str
    similarity: float  # to the reference, 0-100 on the calibrated scale
    copy_set: int | None  # members sharing a number are byte-identical
    size: int
    width: int | None
    height: int | None
    mtime_ns: int

    @property
    def exact(self) -> bool:
        """True when another member of the group has the very same bytes."""
        return self.copy_set is not None


@dataclass(frozen=True, slots=True)
class Group:
    """Duplicates or near-duplicates; ``members[0]`` is the reference."""

    kind: Literal["exact", "similar", "near-exact"]
    members: tuple[Member, ...]
    keeper: str  # suggested path to keep; only a suggestion

    @property
    def reference(self) -> str:
        return self.members[0].path


@dataclass(frozen=True, slots=True)
class Progress:
    """A progress event. ``total`` is None while it is not yet known."""

    phase: Literal["walk", "hash", "embed", "index", "group", "done"]
    done: int
    total: int | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the user must be told once, for example a backbone fallback."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ExactGroupsReady:
    """Byte-identical groups, known before any image is decoded."""

    groups: tuple[Group, ...]


@dataclass(frozen=True, slots=True)
class NearExactGroupsReady:
    """Near-exact copies (re-encoded, resized) found by a perceptual hash
    of the decoded network input while the model still runs: every group
    found so far (each event replaces the previous one). Kind
    "near-exact"; a member's ``similarity`` is 100 minus 100/64 per
    differing hash bit. The final ScanResult's groups are the CNN's."""

    groups: tuple[Group, ...]
    hashed: int  # images hashed so far in this scan


@dataclass(frozen=True)
class ScanStats:
    files_seen: int = 0
    unique_contents: int = 0
    embedded: int = 0
    from_cache: int = 0
    failed: int = 0
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ScanResult:
    """The final answer of a scan; groups are in a deterministic order."""

    groups: tuple[Group, ...]
    errors: tuple[FileError, ...]
    stats: ScanStats
    notices: tuple[Notice, ...]
    backbone: str
    model_id: str
    threshold: float
    # The scored pairs behind ``groups``: regrouping at another threshold
    # needs only these, no rescan. ``ignored``: "Not duplicates" marks.
    graph: SimilarityGraph | None = None
    ignored: tuple[frozenset[str], ...] = ()

"""What a scan tells its caller, in order: immutable events.

    for event in run_scan(config, cancel):
        Progress ... Notice ... ExactGroupsReady ... NearExactGroupsReady ...
        ScanResult (last)

Frozen dataclasses so the window's scan worker can hand them to the GUI
thread without copies or locks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from imgdedupe.core.groups.graph import SimilarityGraph
from imgdedupe.core.records import FileError, Group, IgnoreMarks, Notice


@dataclass(frozen=True, slots=True)
class Progress:
    """A progress event. ``total`` is None while it is not yet known.
    ``share``: the part of the phase's work done (0-1), where its items are
    not equal work (verify: a photo's first pair also makes its features,
    weighed against the pairs by what each cost this scan); None where
    ``done / total`` says it.
    ``feature_cost_s`` (embed, on a CPU): the CPU-seconds one photo's
    verification features took on this machine, sampled while the model
    runs, for the estimate of the verification to come; None before a
    sample."""

    phase: Literal["walk", "hash", "embed", "index", "verify", "group", "done"]
    done: int
    total: int | None = None
    message: str = ""
    share: float | None = None
    feature_cost_s: float | None = None


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
    # needs only these, no rescan.
    graph: SimilarityGraph | None = None
    ignore_marks: IgnoreMarks = ()


Event = Progress | Notice | ExactGroupsReady | NearExactGroupsReady | ScanResult

"""What a trash batch or an undo did, file by file: the records that
actions.trashing and actions.undoing both return."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

Status = Literal["moved", "refused", "failed", "restored"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one file. ``code`` is stable (for tests and JSON),
    ``reason`` a sentence for the user."""

    path: str
    status: Status
    code: str = ""
    reason: str = ""
    trash_path: str | None = None


@dataclass(frozen=True)
class BatchResult:
    batch_id: int | None  # None when nothing was attempted
    outcomes: tuple[Outcome, ...]

    def with_status(self, status: Status) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]


def lstat_or_none(path: str | None) -> os.stat_result | None:
    if path is None:
        return None
    try:
        return os.lstat(path)
    except OSError:
        return None

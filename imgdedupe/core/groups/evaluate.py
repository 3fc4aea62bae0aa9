"""Score predicted groups against a labelled set (pairwise P/R/F1).

Same conventions as the dev set's score.py: a pair is two files in the same
group; files in no group are singletons; mirrored photos ("hflip") are left
out by default, because whether a mirror is a duplicate is a product choice.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from imgdedupe.core.errors import DecodeError
from imgdedupe.core.files.hashing import content_hash


@dataclass(frozen=True)
class PairScores:
    precision: float
    recall: float
    f1: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int


@dataclass(frozen=True)
class Truth:
    label: dict[str, str]  # relative path -> group label (singletons unique)
    transform: dict[str, str]

    def byte_identical_label(self, root: str) -> dict[str, str]:
        """Classes of files with the very same bytes, read from disk.

        Not from the labels: a re-encode at the base's own quality can come
        out byte-identical, and then it *is* an exact copy.
        """
        label = {}
        for path in self.label:
            try:
                label[path] = content_hash(os.path.join(root, path))
            except DecodeError:
                label[path] = f"__unreadable__{path}"
        return label


def load_groundtruth(csv_path: str, *, ignore_transforms: Iterable[str] = ("hflip",)) -> Truth:
    ignored = set(ignore_transforms)
    label: dict[str, str] = {}
    transform: dict[str, str] = {}
    with open(csv_path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            path = row["path"].replace("\\", "/")
            if row.get("transform", "") in ignored:
                continue
            label[path] = (row.get("group_id") or "").strip() or f"__single__{path}"
            transform[path] = row.get("transform", "")
    return Truth(label, transform)


def _pairs(counts: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in counts)


def pairwise(truth: dict[str, str], predicted_groups: Sequence[Sequence[str]]) -> PairScores:
    """``predicted_groups`` hold paths relative to the set root."""
    predicted: dict[str, str] = {p: f"__pred_single__{p}" for p in truth}
    for n, group in enumerate(predicted_groups):
        for path in group:
            if path in truth:
                predicted[path] = f"g{n}"
    true_pairs = _pairs(Counter(truth.values()).values())
    pred_pairs = _pairs(Counter(predicted.values()).values())
    correct = _pairs(Counter((truth[p], predicted[p]) for p in truth).values())
    precision = correct / pred_pairs if pred_pairs else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PairScores(precision, recall, f1, true_pairs, pred_pairs, correct)


def relative(paths: Iterable[str], root: str) -> list[str]:
    root = os.path.abspath(root)
    return [os.path.relpath(p, root).replace(os.sep, "/") for p in paths]

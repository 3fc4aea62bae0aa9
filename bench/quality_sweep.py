"""Threshold sweep on the dev set: pairwise precision/recall per backbone.

    python bench/quality_sweep.py [--eval ../shared/eval] [--backbone efficientnet-lite0]
        [--db /tmp/sweep.db] [--plot docs/threshold_sweep.png]

Embeds once (cached in --db), then regroups at each threshold. Prints a
markdown table of raw cosine, user score, precision, recall and F1, scored
with imgdedupe.core.groups.evaluate (the same conventions as the set's score.py,
which is also run on the default threshold as a cross-check).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from imgdedupe.core.groups.evaluate import load_groundtruth, pairwise, relative
from imgdedupe.core.model import calibration
from imgdedupe.core.model.loading import load_backbone
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import ScanResult
from imgdedupe.core.scan.pipeline import run_scan


def scan(root: str, db: str, backbone, threshold: float, rotations: bool) -> ScanResult:  # noqa: ANN001
    config = ScanConfig(roots=(root,), db_path=db, backbone=backbone.info.name,
                        threshold=threshold, rotations=rotations)
    result = None
    for event in run_scan(config, backbone=backbone):
        if isinstance(event, ScanResult):
            result = event
    assert result is not None
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--eval", default=os.path.join("..", "shared", "eval"))
    parser.add_argument("--backbone", default="efficientnet-lite0")
    parser.add_argument("--db", default=os.path.join(tempfile.gettempdir(), "imgdedupe-sweep.db"))
    parser.add_argument("--no-rotations", dest="rotations", action="store_false")
    parser.add_argument("--cosines", default="0.60:0.90:0.02")
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    root = os.path.join(args.eval, "images")
    truth = load_groundtruth(os.path.join(args.eval, "groundtruth.csv"))
    backbone, notices = load_backbone(args.backbone, device="cpu")
    for n in notices:
        print("note:", n.message, file=sys.stderr)
    name = backbone.info.name
    lo, hi, step = (float(x) for x in args.cosines.split(":"))
    rows = []
    for cosine in np.arange(lo, hi + 1e-9, step):
        score = float(calibration.cosine_to_score(name, cosine))
        result = scan(root, args.db, backbone, score, args.rotations)
        groups = [relative((m.path for m in g.members), root) for g in result.groups]
        s = pairwise(truth.label, groups)
        rows.append((cosine, score, s.precision, s.recall, s.f1))
    print(f"backbone {name}, rotations {'on' if args.rotations else 'off'}\n")
    print("| cosine | similarity | precision | recall | F1 |")
    print("|---:|---:|---:|---:|---:|")
    for cosine, score, p, r, f in rows:
        print(f"| {cosine:.2f} | {score:.1f} | {p:.4f} | {r:.4f} | {f:.4f} |")
    # Cross-check the default threshold with the set's own scorer.
    result = scan(root, args.db, backbone, calibration.DEFAULT_THRESHOLD, args.rotations)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump([[m.path for m in g.members] for g in result.groups], handle)
    scorer = os.path.join(args.eval, "score.py")
    print(f"\nscore.py at the default threshold ({calibration.DEFAULT_THRESHOLD:g}):")
    print(subprocess.run([sys.executable, scorer, os.path.join(args.eval, "groundtruth.csv"),
                          handle.name], capture_output=True, text=True).stdout)
    os.unlink(handle.name)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        data = np.array(rows)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(data[:, 0], data[:, 2], "o-", label="precision")
        ax.plot(data[:, 0], data[:, 3], "s-", label="recall")
        ax.plot(data[:, 0], data[:, 4], "^-", label="F1")
        default_cos = calibration.score_to_cosine(name, calibration.DEFAULT_THRESHOLD)
        ax.axvline(default_cos, color="grey", ls="--", label="default (similarity 90)")
        ax.set_xlabel(f"cosine threshold ({name})")
        ax.set_ylim(0.5, 1.01)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
        ax.set_title(f"Dev set sweep, {name}, rotations {'on' if args.rotations else 'off'}")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)


if __name__ == "__main__":
    main()

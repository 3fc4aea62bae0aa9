"""Could SIFT on a smaller picture spare most photos the full SIFT?
A feasibility study for the tiers issue's cost target, not the shipped stage.

    python bench/coarse_sift_study.py caltech [--work /tmp/tq] [--side 80]
    python bench/coarse_sift_study.py eval    [--work /tmp/tq_eval] [--side 80]

Needs the cold scan bench/tier_quality.py leaves under --work (its cache
and scan memo): the candidate pairs and the shipped verdicts come from
there. Every photo in a candidate pair gets SIFT keypoints of its stored
verification picture shrunk to --side px (the shipped stage uses 160);
every pair gets the shipped ratio test and one MAGSAC affine of those. A
pair whose coarse fit has fewer than T inliers would be called "not the
same picture" without the full features; the table says, for each T, how
many photos would still need them and which verdicts would be lost.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

from activation_verify_study import SETS, scanned  # noqa: E402

from imgdedupe.core.images.preprocess import PICTURE_KEY, picture_pixels  # noqa: E402
from imgdedupe.core.storage.store import Store  # noqa: E402
from imgdedupe.core.verify import evidence, features  # noqa: E402
from imgdedupe.core.verify.tiers import NEAR_DUPLICATE, NOT_SAME, SAME_GROUP, UNVERIFIED  # noqa: E402


def coarse_inliers(a: features.Features, b: features.Features) -> int:
    """Inliers of one MAGSAC affine of the ratio-tested matches (>= 3)."""
    if len(a) < 3 or len(b) < 3:
        return 0
    saved = evidence.MIN_MATCHES
    evidence.MIN_MATCHES = 3
    try:
        matched = evidence._matches(a, b)
    finally:
        evidence.MIN_MATCHES = saved
    if matched is None:
        return 0
    cv = features.opencv()
    _, inliers = cv.estimateAffine2D(*matched, method=cv.USAC_MAGSAC,
                                     ransacReprojThreshold=evidence.REPROJECTION_PX,
                                     maxIters=evidence.MAX_ITERATIONS,
                                     confidence=evidence.CONFIDENCE)
    return 0 if inliers is None else int(inliers.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("set", choices=sorted(SETS))
    ap.add_argument("--work", default=None)
    ap.add_argument("--side", type=int, default=80)
    args = ap.parse_args()
    _, db, graph, paths, rel, label, used = scanned(args.set, args.work)
    store = Store(db)
    files = {c.path: c.file_id for c in store.sync_files(
        [f for i in used for f in graph.contents[i].files[:1]])}
    pictures = store.pictures(PICTURE_KEY, list(files.values()))
    grey = {i: picture_pixels(pictures[files[paths[i]]][0]) for i in used}
    features.opencv()
    features.FEATURE_SIDE = args.side
    start = time.thread_time()
    coarse = {i: features.extract(grey[i]) for i in used}
    per_photo = (time.thread_time() - start) / len(used)
    start = time.thread_time()
    verified = [(i, j, t) for (i, j), t in zip(graph.pairs.tolist(), graph.tiers.tolist(),
                                               strict=True) if t != SAME_GROUP]
    counts = [coarse_inliers(coarse[i], coarse[j]) for i, j, _ in verified]
    per_pair = (time.thread_time() - start) / max(1, len(verified))
    print(f"side {args.side}: {len(used)} photos, {np.mean([len(f) for f in coarse.values()]):.0f}"
          f" keypoints a photo; {per_photo * 1000:.2f} ms a photo, {len(verified)} pairs "
          f"{per_pair * 1000:.3f} ms a pair (one core, CPU time)")
    kinds = {"known copy": [], "shipped near/similar": [], "wrong": [], "other": []}
    for (i, j, tier), n in zip(verified, counts, strict=True):
        truth_of = label(rel[i], rel[j])
        if truth_of is True:
            kinds["known copy"].append(n)
        if tier not in (NOT_SAME, UNVERIFIED):
            kinds["shipped near/similar"].append(n)
        if truth_of is False:
            kinds["wrong"].append(n)
    for name, values in kinds.items():
        if values:
            v = np.array(values)
            print(f"  {name} ({len(v)}): min {v.min()}, 5th pct {np.percentile(v, 5):.0f}, "
                  f"median {np.median(v):.0f}")
    photos = len(used)
    for t in range(2, 16):
        kept = [(i, j) for (i, j, _), n in zip(verified, counts, strict=True) if n >= t]
        need = len({x for pair in kept for x in pair})
        lost_known = sum(1 for (i, j, _), n in zip(verified, counts, strict=True)
                         if n < t and label(rel[i], rel[j]) is True)
        lost_verdicts = [(rel[i], rel[j], tier, n) for (i, j, tier), n
                         in zip(verified, counts, strict=True)
                         if n < t and tier not in (NOT_SAME, UNVERIFIED)]
        lost_near = sum(1 for x in lost_verdicts if x[2] == NEAR_DUPLICATE)
        print(f"  T={t:2d}: pairs for full SIFT {len(kept)}/{len(verified)}, photos needing "
              f"full features {need}/{photos} ({100 * need / photos:.0f}%); known copies "
              f"dropped {lost_known}; shipped verdicts dropped {len(lost_verdicts)} "
              f"({lost_near} near-duplicate)")
        if len(lost_verdicts) and t <= 8:
            for a, b, tier, n in lost_verdicts[:6]:
                print(f"      {a} ~ {b} tier {tier} coarse inliers {n}")


if __name__ == "__main__":
    main()

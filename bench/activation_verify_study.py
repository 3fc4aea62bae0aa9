"""Could the network's own activations replace SIFT in verification?
A feasibility study for the tiers issue's cost target, not the shipped stage.

    python bench/activation_verify_study.py caltech [--work /tmp/tq]
    python bench/activation_verify_study.py eval    [--work /tmp/tq_eval]

Needs the cold scan bench/tier_quality.py leaves under --work (its cache
and scan memo): the candidate pairs and the shipped (SIFT) verdicts come
from there. For every photo in a candidate pair, EfficientNet-Lite0's
stride-16 activations (block 10: 14 x 14 cells of 112 channels, what the
scan's forward computes anyway) are taken by a hook; for every pair, the
cells' mutual nearest neighbours give a coarse A -> B affine (MAGSAC, a
12-px reprojection limit on the 224 picture), refined by ECC on the two
grey verification pictures, and the shipped pixel check
(verify.evidence._pixels_changed) decides as the shipped near-duplicate
rule does (<= 3.5% of the overlap changed, overlap >= 0.5).

Prints, for the SIFT verdicts and for this, the known copies passed as
near-duplicates (caltech: duplicates_known.csv's crop / edited /
near_identical; eval: groundtruth.csv's groups) and the photos in a wrong
near-duplicate pair (pairs, not groups), and the cost a pair.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from imgdedupe.core.images.preprocess import (  # noqa: E402
    PICTURE_KEY,
    decode_for_network,
    picture_pixels,
)
from imgdedupe.core.model.loading import load_backbone  # noqa: E402
from imgdedupe.core.scan.config import ScanConfig  # noqa: E402
from imgdedupe.core.scan.pipeline import run_scan  # noqa: E402
from imgdedupe.core.storage.store import Store  # noqa: E402
from imgdedupe.core.verify.evidence import _pixels_changed  # noqa: E402
from imgdedupe.core.verify.features import opencv  # noqa: E402
from imgdedupe.core.verify.tiers import NEAR_DUPLICATE, SAME_GROUP  # noqa: E402

SETS = {"caltech": os.path.join(REPO, "..", "shared", "corpus", "caltech101"),
        "eval": os.path.join(REPO, "..", "shared", "eval")}
BLOCK = 10  # 112 channels at stride 16
CELL = 16


def truth(name: str, root: str):  # noqa: ANN201
    """A function (rel_a, rel_b) -> True (a known copy), False (wrong) or
    None (neither: a same-scene pair, a mirror, a distractor's own copy)."""
    if name == "caltech":
        with open(os.path.join(root, "duplicates_known.csv"), newline="") as handle:
            rows = list(csv.DictReader(handle))
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                x = parent[x]
            return x

        for r in rows:
            if r["kind"] != "same_scene":
                parent[find(r["path_a"])] = find(r["path_b"])
        scene = {frozenset((r["path_a"], r["path_b"])) for r in rows if r["kind"] == "same_scene"}

        def label(a: str, b: str) -> bool | None:
            if a in parent and b in parent and find(a) == find(b):
                return True
            return None if frozenset((a, b)) in scene else False
        return label
    with open(os.path.join(root, "groundtruth.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    # The scan's root is the set's folder; its labels name paths under images/.
    group = {"images/" + r["path"]: r["group_id"] for r in rows}
    kind = {"images/" + r["path"]: r["transform"] for r in rows}

    def label(a: str, b: str) -> bool | None:
        if "hflip" in (kind.get(a), kind.get(b)):
            return None
        if group.get(a) and group.get(a) == group.get(b):
            return None if any(kind.get(p, "").startswith("real_") for p in (a, b)) else True
        return False
    return label


def activations(paths: list[str]) -> dict[str, np.ndarray]:
    backbone, _ = load_backbone("efficientnet-lite0", device="cpu")
    taken: list[np.ndarray] = []
    block = backbone._module.net._blocks[BLOCK]
    block.register_forward_hook(lambda _m, _i, out: taken.append(out.float().numpy()))
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(paths), 16):
        chunk = paths[start:start + 16]
        backbone.embed(np.stack([decode_for_network(p).array for p in chunk]))
        maps = taken.pop()
        for path, m in zip(chunk, maps, strict=True):
            cells = m.reshape(m.shape[0], -1).T  # (196, 112)
            out[path] = cells / np.maximum(np.linalg.norm(cells, axis=1, keepdims=True), 1e-6)
    return out


def coarse_affine(fa: np.ndarray, fb: np.ndarray, side: int) -> tuple[np.ndarray | None, int]:
    cv = opencv()
    s = fa @ fb.T
    ab, ba = s.argmax(1), s.argmax(0)
    mutual = np.flatnonzero(ba[ab] == np.arange(len(ab)))
    if len(mutual) < 6:
        return None, 0
    centres = (np.stack(np.divmod(np.arange(side * side), side), 1)[:, ::-1] * CELL
               + CELL / 2 - 0.5).astype(np.float32)
    affine, inliers = cv.estimateAffine2D(centres[mutual], centres[ab[mutual]],
                                          method=cv.USAC_MAGSAC, ransacReprojThreshold=12.0,
                                          maxIters=2000, confidence=0.995)
    if affine is None:
        return None, 0
    return affine, int(inliers.sum())


def refine(grey_a: np.ndarray, grey_b: np.ndarray, affine: np.ndarray) -> np.ndarray:
    cv = opencv()
    warp = affine.astype(np.float32)
    try:
        _, warp = cv.findTransformECC(grey_a.astype(np.float32), grey_b.astype(np.float32),
                                      warp, cv.MOTION_AFFINE,
                                      (cv.TERM_CRITERIA_EPS | cv.TERM_CRITERIA_COUNT, 30, 1e-4),
                                      None, 5)
    except cv.error:
        pass  # no convergence: the coarse fit stands
    return warp


def cascade(rows: list, graph) -> None:  # noqa: ANN001
    """If pairs whose cells agree on fewer than T were called "not the same
    picture" without SIFT: what would be kept, and how many photos would
    still need SIFT features."""
    positive = [t in (NEAR_DUPLICATE, SAME_GROUP, 1) for t in graph.tiers.tolist()]
    for name, keep in (("known copies", lambda r, p: r[2] is True),
                       ("same-scene/mirror/real pairs", lambda r, p: r[2] is None),
                       ("pairs SIFT calls near or similar", lambda r, p: p),
                       ("wrong pairs", lambda r, p: r[2] is False)):
        counts = np.array([r[5] for r, p in zip(rows, positive, strict=True) if keep(r, p)])
        if len(counts):
            print(f"cells agreeing, {name} ({len(counts)}): min {counts.min()}, "
                  f"5th pct {np.percentile(counts, 5):.0f}, median {np.median(counts):.0f}")
    photos = len({p for r in rows for p in r[:2]})
    for t in (6, 8, 10, 12, 16, 20, 25, 30, 40):
        kept = [(r, p) for r, p in zip(rows, positive, strict=True) if r[5] >= t]
        lost_true = sum(1 for r in rows if r[2] is True and r[5] < t)
        lost_positive = sum(1 for r, p in zip(rows, positive, strict=True) if p and r[5] < t)
        need = len({x for r, _ in kept for x in r[:2]})
        print(f"  T={t:3d}: pairs left for SIFT {len(kept)}/{len(rows)}, photos needing "
              f"features {need}/{photos}; known copies dropped {lost_true}, SIFT's "
              f"near/similar verdicts dropped {lost_positive}")


def scanned(name: str, work: str | None):  # noqa: ANN201
    """The scan bench/tier_quality.py left under ``work`` (rescanned from its
    cache): (work, db, graph, each content's path, the same relative to the
    set's root, truth(), the contents in a candidate pair)."""
    root = os.path.realpath(SETS[name])
    work = work or ("/tmp/tq" if name == "caltech" else "/tmp/tq_eval")
    db = os.path.join(work, f"{name}.db")
    result = [e for e in run_scan(ScanConfig(roots=(root,), db_path=db,
                                             backbone="efficientnet-lite0"))][-1]
    graph = result.graph
    paths = [graph.contents[i].files[0].path for i in range(len(graph.contents))]
    rel = [os.path.relpath(p, root) for p in paths]
    used = sorted({int(i) for i in graph.pairs.ravel()})
    return work, db, graph, paths, rel, truth(name, root), used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("set", choices=sorted(SETS))
    ap.add_argument("--work", default=None)
    ap.add_argument("--coarse", action="store_true",
                    help="only the cells' fit (no ECC, no pixel check): the cascade table")
    args = ap.parse_args()
    work, db, graph, paths, rel, label, used = scanned(args.set, args.work)
    start = time.perf_counter()
    cached = os.path.join(work, f"{args.set}.activations.npz")
    if os.path.exists(cached):
        with np.load(cached) as data:
            maps = {paths[i]: data[str(i)] for i in used}
    else:
        maps = activations([paths[i] for i in used])
        np.savez(cached, **{str(i): maps[paths[i]] for i in used})
    print(f"{len(graph.pairs)} candidate pairs, {len(used)} photos "
          f"(activations {time.perf_counter() - start:.0f} s)")
    store = Store(db)
    files = {c.path: c.file_id for c in store.sync_files(
        [f for i in used for f in graph.contents[i].files[:1]])}
    pictures = store.pictures(PICTURE_KEY, list(files.values()))
    grey = {paths[i]: picture_pixels(pictures[files[paths[i]]][0]) for i in used}
    rows = []
    costs = {"match": 0.0, "ecc": 0.0, "pixels": 0.0}
    for (i, j), tier in zip(graph.pairs.tolist(), graph.tiers.tolist(), strict=True):
        t0 = time.perf_counter()
        affine, inliers = coarse_affine(maps[paths[i]], maps[paths[j]], 14)
        t1 = time.perf_counter()
        near = False
        if affine is not None and not args.coarse:
            warp = refine(grey[paths[i]], grey[paths[j]], affine)
            t2 = time.perf_counter()
            changed, covered, _ = _pixels_changed(grey[paths[i]], grey[paths[j]], warp)
            det = abs(float(np.linalg.det(warp[:, :2])))
            overlap = min(1.0, max(covered, covered * det))
            near = changed <= 0.035 and overlap >= 0.5
            costs["ecc"] += t2 - t1
            costs["pixels"] += time.perf_counter() - t2
        costs["match"] += t1 - t0
        sift_near = tier in (NEAR_DUPLICATE, SAME_GROUP)
        rows.append((rel[i], rel[j], label(rel[i], rel[j]), sift_near, near, inliers))
    for name, column in (("SIFT (shipped)", 3), ("activations + ECC", 4)):
        true = [r for r in rows if r[2] is True]
        found = sum(1 for r in true if r[column])
        wrong = {p for r in rows if r[2] is False and r[column] for p in r[:2]}
        print(f"{name}: known copies passed {found}/{len(true)}; "
              f"photos in wrong near-duplicate pairs {len(wrong)}")
    only_sift = [r for r in rows if r[2] is True and r[3] and not r[4]]
    only_act = [r for r in rows if r[2] is False and r[4] and not r[3]]
    print("copies SIFT passes and this does not:", *[f"{a} ~ {b} ({n} cells)"
                                                     for a, b, _, _, _, n in only_sift[:15]],
          sep="\n  ")
    print("wrong pairs this passes and SIFT does not:", *[f"{a} ~ {b} ({n} cells)"
                                                        for a, b, _, _, _, n in only_act[:15]],
          sep="\n  ")
    cascade(rows, graph)
    n = max(1, len(rows))
    print("cost a pair (ms, one core): " + ", ".join(f"{k} {1000 * v / n:.2f}"
                                                      for k, v in costs.items()))


if __name__ == "__main__":
    main()

"""Prototype of pair verification: sort the scan's candidate pairs into tiers.

    python bench/verify_prototype.py --set eval|caltech [--min-cosine 0.65]
                                     [--db PATH] [--out DIR]

The CNN's cosine groups photos *of the same kind* (two faces, two pianos on
white) as readily as copies of one photo. This checks each candidate pair
with local features and one robust affine fit on the 224x224 picture the
scan already feeds the network, and calls it near_duplicate (one photo,
edited/cropped/re-encoded/turned), similar_shot (same scene or object, a
second take) or none. See docs/verification.md for the method comparison
that chose these settings and for what is left to build.

Steps: scan the set with the engine (efficientnet-lite0, threshold 70) and
take the pairs of ``result.graph`` with cosine >= --min-cosine; extract SIFT
on the grey network input of every image in a pair; verify every pair; tier
it; score. eval: pairwise precision/recall through shared/eval/score.py
(--hflip ignore) and a transform -> tier table. caltech: photos in wrong
links (near_duplicate alone, and all tiers) and recall of the known pairs
of duplicates_known.csv by kind. Both: ms per image (extract) and per pair
(verify) on this process's core(s): run it with taskset -c N and
OMP_NUM_THREADS=1 for one-core figures.

--db: the scan's database; a second run on the same db reuses its
embeddings and scan memo, so only the verification is redone (caltech:
~12 min of embedding the first time on one core, a few minutes after).
Default: a fresh one under --out. The verification itself is the engine's
(imgdedupe.core.verify: features, evidence, tiers); the scan does not call
it yet, so this script is where its quality is measured.
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime
import json
import os
import subprocess
import sys
import time

import numpy as np

from imgdedupe.core.errors import DecodeError
from imgdedupe.core.images.preprocess import (
    decode_for_network,
    picture_pixels,
    verification_picture,
)
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import ScanResult
from imgdedupe.core.scan.pipeline import run_scan
from imgdedupe.core.verify.evidence import PairEvidence, compare
from imgdedupe.core.verify.features import extract
from imgdedupe.core.verify.tiers import judge

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETS = {"eval": os.path.join(REPO, "..", "shared", "eval"),
        "caltech": os.path.join(REPO, "..", "shared", "corpus", "caltech101")}

TIERS = ("none", "similar_shot", "near_duplicate")


def load_cv2():
    try:
        import cv2  # noqa: F401  (imgdedupe.core.verify imports it on first use)
    except ImportError:
        sys.exit("verify_prototype needs OpenCV: pip install opencv-python-headless")


def scan_pairs(root: str, db: str, min_cosine: float):
    """The engine's candidate pairs: (files of each content, pairs, cosines)."""
    cfg = ScanConfig(roots=(root,), db_path=db, backbone="efficientnet-lite0",
                     threshold=70.0, device="cpu", decode_workers=1)
    t = time.perf_counter()
    result = [e for e in run_scan(cfg) if isinstance(e, ScanResult)][-1]
    g = result.graph
    contents = [[f.path for f in c.files] for c in g.contents]
    # float32 as the graph keeps them: 0.65 must compare as the prototype did
    pairs, cos = np.asarray(g.pairs, np.int64), np.asarray(g.cosines, np.float32)
    print(f"scan: {len(contents)} contents, {len(pairs)} pairs in {time.perf_counter() - t:.0f} s;"
          " pairs at cosine >= " + ", ".join(f"{c}: {int((cos >= np.float32(c)).sum())}"
                                              for c in (0.61, 0.62, 0.65, 0.72)))
    keep = cos >= np.float32(min_cosine)
    return contents, pairs[keep], cos[keep]


def extract_all(contents, pairs):
    """Grey network input and SIFT features of each image in a pair, as the
    engine's verify package makes them."""
    grey, feats, t_dec, t_ext = {}, {}, 0.0, 0.0
    for i in sorted(set(pairs.ravel().tolist())):
        t = time.perf_counter()
        try:  # the picture the scan verifies: its grey network input, as stored
            rgb = decode_for_network(contents[i][0]).array
        except DecodeError:
            continue
        grey[i] = picture_pixels(verification_picture(rgb))
        t_dec += time.perf_counter() - t
        t = time.perf_counter()
        feats[i] = extract(grey[i])
        t_ext += time.perf_counter() - t
    n = max(1, len(grey))
    nkp = np.mean([len(f) for f in feats.values()]) if feats else 0.0
    cost = {"images": len(grey), "decode_ms": 1e3 * t_dec / n, "extract_ms": 1e3 * t_ext / n,
            "mean_keypoints": float(nkp), "cache_bytes": float(nkp * (128 + 4))}
    return grey, feats, cost


def verify_all(pairs, cos, grey, feats, times):
    """The engine's verdict on every pair: (tier codes, mirrored, ms a pair)."""
    codes, mirrored, t = [], [], time.perf_counter()
    for (a, b), cosine in zip(pairs.tolist(), cos.tolist(), strict=True):
        if a in grey and b in grey:  # else an undecodable image: no evidence
            evidence = compare(feats[a], feats[b], grey[a], grey[b])
        else:
            evidence = PairEvidence()
        taken = [None if np.isnan(times[i]) else float(times[i]) for i in (a, b)]
        codes.append(TIERS.index(judge(evidence, cosine, *taken).tier))
        mirrored.append(evidence.determinant < 0)
    ms = 1e3 * (time.perf_counter() - t) / max(1, len(pairs))
    return np.array(codes, int), np.array(mirrored, bool), ms


def capture_times(contents) -> np.ndarray:
    """EXIF DateTimeOriginal (else DateTime) of each content's first file, in
    seconds; nan when absent or invalid (0000:00:00 00:00:00 is common)."""
    from PIL import Image
    out = np.full(len(contents), np.nan)
    for i, files in enumerate(contents):
        try:
            with Image.open(files[0]) as im:
                e = im.getexif()
                s = e.get_ifd(0x8769).get(0x9003) or e.get(0x0132)
            stamp = datetime.datetime.strptime(str(s).strip(), "%Y:%m:%d %H:%M:%S")
            out[i] = stamp.timestamp()
        except Exception:  # noqa: BLE001 - any unreadable or odd tag: no time
            pass
    return out


def components(n, edges) -> list[int]:
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for a, b in edges:
        parent[find(a)] = find(b)
    return [find(i) for i in range(n)]


def score_eval(root, contents, pairs, t, out_dir):
    """score.py on the groups the linked pairs (any tier) make, and the tier
    each true pair got, per transform of its two files."""
    link = components(len(contents), pairs[t > 0])
    groups = collections.defaultdict(list)
    for i, r in enumerate(link):
        groups[r].extend(contents[i])
    pred = os.path.join(out_dir, "eval_groups.json")
    with open(pred, "w") as fh:
        json.dump([g for g in groups.values() if len(g) > 1], fh)
    gt_csv = os.path.join(root, "groundtruth.csv")
    res = subprocess.run([sys.executable, os.path.join(root, "score.py"), gt_csv, pred,
                          "--hflip", "ignore", "--json"],
                         capture_output=True, text=True, check=True)
    js = json.loads(res.stdout)
    pw = js["pairwise"]
    print(f"eval pairwise: precision {pw['precision']:.3f} recall {pw['recall']:.3f} "
          f"({pw['correct_pairs']}/{pw['predicted_pairs']} predicted, {pw['true_pairs']} true)")
    print("real-photo recall vs base:", {k: f"{v['hit']}/{v['total']}" for k, v
                                         in js["per_transform_recall_vs_base"].items()
                                         if k.startswith("real")})
    with open(gt_csv, newline="") as fh:
        gt = {r["path"]: (r["group_id"], r["transform"]) for r in csv.DictReader(fh)}
    images = os.path.join(root, "images")
    rows = [[gt[os.path.relpath(p, images)] for p in files] for files in contents]
    table, wrong = collections.defaultdict(lambda: [0, 0, 0]), []
    for k, (a, b) in enumerate(pairs):
        (ga, ta), (gb, tb) = rows[a][0], rows[b][0]
        if ga and ga == gb and "hflip" in (ta, tb):
            table["(hflip, ignored)"][t[k]] += 1
        elif ga and ga == gb:
            for x in {x for _, x in rows[a] + rows[b]} - {"original", "real_original"} \
                    or {"original"}:
                table[x][t[k]] += 1
        elif t[k] > 0:
            wrong.append((TIERS[t[k]], contents[a][0], contents[b][0]))
    print(f"transform -> tier of the true candidate pairs with a file of it {list(TIERS)}")
    for x in sorted(table):
        print(f"  {x:30s} {table[x]}")
    print(f"wrong links: {len(wrong)}", *wrong, sep="\n  ")


def score_caltech(root, contents, pairs, cos, t):
    """Photos in links that are not known copies (duplicates_known.csv; a
    same_scene pair is right for similar_shot only), and known-pair recall."""
    with open(os.path.join(root, "duplicates_known.csv"), newline="") as fh:
        known = list(csv.DictReader(fh))
    copies = [(r["path_a"], r["path_b"]) for r in known if r["kind"] != "same_scene"]
    nodes = sorted({x for e in copies for x in e})
    at = {x: i for i, x in enumerate(nodes)}
    comp = dict(zip(nodes, components(len(nodes), [(at[a], at[b]) for a, b in copies]),
                    strict=True))
    scene = {frozenset((r["path_a"], r["path_b"])) for r in known if r["kind"] == "same_scene"}
    rel = [os.path.relpath(files[0], root) for files in contents]
    near = t == 2
    for name, mask in (("near_duplicate alone", near), ("all tiers", t > 0)):
        bad, wrong = set(), []
        for k in np.nonzero(mask)[0]:
            ra, rb = rel[pairs[k][0]], rel[pairs[k][1]]
            if ra in comp and rb in comp and comp[ra] == comp[rb]:
                continue
            same_scene = frozenset((ra, rb)) in scene
            if same_scene and mask is not near:
                continue  # the same scene may be grouped, though not as a copy
            bad |= {ra, rb}
            wrong.append(f"{ra} ~ {rb} [{TIERS[t[k]]}, cos {cos[k]:.2f}"
                         + (", a known same_scene pair]" if same_scene else "]"))
        print(f"caltech {name}: {len(bad)} photos in {len(wrong)} wrong links",
              *wrong[:40], sep="\n  ")
    link = components(len(contents), pairs[t > 0])
    index = {r: i for i, r in enumerate(rel)}
    cand = {frozenset(p) for p in pairs.tolist()}
    rec, missed = collections.defaultdict(lambda: [0, 0, 0]), []
    for r in known:
        a, b = index.get(r["path_a"]), index.get(r["path_b"])
        k = rec[r["kind"]]
        k[0] += 1
        if a is not None and b is not None:
            k[1] += frozenset((a, b)) in cand
            k[2] += int(link[a] == link[b])
        if (a is None or b is None or link[a] != link[b]) and r["kind"] != "same_scene":
            missed.append(f"{r['kind']}: {r['path_a']} ~ {r['path_b']}")
    print("known pairs by kind: [n, candidates, same group]")
    for kind, v in sorted(rec.items()):
        print(f"  {kind:15s} {v}")
    main3 = ("crop", "edited", "near_identical")
    hit, n = sum(rec[k][2] for k in main3), sum(rec[k][0] for k in main3)
    print(f"recall of crop+edited+near_identical: {hit}/{n} = {hit / max(1, n):.3f}")
    print(f"missed known copies: {len(missed)}", *missed, sep="\n  ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=sorted(SETS), required=True)
    ap.add_argument("--min-cosine", type=float, default=0.65)
    ap.add_argument("--root", help="the set's folder (default ../shared/... of the repo)")
    ap.add_argument("--db", help="scan database (default OUT/SET.db)")
    ap.add_argument("--out", default=os.path.join("/tmp", "verify_prototype"))
    args = ap.parse_args()
    load_cv2()
    root = os.path.normpath(args.root or SETS[args.set])
    os.makedirs(args.out, exist_ok=True)
    scan_root = os.path.join(root, "images") if args.set == "eval" else root
    db = args.db or os.path.join(args.out, f"{args.set}.db")
    contents, pairs, cos = scan_pairs(scan_root, db, args.min_cosine)
    print(f"verifying {len(pairs)} pairs at cosine >= {args.min_cosine}")
    grey, feats, cost = extract_all(contents, pairs)
    times = capture_times(contents)
    print(f"EXIF capture times: {int(np.sum(~np.isnan(times)))}/{len(contents)} contents")
    t, mirrored, pair_ms = verify_all(pairs, cos, grey, feats, times)
    print("tiers:", dict(zip(TIERS, np.bincount(t, minlength=3).tolist(), strict=True)))
    print(f"mirrored (det < 0) among near_duplicate: {int(np.sum((t == 2) & mirrored))}")
    if args.set == "eval":
        score_eval(root, contents, pairs, t, args.out)
    else:
        score_caltech(root, contents, pairs, cos, t)
    print(f"cost: {cost['images']} images, decode (the scan's, reused) {cost['decode_ms']:.1f} ms, "
          f"extract {cost['extract_ms']:.1f} ms/image, {cost['mean_keypoints']:.0f} keypoints, "
          f"~{cost['cache_bytes'] / 1e3:.0f} KB/image as xy+uint8; verify {pair_ms:.1f} ms/pair; "
          f"{len(pairs) / max(1, len(contents)):.1f} pairs per content in the graph")


if __name__ == "__main__":
    main()

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
Default: a fresh one under --out. opencv-python-headless is needed here and
is not (yet) a dependency of the app.
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
from imgdedupe.core.images.preprocess import decode_for_network
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import ScanResult
from imgdedupe.core.scan.pipeline import run_scan

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETS = {"eval": os.path.join(REPO, "..", "shared", "eval"),
        "caltech": os.path.join(REPO, "..", "shared", "corpus", "caltech101")}

# Features: SIFT beat ORB and larger pictures on wrong links per recall
# (docs/verification.md); contrastThreshold 0.01 (default 0.04) because the
# 224 input is small and flat catalogue shots gave too few keypoints.
SIFT_NFEATURES = 500
SIFT_CONTRAST = 0.01
RATIO = 0.8  # Lowe's ratio test
# The fit: MAGSAC++ is robust to the many wrong matches between two photos
# of the same kind; 3 px on a 224 frame.
REPROJ_PX = 3.0
MAX_ITERS = 2000
CONFIDENCE = 0.995
MIN_MATCHES = 6
# Photometric check after warping B onto A: grey levels, after one gain and
# offset (brightness/contrast edits), that still differ by more than this.
DIFF_GREY = 25
ERODE_PX = 5   # drop the overlap's rim, where interpolation smears the border
BLUR_SIGMA = 1.5  # JPEG noise and resampling must not count as changes
# Sanity of the affine: singular values s1 >= s2 of its 2x2 part. A 90-degree
# turn of a squashed (non-square) photo is an affine with s1/s2 ~ aspect^2,
# hence 4 and not ~1.
MIN_S2, MAX_S1, MAX_ANISO = 0.1, 10.0, 4.0
# near_duplicate: (inliers, max diff share, min overlap) of one of three rules.
NEAR_RULES = ((8, 0.02, 0.5),    # a copy: few keypoints suffice when nothing changed
              (20, 0.02, 0.3),   # a crop: small overlap, more inliers
              (40, 0.08, 0.5))   # an edit (watermark, border...): more pixels changed
# similar_shot
SIM_INLIERS, SIM_DIFF, SIM_OVERLAP = 25, 0.12, 0.5
SIM_ANY_INLIERS = 120  # affine or homography inliers: same scene from another viewpoint
STRONG_INLIERS, STRONG_ANISO, STRONG_OVERLAP, STRONG_DIFF = 60, 1.15, 0.8, 0.5
EXIF_SECONDS, EXIF_COSINE = 60, 0.72  # burst / second take by capture time
TIERS = ("none", "similar_shot", "near_duplicate")
FIELDS = ("inl", "s1", "s2", "det", "diff", "overlap", "inlH")


def load_cv2():
    try:
        import cv2
    except ImportError:
        sys.exit("verify_prototype needs OpenCV: pip install opencv-python-headless "
                 "(not a dependency of the app yet)")
    cv2.setNumThreads(1)  # per-pair work is small; threads only add contention
    return cv2


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


def extract_all(cv2, contents, pairs):
    """Grey 224 network input and SIFT (xy, descriptors) of each image in a pair."""
    sift = cv2.SIFT_create(nfeatures=SIFT_NFEATURES, contrastThreshold=SIFT_CONTRAST)
    grey, feats, t_dec, t_ext = {}, {}, 0.0, 0.0
    for i in sorted(set(pairs.ravel().tolist())):
        t = time.perf_counter()
        try:  # exactly the pixels the scan's model saw
            rgb, _, _ = decode_for_network(contents[i][0])
        except DecodeError:
            continue
        g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        t_dec += time.perf_counter() - t
        t = time.perf_counter()
        kps, desc = sift.detectAndCompute(g, None)
        # uint8 descriptors: SIFT's values fit 0..255, a quarter of float32 in a cache
        feats[i] = (np.array([k.pt for k in kps], np.float32).reshape(-1, 2),
                    None if desc is None else np.clip(desc, 0, 255).astype(np.uint8))
        t_ext += time.perf_counter() - t
        grey[i] = g
    n = max(1, len(grey))
    nkp = np.mean([len(f[0]) for f in feats.values()]) if feats else 0.0
    cost = {"images": len(grey), "decode_ms": 1e3 * t_dec / n, "extract_ms": 1e3 * t_ext / n,
            "mean_keypoints": float(nkp), "cache_bytes": float(nkp * (128 + 4))}
    return grey, feats, cost


def match(cv2, fa, fb):
    """Ratio-test matches -> (points in A, points in B), or None."""
    (pa, da), (pb, db) = fa, fb
    if da is None or db is None or len(pa) < 3 or len(pb) < 3:
        return None
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(da.astype(np.float32), db.astype(np.float32), k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(good) < MIN_MATCHES:
        return None
    return pa[[m.queryIdx for m in good]], pb[[m.trainIdx for m in good]]


def photometric(cv2, ga, gb, M):
    """(share of A's overlap pixels off by > DIFF_GREY after a gain/offset fit,
    share of A that B covers) with B warped onto A by the A->B affine M."""
    h, w = ga.shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    wb = cv2.warpAffine(gb.astype(np.float32), M, (w, h), flags=flags,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=-1)
    mask = cv2.warpAffine(np.ones_like(gb, np.float32), M, (w, h),
                          flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP) > 0.5
    mask = cv2.erode(mask.astype(np.uint8), np.ones((ERODE_PX, ERODE_PX), np.uint8)) > 0
    if mask.sum() < 100:
        return 1.0, 0.0
    a = cv2.GaussianBlur(ga.astype(np.float32), (0, 0), BLUR_SIGMA)[mask]
    b = cv2.GaussianBlur(np.where(wb < 0, 0, wb), (0, 0), BLUR_SIGMA)[mask]
    design = np.stack([b, np.ones_like(b)], 1)
    coef, *_ = np.linalg.lstsq(design, a, rcond=None)
    return float((np.abs(a - design @ coef) > DIFF_GREY).mean()), float(mask.mean())


def verify_pair(cv2, fa, fb, ga, gb) -> dict:
    out = dict.fromkeys(FIELDS, 0.0)
    out["diff"] = 1.0
    m = match(cv2, fa, fb)
    if m is None:
        return out
    A, B = m
    M, inl = cv2.estimateAffine2D(A, B, method=cv2.USAC_MAGSAC, ransacReprojThreshold=REPROJ_PX,
                                  maxIters=MAX_ITERS, confidence=CONFIDENCE)
    if M is not None and inl is not None:
        out["inl"] = int(inl.sum())
        out["s1"], out["s2"] = (float(s) for s in np.linalg.svd(M[:, :2], compute_uv=False))
        out["det"] = float(np.linalg.det(M[:, :2]))  # < 0: a mirrored copy (hflip)
        out["diff"], out["overlap"] = photometric(cv2, ga, gb, M)
    # A homography's inlier count only feeds similar_shot (another viewpoint).
    H, inlh = cv2.findHomography(A, B, cv2.USAC_MAGSAC, REPROJ_PX,
                                 maxIters=MAX_ITERS, confidence=CONFIDENCE)
    if H is not None and inlh is not None:
        out["inlH"] = int(inlh.sum())
    return out


def verify_all(cv2, pairs, grey, feats):
    rows, t = [], time.perf_counter()
    for a, b in pairs:
        if a in grey and b in grey:
            m = verify_pair(cv2, feats[a], feats[b], grey[a], grey[b])
        else:  # an undecodable image: no evidence
            m = dict.fromkeys(FIELDS, 0.0) | {"diff": 1.0}
        rows.append([m[f] for f in FIELDS])
    ms = 1e3 * (time.perf_counter() - t) / max(1, len(pairs))
    arr = np.array(rows, np.float64).reshape(-1, len(FIELDS))
    return {f: arr[:, j] for j, f in enumerate(FIELDS)}, ms


def tiers(m, cos, dt) -> np.ndarray:
    """0 none, 1 similar_shot, 2 near_duplicate (the prototype's rules.FINAL)."""
    inl, diff, s1, s2 = m["inl"], m["diff"], m["s1"], m["s2"]
    aniso = s1 / np.maximum(s2, 1e-9)
    sane = (s2 > MIN_S2) & (s1 < MAX_S1) & (aniso <= MAX_ANISO)
    # Overlap of the smaller picture: a crop blown up to 224 covers little of
    # the original, but the original covers all of it (share * |det|).
    ovl = np.minimum(1.0, np.maximum(m["overlap"], m["overlap"] * np.abs(m["det"])))
    near = np.zeros(len(cos), bool)
    for n_inl, max_diff, min_ovl in NEAR_RULES:
        near |= (inl >= n_inl) & (diff <= max_diff) & (ovl >= min_ovl) & sane
    sim = (inl >= SIM_INLIERS) & (diff <= SIM_DIFF) & (ovl >= SIM_OVERLAP) & sane
    sim |= np.maximum(inl, m["inlH"]) >= SIM_ANY_INLIERS
    sim |= ((inl >= STRONG_INLIERS) & (aniso <= STRONG_ANISO) & (ovl >= STRONG_OVERLAP)
            & (diff <= STRONG_DIFF))
    sim |= (dt <= EXIF_SECONDS) & (cos >= EXIF_COSINE)
    t = np.zeros(len(cos), int)
    t[sim & ~near] = 1
    t[near] = 2
    return t


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
    cv2 = load_cv2()
    root = os.path.normpath(args.root or SETS[args.set])
    os.makedirs(args.out, exist_ok=True)
    scan_root = os.path.join(root, "images") if args.set == "eval" else root
    db = args.db or os.path.join(args.out, f"{args.set}.db")
    contents, pairs, cos = scan_pairs(scan_root, db, args.min_cosine)
    print(f"verifying {len(pairs)} pairs at cosine >= {args.min_cosine}")
    grey, feats, cost = extract_all(cv2, contents, pairs)
    m, pair_ms = verify_all(cv2, pairs, grey, feats)
    times = capture_times(contents)
    dt = np.abs(times[pairs[:, 0]] - times[pairs[:, 1]])
    print(f"EXIF capture times: {int(np.sum(~np.isnan(times)))}/{len(contents)} contents")
    t = tiers(m, cos, np.where(np.isnan(dt), np.inf, dt))
    print("tiers:", dict(zip(TIERS, np.bincount(t, minlength=3).tolist(), strict=True)))
    print(f"mirrored (det < 0) among near_duplicate: {int(np.sum((t == 2) & (m['det'] < 0)))}")
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

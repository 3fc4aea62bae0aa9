"""How the tiers generalise to edits the tuning sets never had.

    python bench/heldout_transforms.py [--root ../shared/corpus/caltech101]
                                       [--work /tmp/heldout] [--rebuild] [--rescan]

Builds a held-out style library under WORK/library from Caltech-101 photos
(seeded, deterministic), scans it with the real CLI at its defaults
(EfficientNet-Lite0, fresh database WORK/scan.db), then scores it:

* bases (evenly spread photos, none listed in duplicates_known.csv, no
  Faces_easy) each get ONE copy made by an edit the dev set does not
  have, cycling through TRANSFORMS; the table says per edit how many copies
  share a group with their base, and in which tier;
* hard negatives that must not be near_duplicate (two disjoint thirds of
  a photo, alone and with the photo itself; a photo and the same photo with
  a third of it replaced by another photo; two "burst" windows moved by
  15% / 25% of the width);
* distractors (other Caltech photos, no copies): photos grouped with a
  picture that is not theirs (wrong links), per tier;
* for every copy not grouped near_duplicate with its base, the pair's
  evidence as the scan computes it (stored if the scan verified the pair,
  else computed from the stored verification pictures), its cosine and
  the stage that lost it: (a) candidate (cosine below the floor, never
  verified), (b) keypoints (< 8 affine inliers), (c) pixels (enough
  inliers over enough overlap, too many pixels changed), (d) a rule of
  verify.tiers (the rest: overlap, anisotropy, inliers between rules);
  beside it what other evidence would say (the pair compared the other way
  round, B mirrored before its keypoints, the pixel check after a
  homography): diagnostics only, the shipped code is not changed;
* "order": copies whose verdict changes when the two files are compared
  the other way round (the scan compares them in file-id order).

A run takes ~2 minutes on 2 cores (944 files).

WORK/library/truth.csv lists every file: path, base (its picture), transform, role.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

from tier_quality import groups_of_members  # noqa: E402

from imgdedupe.core.groups.graph import FLOOR_SCORE  # noqa: E402
from imgdedupe.core.images.preprocess import picture_pixels  # noqa: E402
from imgdedupe.core.model import calibration  # noqa: E402
from imgdedupe.core.verify import evidence as ev  # noqa: E402
from imgdedupe.core.verify.features import (  # noqa: E402
    extract,
)
from imgdedupe.core.verify.tiers import judge  # noqa: E402

SEED = 20261206
BASES_PER_TRANSFORM = 15
DISTRACTORS = 150
HARD_PER_KIND = 8
BACKBONE = "efficientnet-lite0"


# --- the edits: each takes an RGB uint8 array and a seeded generator ----------

def _rotate(a: np.ndarray, degrees: float, crop: bool) -> np.ndarray:
    h, w = a.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    if not crop:  # expand the canvas, white fill
        c, s = abs(m[0, 0]), abs(m[0, 1])
        nw, nh = int(h * s + w * c), int(h * c + w * s)
        m[0, 2] += nw / 2 - w / 2
        m[1, 2] += nh / 2 - h / 2
        return cv2.warpAffine(a, m, (nw, nh), flags=cv2.INTER_LINEAR,
                              borderValue=(255, 255, 255))
    out = cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_LINEAR)
    # the largest axis-aligned rectangle of the same aspect inside the turned frame
    t = np.radians(abs(degrees))
    f = 1.0 / (np.cos(t) + np.sin(t) * max(w / h, h / w))
    cw, ch = int(w * f), int(h * f)
    x, y = (w - cw) // 2, (h - ch) // 2
    return out[y:y + ch, x:x + cw]


def _perspective(a, rng):
    h, w = a.shape[:2]
    d = 0.08 * w
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[d, 0], [w - d, 0], [w, h], [0, h]])  # keystone: top narrower
    return cv2.warpPerspective(a, cv2.getPerspectiveTransform(src, dst), (w, h),
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def _sepia(a, rng):
    k = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])
    return np.clip(a.astype(np.float32) @ k.T, 0, 255).astype(np.uint8)


def _warm(a, rng):
    return np.clip(a.astype(np.float32) * np.array([1.18, 1.02, 0.75]), 0, 255).astype(np.uint8)


def _vignette(a, rng):
    h, w = a.shape[:2]
    y, x = np.ogrid[:h, :w]
    r = np.sqrt(((x - w / 2) / (w / 2)) ** 2 + ((y - h / 2) / (h / 2)) ** 2) / np.sqrt(2)
    return (a * np.clip(1.0 - 0.85 * r ** 2, 0, 1)[..., None]).astype(np.uint8)


def _jpeg8(a, rng):
    ok, buf = cv2.imencode(".jpg", a[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 8])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def _down96(a, rng):
    h, w = a.shape[:2]
    s = 96 / max(h, w)
    small = cv2.resize(a, (max(1, round(w * s)), max(1, round(h * s))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _noise(a, rng):
    return np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)


def _sharpen(a, rng):
    blur = cv2.GaussianBlur(a, (0, 0), 2.0)
    return cv2.addWeighted(a, 2.5, blur, -1.5, 0)


def _gamma(g):
    def edit(a, rng):
        return (255 * (a / 255.0) ** g).astype(np.uint8)
    return edit


def _caption(a, rng):
    h, w = a.shape[:2]
    band = int(0.13 * h)
    im = Image.new("RGB", (w, h + band), (20, 20, 20))
    im.paste(Image.fromarray(a), (0, 0))
    font = ImageFont.load_default(size=max(10, band // 2))
    ImageDraw.Draw(im).text((10, h + band // 4), "Summer trip 2019 - best day", fill="white",
                            font=font)
    return np.asarray(im)


def _sticker(a, rng):
    h, w = a.shape[:2]
    out = a.copy()
    r = int(np.sqrt(rng.uniform(0.05, 0.10) * h * w / np.pi))
    cx, cy = int(rng.uniform(r, w - r)), int(rng.uniform(r, h - r))
    cv2.circle(out, (cx, cy), r, (255, 210, 0), -1)  # a yellow face
    for dx in (-r // 3, r // 3):
        cv2.circle(out, (cx + dx, cy - r // 4), max(2, r // 8), (40, 30, 0), -1)
    cv2.ellipse(out, (cx, cy + r // 8), (r // 2, r // 3), 0, 20, 160, (40, 30, 0),
                max(2, r // 10))
    return out


def _crop60(a, rng):
    h, w = a.shape[:2]
    s = np.sqrt(0.6)
    cw, ch = int(w * s), int(h * s)
    x, y = int(rng.uniform(0, w - cw)), int(rng.uniform(0, h - ch))
    return cv2.resize(a[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_CUBIC)


def _aspect_crop(ratio):
    """A centred crop to width:height ``ratio`` (a square post, a 9:16 story)."""
    def edit(a, rng):
        h, w = a.shape[:2]
        cw, ch = (int(h * ratio), h) if w / h > ratio else (w, int(w / ratio))
        x, y = (w - cw) // 2, (h - ch) // 2
        return a[y:y + ch, x:x + cw]
    return edit


def _squash(a, rng):
    h, w = a.shape[:2]
    return cv2.resize(a, (int(w * 1.3), h), interpolation=cv2.INTER_CUBIC)


def _collage(a, rng, donor):
    h, w = a.shape[:2]
    d = cv2.resize(donor, (int(donor.shape[1] * h / donor.shape[0]), h))
    return np.concatenate([a, np.full((h, 8, 3), 255, np.uint8), d], axis=1)


def _screenshot(a, rng):
    h, w = a.shape[:2]
    cw, ch = int(w * 1.8), int(h * 1.9)
    im = Image.new("RGB", (cw, ch), (236, 236, 236))
    d = ImageDraw.Draw(im)
    bar = int(0.08 * ch)
    d.rectangle((0, 0, cw, bar), fill=(52, 58, 70))
    d.text((12, bar // 3), "Photos - IMG_4471.JPG", fill="white",
           font=ImageFont.load_default(size=max(10, bar // 3)))
    im.paste(Image.fromarray(a), ((cw - w) // 2, bar + (ch - bar - h) // 2))
    return np.asarray(im)


def _clahe(a, rng):
    lab = cv2.cvtColor(a, cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=4.0, tileGridSize=(8, 8)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def _mirror_crop(a, rng):
    h, w = a.shape[:2]
    a = a[:, ::-1]
    return a[int(0.1 * h):int(0.9 * h), int(0.05 * w):int(0.85 * w)]


TRANSFORMS = {
    "rot3_fill": lambda a, r: _rotate(a, 3, False),
    "rot10_crop": lambda a, r: _rotate(a, 10, True),
    "rot10_fill": lambda a, r: _rotate(a, 10, False),
    "keystone": _perspective,
    "sepia": _sepia,
    "warm_tint": _warm,
    "vignette": _vignette,
    "jpeg_q8": _jpeg8,
    "down96_up": _down96,
    "noise_s20": _noise,
    "sharpen": _sharpen,
    "gamma_0.5": _gamma(0.5),
    "gamma_2.0": _gamma(2.0),
    "caption_banner": _caption,
    "sticker": _sticker,
    "crop60_resize": _crop60,
    "crop_square": _aspect_crop(1.0),
    "crop_9x16": _aspect_crop(9 / 16),
    "squash_1.3x": _squash,
    "collage": None,  # needs a donor photo
    "screenshot": _screenshot,
    "clahe_hdr": _clahe,
    "mirror_crop": _mirror_crop,
}
HARD = ("thirds", "thirds_with_base", "replaced35", "shift15", "shift25", "burst15_moved")


# --- the library --------------------------------------------------------------

def load(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def save(a: np.ndarray, path: str, quality: int = 92) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.ascontiguousarray(a)).save(path, quality=quality)


def build(root: str, out: str) -> None:
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(SEED)
    with open(os.path.join(root, "manifest.csv"), newline="") as handle:
        every = sorted(r["path"] for r in csv.DictReader(handle))
    with open(os.path.join(root, "duplicates_known.csv"), newline="") as handle:
        known = {p for r in csv.DictReader(handle) for p in (r["path_a"], r["path_b"])}
    pool = [p for p in every if p not in known and "/Faces_easy/" not in p]
    n_bases = BASES_PER_TRANSFORM * len(TRANSFORMS)
    stride = len(pool) // n_bases
    bases = pool[::stride][:n_bases]
    rest = [p for p in pool if p not in set(bases)]
    rest = [rest[i] for i in rng.permutation(len(rest))]
    distractors, rest = rest[:DISTRACTORS], rest[DISTRACTORS:]
    hard_src, donors = rest[:HARD_PER_KIND * len(HARD)], rest[HARD_PER_KIND * len(HARD):]
    rows = []

    def put(a: np.ndarray, name: str, base: str, transform: str, role: str) -> None:
        rel = f"{role}/{name}"
        save(a, os.path.join(out, rel))
        rows.append({"path": rel, "base": base, "transform": transform, "role": role})

    names = list(TRANSFORMS)
    for n, src in enumerate(bases):
        stem = src.split("/", 1)[1].replace("/", "_").removesuffix(".jpg")
        a = load(os.path.join(root, src))
        put(a, f"{stem}.jpg", stem, "original", "base")
        name = names[n % len(names)]
        edit = TRANSFORMS[name]
        copy = (_collage(a, rng, load(os.path.join(root, donors[n])))
                if edit is None else edit(a, rng))
        put(copy, f"{stem}__{name}.jpg", stem, name, "copy")
    for src in distractors:
        stem = src.split("/", 1)[1].replace("/", "_").removesuffix(".jpg")
        put(load(os.path.join(root, src)), f"{stem}.jpg", stem, "original", "distractor")
    for k, kind in enumerate(HARD):
        for i in range(HARD_PER_KIND):
            src = hard_src[k * HARD_PER_KIND + i]
            stem = src.split("/", 1)[1].replace("/", "_").removesuffix(".jpg")
            a = load(os.path.join(root, src))
            h, w = a.shape[:2]
            group = f"{kind}:{stem}"  # each file its own picture: "base" names the pair
            if kind.startswith("thirds"):
                if kind == "thirds_with_base":
                    put(a, f"{stem}__{kind}_full.jpg", group, "full", "hard")
                put(a[:, :w // 3], f"{stem}__{kind}_left.jpg", group, "left", "hard")
                put(a[:, w - w // 3:], f"{stem}__{kind}_right.jpg", group, "right", "hard")
            elif kind == "replaced35":
                b = a.copy()
                donor = load(os.path.join(root, donors[-1 - i]))
                rh, rw = int(h * 0.7), int(w * 0.5)  # 35% of the area
                y, x = int(rng.uniform(0, h - rh)), int(rng.uniform(0, w - rw))
                b[y:y + rh, x:x + rw] = cv2.resize(donor, (rw, rh))
                put(a, f"{stem}__{kind}_orig.jpg", group, "orig", "hard")
                put(b, f"{stem}__{kind}_edit.jpg", group, "replaced", "hard")
            else:  # the camera moved: a window 15% / 25% of the width further
                shift = int(kind[5:7]) / 100
                cw = int(w * 0.7)
                b = a[:, int(w * shift):int(w * shift) + cw].copy()
                if kind.endswith("moved"):  # a second frame: noise, exposure, a subject moved
                    bh, bw = b.shape[:2]
                    ph, pw = int(bh * 0.25), int(bw * 0.2)  # 5% of the frame
                    y, x = (bh - ph) // 2, (bw - pw) // 2
                    patch = b[y:y + ph, x:x + pw].copy()
                    dx = pw // 2
                    b[y:y + ph, x + dx:x + dx + pw] = patch
                    b = np.clip(b * 1.05 + rng.normal(0, 3, b.shape), 0, 255).astype(np.uint8)
                put(a[:, :cw], f"{stem}__{kind}_a.jpg", group, "window_a", "hard")
                put(b, f"{stem}__{kind}_b.jpg", group, "window_b", "hard")
    with open(os.path.join(out, "truth.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "base", "transform", "role"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"library: {len(rows)} files ({len(bases)} bases + copies, {len(distractors)} "
          f"distractors, {sum(r['role'] == 'hard' for r in rows)} hard negatives)")


def scan(library: str, work: str) -> dict:
    db, report = os.path.join(work, "scan.db"), os.path.join(work, "scan.json")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    subprocess.run([sys.executable, "-m", "imgdedupe", "scan", library, "--db", db,
                    "--backbone", BACKBONE, "--json", report, "-q"], check=True,
                   stdout=subprocess.DEVNULL, cwd=REPO)
    with open(report) as handle:
        return json.load(handle)


# --- scoring ------------------------------------------------------------------

ORDER = ("exact", "near_duplicate", "similar_shot", "not grouped")


def tier_together(groups_of: dict, report: dict, a: str, b: str) -> str:
    shared = groups_of.get(a, set()) & groups_of.get(b, set())
    return min((report["groups"][n]["tier"] for n in shared), default="not grouped",
               key=ORDER.index)


class Pairs:
    """The scan's own view of a pair: cosine, stored evidence, or evidence
    recomputed from the stored verification pictures."""

    def __init__(self, db: str, library: str) -> None:
        self.conn = sqlite3.connect(db)
        self.ids = {os.path.relpath(os.fsdecode(p), library): i
                    for i, p in self.conn.execute("SELECT id, path FROM files")}
        self.vec = {i: np.frombuffer(u, dtype="<f2").astype(np.float32)
                    for i, u in self.conn.execute("SELECT file_id, upright FROM embeddings")}
        self.size = {i: (w, h) for i, w, h in self.conn.execute(
            "SELECT id, width, height FROM files")}
        self.floor = calibration.score_to_cosine(BACKBONE, FLOOR_SCORE)
        self._features: dict[int, tuple] = {}

    def _picture(self, i: int) -> tuple:
        if i not in self._features:
            blob, = self.conn.execute("SELECT picture FROM pictures WHERE file_id = ?",
                                      (i,)).fetchone()
            grey = picture_pixels(blob)
            w, h = self.size[i]
            self._features[i] = (extract(grey, w / h if w and h else None), grey)
        return self._features[i]

    def explain(self, a: str, b: str) -> dict:
        ia, ib = sorted((self.ids[a], self.ids[b]))
        va, vb = self.vec[ia], self.vec[ib]
        cosine = float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))
        row = self.conn.execute("SELECT evidence FROM pair_evidence WHERE file_a = ? AND "
                                "file_b = ?", (ia, ib)).fetchone()
        (fa, ga), (fb, gb) = self._picture(ia), self._picture(ib)
        e = ev.PairEvidence.from_bytes(row[0]) if row else ev.compare(fa, fb, ga, gb)
        verdict = judge(e, cosine)
        sane = (e.s2 > 0.1 and e.s1 < 10 and e.s1 / max(e.s2, 1e-9) <= 4)
        if not row and cosine < self.floor:
            stage = "a candidate"
        elif e.inliers < 8:
            stage = "b keypoints"
        elif sane and e.overlap >= 0.5 and e.changed > 0.035 and not (
                e.inliers >= 40 and e.changed <= 0.08):
            stage = "c pixels"
        else:
            stage = "d rule"
        # The same pair the other way round: the scan's order is the files' ids.
        flipped = judge(ev.compare(fb, fa, gb, ga), cosine).tier
        return {"cosine": cosine, "verified": bool(row), "kp": (len(fa), len(fb)), "e": e,
                "verdict": verdict, "stage": stage, "order_matters": flipped != verdict.tier}


    def alternatives(self, a: str, b: str) -> str:
        """What other evidence would say: the pair the other way round (B
        the reference frame), B mirrored before its keypoints, and the
        pixel check after a homography instead of the affine."""
        ia, ib = sorted((self.ids[a], self.ids[b]))
        (fa, ga), (fb, gb) = self._picture(ia), self._picture(ib)
        back = ev.compare(fb, fa, gb, ga)
        flipped = np.ascontiguousarray(gb[:, ::-1])
        mirror = ev.compare(fa, extract(flipped), ga, flipped)
        return (f"reversed: inl {back.inliers} changed {back.changed:.3f} overlap "
                f"{back.overlap:.2f} -> {judge(back, 1.0).tier} | mirrored: inl "
                f"{mirror.inliers} changed {mirror.changed:.3f} -> {judge(mirror, 1.0).tier} | "
                f"homography pixels: {_homography_changed(fa, fb, ga, gb)}")


def _homography_changed(fa, fb, ga: np.ndarray, gb: np.ndarray) -> str:
    """The shipped pixel check (blur, one gain and offset, CHANGED_GREY,
    rim) after a MAGSAC homography of the same matches."""
    matched = ev._matches(fa, fb)
    if matched is None:
        return "no matches"
    homography, inl = cv2.findHomography(matched[0], matched[1], cv2.USAC_MAGSAC,
                                         ev.REPROJECTION_PX, maxIters=ev.MAX_ITERATIONS,
                                         confidence=ev.CONFIDENCE)
    if homography is None:
        return "no fit"
    h, w = ga.shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpPerspective(gb.astype(np.float32), homography, (w, h), flags=flags,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=-1)
    mask = cv2.erode((warped >= 0).astype(np.uint8), np.ones((ev.RIM_PX, ev.RIM_PX),
                                                             np.uint8)) > 0
    if mask.sum() < 100:
        return f"inl {int(inl.sum())}, no overlap"
    x = cv2.GaussianBlur(ga.astype(np.float32), (0, 0), ev.BLUR_SIGMA)[mask]
    y = cv2.GaussianBlur(np.where(warped < 0, 0, warped), (0, 0), ev.BLUR_SIGMA)[mask]
    gain, offset = np.polyfit(y, x, 1)
    changed = float((np.abs(x - gain * y - offset) > ev.CHANGED_GREY).mean())
    return f"inl {int(inl.sum())} changed {changed:.3f}"


def fmt(x: dict) -> str:
    e = x["e"]
    return (f"cos {x['cosine']:.3f} {'verified' if x['verified'] else 'NOT verified'} "
            f"kp {x['kp'][0]}/{x['kp'][1]} inl {e.inliers} H {e.homography_inliers} "
            f"s {e.s1:.2f}/{e.s2:.2f} turn {e.turn:.0f} changed {e.changed:.3f} "
            f"local {e.local_changed:.3f} overlap {e.overlap:.2f} framing {e.framing:.2f} "
            f"-> {x['stage']} | {x['verdict'].tier}: {x['verdict'].reason}")


def score(library: str, work: str, report: dict) -> None:
    with open(os.path.join(library, "truth.csv"), newline="") as handle:
        truth = {r["path"]: r for r in csv.DictReader(handle)}
    groups_of = groups_of_members(report, lambda path: os.path.relpath(path, library))
    base_of = {r["base"]: p for p, r in truth.items() if r["role"] == "base"}
    pairs = Pairs(os.path.join(work, "scan.db"), library)

    print("\n== copies: tier shared with their base ==")
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures: dict[str, list] = collections.defaultdict(list)
    seen: dict[str, list] = collections.defaultdict(list)
    for path, r in truth.items():
        if r["role"] != "copy":
            continue
        base = base_of[r["base"]]
        tier = tier_together(groups_of, report, path, base)
        table[r["transform"]][tier] += 1
        x = pairs.explain(base, path)
        seen[r["transform"]].append((x["cosine"], x["e"].inliers))
        table[r["transform"]]["order"] += x["order_matters"]
        if tier not in ("exact", "near_duplicate"):
            failures[r["transform"]].append((path, base, x))
            table[r["transform"]][x["stage"]] += 1
    print(f"  {'transform':16s} {'n':>3s} {'exact':>5s} {'near_dup':>8s} {'similar':>8s} "
          f"{'none':>5s} {'order':>5s}   median cosine / affine inliers; stage lost at "
          "(not near_duplicate)\n  (order: pairs whose verdict changes when the two "
          "files are compared the other way round)")
    totals = collections.Counter()
    for name in TRANSFORMS:
        c = table[name]
        totals.update(c)
        cos, inl = np.median(np.array(seen[name]), axis=0)
        lost = {k: v for k, v in sorted(c.items()) if k[1] == " "}
        print(f"  {name:16s} {sum(c[t] for t in ORDER):3d} {c['exact']:5d} "
              f"{c['near_duplicate']:8d} {c['similar_shot']:8d} {c['not grouped']:5d} "
              f"{c['order']:5d}   {cos:.3f} / {inl:3.0f}  {lost}")
    print(f"  {'all':16s} {sum(totals[t] for t in ORDER):3d} {totals['exact']:5d} "
          f"{totals['near_duplicate']:8d} {totals['similar_shot']:8d} "
          f"{totals['not grouped']:5d} {totals['order']:5d}   "
          f"{ {k: v for k, v in sorted(totals.items()) if k[1] == ' '} }")

    print("\n== copies not near_duplicate with their base: the pair's evidence ==")
    stages = collections.Counter()
    for name in sorted(failures, key=lambda t: -len(failures[t])):
        print(f"  {name}:")
        for path, base, x in failures[name]:
            stages[x["stage"]] += 1
            print(f"    {os.path.basename(path)}: {fmt(x)}")
            print(f"      {pairs.alternatives(base, path)}")
    print("  failures by stage:", dict(stages))

    print("\n== hard negatives (must not be near_duplicate) ==")
    hard: dict[str, list[str]] = collections.defaultdict(list)
    for path, r in truth.items():
        if r["role"] == "hard":
            hard[r["base"]].append(path)
    verdicts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for group, paths in hard.items():
        kind = group.split(":")[0]
        a, b = (sorted(p for p in paths if not p.endswith("_full.jpg")))
        tier = tier_together(groups_of, report, a, b)
        verdicts[kind][tier] += 1
        print(f"  {kind:16s} {os.path.basename(a)} ~ {os.path.basename(b)}: {tier} | "
              f"{fmt(pairs.explain(a, b))}")
        for full in (p for p in paths if p.endswith("_full.jpg")):
            print(f"    with the full photo: left {tier_together(groups_of, report, a, full)}"
                  f", right {tier_together(groups_of, report, b, full)}")
            for third in (a, b):
                print(f"      {fmt(pairs.explain(full, third))}\n"
                      f"      {pairs.alternatives(full, third)}")
    for kind in HARD:
        print(f"  {kind:16s} {dict(verdicts[kind])}")

    print("\n== wrong links: a photo grouped with another picture ==")
    wrong: dict[str, set[str]] = collections.defaultdict(set)
    links = []
    for g in report["groups"]:
        members = [os.path.relpath(m["path"], library) for m in g["members"]]
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                if truth[a]["base"] != truth[b]["base"]:
                    wrong[g["tier"]] |= {a, b}
                    links.append(f"{a} ~ {b} [{g['tier']}: {g['reason']}]")
    for tier in ("exact", "near_duplicate", "similar_shot"):
        by_role = collections.Counter(truth[p]["role"] for p in wrong[tier])
        print(f"  {tier}: {len(wrong[tier])} photos {dict(by_role)}")
    distractor_total = sum(r["role"] == "distractor" for r in truth.values())
    any_tier = {p for s in wrong.values() for p in s if truth[p]["role"] == "distractor"}
    print(f"  distractors in a wrong link, any tier: {len(any_tier)} / {distractor_total}")
    print(*links, sep="\n    ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.join(REPO, "..", "shared", "corpus",
                                                       "caltech101"))
    parser.add_argument("--work", default="/tmp/heldout")
    parser.add_argument("--rebuild", action="store_true", help="make the library again")
    parser.add_argument("--rescan", action="store_true", help="scan again")
    args = parser.parse_args()
    library = os.path.join(args.work, "library")
    if args.rebuild or not os.path.exists(os.path.join(library, "truth.csv")):
        build(args.root, library)
    report_path = os.path.join(args.work, "scan.json")
    if args.rescan or args.rebuild or not os.path.exists(report_path):
        report = scan(library, args.work)
    else:
        with open(report_path) as handle:
            report = json.load(handle)
    print(f"scan: {len(report['groups'])} groups, tiers "
          f"{dict(collections.Counter(g['tier'] for g in report['groups']))}")
    score(library, args.work, report)


if __name__ == "__main__":
    main()

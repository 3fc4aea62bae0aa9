"""The tier a verified pair earns, and a reason a person understands.

* ``near_duplicate``: the same picture. One sane affine transform carries
  many keypoints of one onto the other, over most of the smaller picture,
  and afterwards few pixels differ.
* ``similar_shot``: the same scene taken again: keypoints agree, but not
  as one copy (fewer, or the pixels differ: something moved), or another
  viewpoint fits a homography, or the capture times are seconds apart
  with a high embedding similarity.
* ``none``: anything else, however high its cosine.

Two photos whose capture times differ are different moments, however well
they align (a tripod burst): at most a similar shot. The same capture
time, or none known, leaves the decision to the pixels. Thresholds come
from docs/verification.md (dev set and Caltech-101); bump VERIFY_VERSION
when any changes, so cached verdicts are made again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from imgdedupe.core.verify.evidence import PairEvidence

VERIFY_VERSION = 3  # 2: the tones rule; 3: a copy's pixels may differ by 3.5%

Tier = Literal["exact", "near_duplicate", "similar_shot", "none"]

# A sane affine: s1 >= s2 its singular values. A 90-degree turn of a
# squashed (non-square) photo is an affine with s1/s2 ~ aspect^2: 4 allows
# 2:1 photos.
MIN_S2, MAX_S1, MAX_ANISOTROPY = 0.1, 10.0, 4.0
# near_duplicate: (inliers, most pixels changed, least overlap), any of:
# A copy: few keypoints suffice when next to nothing changed. 3.5%, not 2%:
# a crop saved at another aspect ratio is resampled differently into the
# squashed 224 input, and its edges differ by a few grey levels more
# (Caltech's Faces / Faces_easy crops: 3.0-3.5%); a moved object or another
# photo leaves 5% or more.
NEAR_RULES = ((8, 0.035, 0.5),
              (20, 0.02, 0.3),   # a crop: less overlap, more keypoints
              (40, 0.08, 0.5))   # an edit (watermark, border, sticker): more pixels changed
SIMILAR_INLIERS, SIMILAR_CHANGED, SIMILAR_OVERLAP = 25, 0.12, 0.5
VIEWPOINT_INLIERS = 120  # affine or homography: the same scene from a step aside
STEADY_INLIERS, STEADY_ANISOTROPY, STEADY_OVERLAP, STEADY_CHANGED = 60, 1.15, 0.8, 0.5
# Tones that differ where the structure agrees: a recoloured copy (a
# painted background, a vignette) or a second take a moment later; block
# by block gain and offset explain both, so it is no proof of one picture.
TONES_INLIERS, TONES_OVERLAP, TONES_LOCAL_CHANGED = 30, 0.8, 0.08
BURST_SECONDS, BURST_COSINE = 60.0, 0.72  # capture times this close, cosines this high
# Capture times closer than this are one moment (EXIF keeps centiseconds).
SAME_MOMENT_S = 0.005


# A pair's tier as a small integer, for the similarity graph's arrays.
# SAME_GROUP: not verified, because verified near-duplicate pairs of at
# least its similarity already join its two photos (scan.verify_step).
UNVERIFIED, NOT_SAME, SIMILAR_SHOT, NEAR_DUPLICATE, SAME_GROUP = -1, 0, 1, 2, 3
TIER_CODES = {"none": NOT_SAME, "similar_shot": SIMILAR_SHOT, "near_duplicate": NEAR_DUPLICATE}


@dataclass(frozen=True)
class Verdict:
    tier: Tier
    reason: str


def judge(evidence: PairEvidence, cosine: float, taken_a: float | None = None,
          taken_b: float | None = None) -> Verdict:
    """The verdict on a candidate pair (not byte copies: those are exact).
    ``taken_*``: capture times in seconds (EXIF), None when unknown."""
    e = evidence
    anisotropy = e.s1 / max(e.s2, 1e-9)
    sane = e.s2 > MIN_S2 and e.s1 < MAX_S1 and anisotropy <= MAX_ANISOTROPY
    apart = None if taken_a is None or taken_b is None else abs(taken_a - taken_b)
    same_picture = sane and any(e.inliers >= n and e.changed <= changed and e.overlap >= overlap
                                for n, changed, overlap in NEAR_RULES)
    if same_picture and (apart is None or apart < SAME_MOMENT_S):
        return Verdict("near_duplicate", f"same picture: {e.inliers} keypoints agree with "
                                         f"{_transform(e)}")
    if same_picture:
        return Verdict("similar_shot", f"similar shot: the same view taken {_seconds(apart)} "
                                       "apart")
    if apart is not None and apart <= BURST_SECONDS and cosine >= BURST_COSINE:
        return Verdict("similar_shot", f"similar shot: taken {_seconds(apart)} apart")
    if (sane and e.inliers >= SIMILAR_INLIERS and e.changed <= SIMILAR_CHANGED
            and e.overlap >= SIMILAR_OVERLAP) or (
            e.inliers >= STEADY_INLIERS and anisotropy <= STEADY_ANISOTROPY
            and e.overlap >= STEADY_OVERLAP and e.changed <= STEADY_CHANGED):
        return Verdict("similar_shot", f"similar shot: {e.inliers} keypoints agree, "
                                       f"{e.changed:.0%} of the picture differs")
    if sane and e.inliers >= TONES_INLIERS and e.overlap >= TONES_OVERLAP \
            and e.local_changed <= TONES_LOCAL_CHANGED:
        return Verdict("similar_shot", f"similar shot or recoloured copy: {e.inliers} keypoints "
                                       f"agree, the tones differ over {e.changed:.0%} of it")
    if max(e.inliers, e.homography_inliers) >= VIEWPOINT_INLIERS:
        return Verdict("similar_shot", f"similar shot: {max(e.inliers, e.homography_inliers)} "
                                       "keypoints agree from another viewpoint")
    return Verdict("none", f"not the same picture: {e.inliers} keypoints agree")


def _transform(e: PairEvidence) -> str:
    """How the copy was made, in words, from the affine's shape."""
    words = []
    if e.determinant < 0:
        words.append("a mirror image")
    quarter_turns = round(e.turn / 90.0)
    if quarter_turns and abs(e.turn - 90.0 * quarter_turns) < 10:
        words.append("a half turn" if abs(quarter_turns) == 2 else "a quarter turn")
    elif abs(e.turn) >= 2:
        words.append(f"a {abs(e.turn):.0f}-degree rotation")
    if e.framing < 0.9:
        words.append("a crop or border")
    # The 224 input is squashed, so a turned or cropped copy's fit also
    # scales; only a fit with no turn and no crop can say "resized" apart.
    scale = abs(e.determinant) ** 0.5
    if not words and (abs(scale - 1.0) > 0.05 or e.s1 / max(e.s2, 1e-9) > 1.05):
        words.append("a resize")
    if e.changed > 0.02:
        words.append("an edit")
    if not words:
        return "one copy of the other"
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def _seconds(seconds: float | None) -> str:
    if seconds is None:
        return "an unknown time"
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.0f} min"

"""The 0-100 similarity the user sees, mapped per backbone to a cosine.

Raw cosines are not comparable across backbones: EfficientNet-Lite0's
unrelated photos sit near 0.3 and ResNet50's near 0.5, and near-duplicates
start at different values too. Each backbone's record in
``model.registry`` carries knots measured on the dev set
(docs/quality.md), so "similarity 90" means the same thing whichever
backbone is in use: the calibrated default threshold.
"""

from __future__ import annotations

import numpy as np

from imgdedupe.core.model.registry import spec_of

# The embedding only proposes candidate pairs; verification (verify)
# decides. So the default is chosen for recall, at the slider's floor:
# at 90 Caltech-101 lost a tenth more of its known copies (docs/quality.md).
DEFAULT_THRESHOLD = 80.0


def _knots(backbone: str) -> tuple[np.ndarray, np.ndarray]:
    knots = spec_of(backbone).knots
    return np.array([k[0] for k in knots]), np.array([k[1] for k in knots])


def cosine_to_score(backbone: str, cosine: np.ndarray | float) -> np.ndarray:
    cos, score = _knots(backbone)
    return np.interp(np.asarray(cosine, dtype=np.float64), cos, score)


def score_to_cosine(backbone: str, score: float) -> float:
    if not 0.0 <= score <= 100.0:
        raise ValueError(f"a similarity threshold is between 0 and 100, not {score}")
    cos, scores = _knots(backbone)
    return float(np.interp(score, scores, cos))


def score_to_cosine_array(backbone: str, scores: np.ndarray) -> np.ndarray:
    """score_to_cosine for many scores at once (clamped to 0-100)."""
    cos, knot_scores = _knots(backbone)
    return np.interp(np.clip(np.asarray(scores, dtype=np.float64), 0.0, 100.0), knot_scores,
                     cos).astype(np.float32)

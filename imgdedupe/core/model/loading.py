"""Plan a scan's backbone without torch, then build it.

``plan_backbone`` finds and verifies the weights and works out the model
id of the vectors it will give; ``build_backbone`` loads the network only
when something must be embedded. A rescan that finds nothing to embed
(scan.memo) never loads the model, which took 0.8 s of a 1.5 s rescan of
16 photos. ResNet50 without weights falls back, visibly, to
EfficientNet-Lite0.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from imgdedupe.core.errors import ImgDedupeError, WeightsChecksumError, WeightsError
from imgdedupe.core.model.backbone import BF16_SUFFIX, Backbone, BackboneInfo, cpu_bf16_native
from imgdedupe.core.model.registry import FALLBACK, BackboneSpec, spec_of
from imgdedupe.core.model.weights import (
    DigestCache,
    locate_weights,
    sha256_remembered,
)
from imgdedupe.core.records import Notice

log = logging.getLogger(__name__)

# Bump when anything that changes the pixels fed to the network
# (images.preprocess) or the pooling of its output (model.networks)
# changes: it is part of the model id, so stale cached vectors are never
# mixed with new ones.
PREPROCESS_VERSION = 3


@dataclass(frozen=True)
class BackbonePlan:
    """Which backbone a scan will run, from which weights, and the model id
    of its vectors: known without importing torch or building a network."""

    name: str  # what will run: the fallback's name after a fallback
    model_id: str
    weights_path: Path
    weights_sha256: str
    notices: tuple[Notice, ...] = ()


def model_id_of(name: str, digest: str) -> str:
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
    """Find and verify the weights of ``name``, with a visible fallback.

    When a downloadable backbone's weights cannot be found (and none was
    named explicitly), the registry's FALLBACK is used instead and a
    Notice says so. A weights file that exists but fails its checksum is
    an error, never a fallback: the user has to fix it. ``digests`` (the
    scan's store) remembers the weights' SHA-256 by path, size, mtime and
    inode, so only a file's first use pays the full hash.
    """
    spec = spec_of(name)
    notices: list[Notice] = []
    path: Path | None = None
    digest = ""
    if spec.download is not None:
        explicit = weights or os.environ.get("IMGDEDUPE_WEIGHTS")
        try:
            located = locate_weights(
                spec.download,
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
            fallback = spec_of(FALLBACK)
            message = (
                f"{spec.title} ImageNet weights were not found, so the {fallback.title} "
                f"backbone is used instead (its weights ship with imgdedupe). Details: {exc}"
            )
            log.warning("%s", message)
            notices.append(Notice("backbone_fallback", message))
            spec = fallback
    if path is None:
        assert spec.shipped_weights is not None  # the registry checks one of the two
        path = spec.shipped_weights()
        digest = sha256_remembered(path, digests)
    model_id = model_id_of(spec.name, digest)
    # Only CPU bfloat16 changes the vectors (cpu_bf16_native and
    # resolve_device answer without importing torch on a CPU-only Linux).
    if spec.bf16_verified and cpu_bf16_native() and resolve_device(device) == "cpu":
        model_id += BF16_SUFFIX
    return BackbonePlan(spec.name, model_id, path, digest, tuple(notices))


def build_backbone(plan: BackbonePlan, device: str = "auto") -> Backbone:
    """Load the planned network onto ``device``."""
    spec = spec_of(plan.name)
    backbone = _backbone(spec, plan.weights_path, model_id_of(spec.name, plan.weights_sha256),
                         str(plan.weights_path))
    backbone = backbone.to(resolve_device(device))
    if backbone.info.model_id != plan.model_id:  # the plan promised other vectors
        raise ImgDedupeError(f"internal error: planned model {plan.model_id}, "
                             f"loaded {backbone.info.model_id}")
    return backbone


def _backbone(spec: BackboneSpec, weights: Path | None, model_id: str, source: str) -> Backbone:
    import torch

    info = BackboneInfo(name=spec.name, dim=spec.dim, model_id=model_id, weights_source=source)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1) * spec.scale
    std = torch.tensor(spec.std).view(1, 3, 1, 1) * spec.scale
    return Backbone(info, spec.network(weights), mean, std, bf16_verified=spec.bf16_verified)


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


def resnet50_random(seed: int = 0) -> Backbone:
    """ResNet50 with random weights: degenerate features (every photo scores
    ~0.998 cosine). For shape and plumbing tests only."""
    import torch

    torch.manual_seed(seed)
    return _backbone(spec_of("resnet50"), None, model_id_of("resnet50", f"random{seed:010d}"),
                     "random")


def resolve_device(device: str) -> str:
    if device == "cpu" or (device == "auto" and not _nvidia_driver_present()):
        return "cpu"  # without importing torch: a rescan may need no model
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ImgDedupeError("--device cuda was asked for, but no CUDA GPU is available")
    if device not in ("cpu", "cuda"):
        raise ImgDedupeError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


def _nvidia_driver_present() -> bool:
    """Whether CUDA could work here at all, without importing torch (1-2 s):
    no NVIDIA driver, no CUDA. Where unsure, say yes and let torch decide."""
    import sys

    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidia0")
    if sys.platform == "win32":
        system = os.path.join(os.environ.get("SystemRoot", r"C:\Windows"), "System32")
        return os.path.exists(os.path.join(system, "nvcuda.dll"))
    return True


def default_bundled_dirs() -> list[Path]:
    """Where an installed app keeps resources/ (source tree or PyInstaller)."""
    import sys

    here = Path(__file__).resolve().parents[3]
    dirs = [here / "resources" / "weights"]
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        dirs.insert(0, Path(frozen_root) / "resources" / "weights")
    return dirs

"""A loaded backbone: batches of 224x224 uint8 images in, unit vectors out.

What each backbone is (its vector length, weights, calibration, network)
is one record in ``model.registry``; this is the runtime object a scan
embeds with, on a CPU or a CUDA GPU. Built by ``model.loading``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache

import numpy as np

# bfloat16 on CPUs that compute it natively (AVX512-BF16 or AMX): on the
# 2-core build machine (AMD EPYC, avx512_bf16) a forward of 16 images ran
# 3.1x faster for EfficientNet-Lite0 and 2.4x for ResNet50, and the dev
# set's precision and recall at the default did not move (bench/
# bench_cpu_formats.py, docs/performance.md). Vectors change slightly
# (cosine >= 0.998 to float32's), so such a model gets its own model id and
# never mixes with float32 vectors in the cache. Elsewhere bfloat16 is
# emulated and slower, so float32 runs there. It is the default where the
# CPU computes it natively (IMGDEDUPE_CPU_BF16=0 turns it off): since pairs
# are verified on their pixels (verify), the embedding only proposes
# candidates, and a cosine 0.002 away moves no tier: the dev set and
# Caltech-101 give the same figures in both (docs/performance.md).
BF16_SUFFIX = ":bf16"


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    dim: int
    model_id: str
    weights_source: str


class Backbone:
    """A feature extractor; ``embed`` takes (N, 224, 224, 3) uint8 arrays."""

    def __init__(self, info: BackboneInfo, module, mean, std,  # noqa: ANN001
                 bf16_verified: bool = False) -> None:
        self.info = info
        self.bf16_verified = bf16_verified  # see BF16_SUFFIX
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
            bf16 = self.bf16_verified and cpu_bf16_native()
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
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX),
    unless IMGDEDUPE_CPU_BF16=0 turns it off."""
    if os.environ.get("IMGDEDUPE_CPU_BF16", "") == "0":
        return False
    return _bf16_native()


@cache
def _bf16_native() -> bool:
    # Linux says so in /proc/cpuinfo: a rescan, which loads no model, then
    # does not import torch just to name the model's vectors.
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            flags = info.read()
    except OSError:
        flags = None
    if flags is not None and "\nflags" in flags:  # "flags\t\t: fpu vme ..." per core
        return "avx512_bf16" in flags or "amx_bf16" in flags
    import torch  # elsewhere: oneDNN's own test

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False

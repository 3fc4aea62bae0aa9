"""CPU forward ceiling of both backbones in each memory format and precision.

    python bench/bench_cpu_formats.py [--batch 16] [--repeats 5]

For EfficientNet-Lite0 (real weights) and ResNet50 (random weights: same
speed), at the pipeline's CPU batch size: images/s of one forward in
float32 NCHW (what the pipeline ran before), float32 channels_last, bfloat16
autocast, and bfloat16 + channels_last; and, for the bf16 variants, how far
their vectors are from float32's (the lowest cosine between the two
vectors of one image, on real photos). Whatever changes the vectors would
need its own model id, so cached float32 vectors are never mixed with it.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from imgdedupe.core.images.preprocess import decode_for_network
from imgdedupe.core.model.backbone import Backbone
from imgdedupe.core.model.loading import load_backbone, resnet50_random

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"


def photos(batch: int) -> np.ndarray:
    paths = sorted(p for p in SAMPLES.rglob("*.jpg") if "broken" not in p.name)
    arrays = [decode_for_network(str(paths[n % len(paths)]))[0] for n in range(batch)]
    return np.stack(arrays)


def rate(backbone: Backbone, images: np.ndarray, repeats: int) -> float:
    backbone.embed(images)  # warm-up (and oneDNN's kernel choice)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        backbone.embed(images)
        best = min(best, time.perf_counter() - start)
    return len(images) / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), avx512_bf16: {'avx512_bf16' in flags}, "
          f"amx: {'amx_bf16' in flags}, batch {args.batch}, best of {args.repeats}")
    images = photos(args.batch)
    print("| backbone | format | images/s (one forward) | vs float32 | min cosine to float32 |")
    print("|---|---|---:|---:|---:|")
    for name in ("efficientnet-lite0", "resnet50"):
        reference = None
        base_rate = 0.0
        for fmt, channels_last, bf16 in (("float32 NCHW", False, False),
                                         ("float32 channels_last", True, False),
                                         ("bfloat16 autocast", False, True),
                                         ("bfloat16 + channels_last", True, True)):
            backbone = (load_backbone(name, device="cpu")[0] if name != "resnet50"
                        else resnet50_random())
            # bf16 as the pipeline runs it (Backbone.to, autocast), forced on
            # or off: the default is on where the CPU has native bfloat16.
            backbone.to("cpu", channels_last=channels_last, bf16=bf16)
            r = rate(backbone, images, args.repeats)
            vectors = backbone.embed(images)
            if reference is None:
                reference, base_rate = vectors, r
            cosine = float((vectors * reference).sum(axis=1).min())
            print(f"| {name} | {fmt} | {r:.1f} | {r / base_rate:.2f} | {cosine:.4f} |",
                  flush=True)


if __name__ == "__main__":
    main()

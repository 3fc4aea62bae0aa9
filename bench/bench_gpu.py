"""GPU scan against the decode ceiling, in one run (one prepared script for a
lent GPU machine; bench/gpu_check.sh runs it with the CUDA tests).

    python bench/bench_gpu.py [--images 4096] [--workers 0] [--json OUT]
        [--pools threads processes] [--skip-ceilings] [--skip-nvjpeg]

Prints, for one machine in one run:
  * the model ceilings on the GPU: ResNet50 and EfficientNet-Lite0, fp16,
    channels-last (``--both-layouts``: NCHW too), at batch 128 and 256,
    uint8 host batches in (upload included) and vectors out;
  * the decode ceilings: the scan's own decode pool (``decode_and_hash``:
    draft decode, EXIF orientation, resize to 224, perceptual hash) over
    every photo, nothing else running, as threads and as processes (one
    per core);
  * full scans with the pipeline's GPU defaults (fp16, channels-last, batch
    128, pinned uploads, four rotations turned on the GPU), ResNet50 and
    Lite0, with each decode pool: images/s of the embed phase and end to
    end, each over that pool's decode ceiling;
  * torchvision.io.decode_jpeg on the GPU (nvjpeg) plus a GPU resize to 224,
    fed by the same number of file-reading threads, against the better CPU
    draft decode.

ResNet50 runs with random weights: the weights do not change its speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from bench_scan import make_photo, photo_sources  # bench/ is on sys.path

from imgdedupe.core.images.decode_pool import DecodePool
from imgdedupe.core.model.backbone import Backbone
from imgdedupe.core.model.loading import load_backbone, resnet50_random
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import Progress
from imgdedupe.core.scan.pipeline import run_scan


def model_ceiling(backbone, batch: int, seconds: float = 1.5) -> float:  # noqa: ANN001
    x = np.random.default_rng(0).integers(0, 256, size=(batch, 224, 224, 3), dtype=np.uint8)
    for _ in range(3):
        backbone.embed(x)  # warm-up: cuDNN picks its kernels
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        backbone.embed(x)
        count += batch
    return count / (time.perf_counter() - start)


def decode_ceiling(paths: list[str], workers: int, processes: bool) -> float:
    """The scan's decode pool alone, started and warmed up first."""
    with DecodePool(processes, workers) as pool:
        for n, path in enumerate(paths[:workers]):
            pool.submit(f"warm{n}", path)
        for n in range(min(workers, len(paths))):
            pool.result(f"warm{n}")
        start = time.perf_counter()
        for path in paths:
            pool.submit(path, path)
        for path in paths:
            pool.result(path)
        return len(paths) / (time.perf_counter() - start)


def nvjpeg_rate(paths: list[str], workers: int, batch: int = 32) -> float:
    """Files read by ``workers`` threads, decoded by nvjpeg in batches,
    resized on the GPU to 224x224 (antialiased), copied back as uint8."""
    import torch
    import torch.nn.functional as F
    from torchvision.io import decode_jpeg

    def read(path: str):  # noqa: ANN202
        with open(path, "rb") as f:
            return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)

    def run(chunk: list[str], pool: ThreadPoolExecutor) -> None:
        data = list(pool.map(read, chunk))
        images = decode_jpeg(data, device="cuda")
        small = [F.interpolate(im[None].float(), size=(224, 224), mode="bilinear",
                               antialias=True) for im in images]
        torch.cat(small).to(torch.uint8).cpu()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        run(paths[:batch], pool)  # warm-up: nvjpeg handles, kernels
        torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, len(paths), batch):
            run(paths[i:i + batch], pool)
        torch.cuda.synchronize()
    return len(paths) / (time.perf_counter() - start)


def scan_rates(root: Path, db: Path, backbone_name: str, workers: int, device: str,
               pool: str) -> dict:
    config = ScanConfig(roots=(str(root),), db_path=str(db), backbone=backbone_name,
                        device=device, rotations=True, decode_workers=workers, decode_pool=pool)
    if backbone_name == "resnet50":
        backbone = resnet50_random().to(device)
    else:
        backbone, _ = load_backbone(backbone_name, device=device)
    # A first forward of each batch shape sets up the GPU's kernels (3.5 s
    # for Lite0 in one run): paid once per model load, as the window keeps
    # its model, so it is taken here and not counted as scanning.
    warm = np.zeros((128, 224, 224, 3), dtype=np.uint8)
    backbone.embed_turns(warm, (0, 1, 2, 3))
    # Time spent inside the model calls (upload, forwards, download): what
    # is left of the embed phase is waiting for decodes and bookkeeping.
    in_model = [0.0]
    real = Backbone.embed_turns

    def timed(self, images, quarter_turns):  # noqa: ANN001, ANN202
        begin = time.perf_counter()
        try:
            return real(self, images, quarter_turns)
        finally:
            in_model[0] += time.perf_counter() - begin

    Backbone.embed_turns = timed
    try:
        start = time.perf_counter()
        embedding = []  # (time, images done) at each embed progress event
        for event in run_scan(config, backbone=backbone):
            if isinstance(event, Progress) and event.phase == "embed":
                embedding.append((time.perf_counter(), event.done))
        result = event
        elapsed = time.perf_counter() - start
    finally:
        Backbone.embed_turns = real
    timings = result.stats.timings
    embedded = result.stats.embedded
    # "load_model" is the one-off model load (Lite0: weights file + hash);
    # it is reported, not counted in the throughput of the pass.
    passing = elapsed - timings.get("load_model", 0.0)
    # Steady state: from past the decode window to the end of embedding.
    # While the pool and the model start, the decoders fill the window
    # (3 batches) ahead; a rate measured while that backlog drains would
    # exceed what decoding sustains (a first version of this bench read
    # 1.3 x the decode ceiling that way). Needs a few thousand photos.
    total = embedding[-1][1]
    skip = 128 * 3 + 128 * 4
    steady = float("nan")  # too few photos to tell
    if total >= 2 * skip:
        t0, n0 = next((t, n) for t, n in embedding if n >= skip)
        t1, n1 = embedding[-1]
        steady = (n1 - n0) / (t1 - t0)
    first = next(t for t, n in embedding if n > 0) - embedding[0][0]
    return {"embedded": embedded, "seconds": round(elapsed, 2), "timings": timings,
            "steady_rate": steady, "first_batch_s": round(first, 2),
            "model_seconds": round(in_model[0], 2),
            "embed_phase_rate": embedded / timings["embed"],
            "end_to_end_rate": embedded / passing}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--workers", type=int, default=0, help="0: one per core")
    parser.add_argument("--json", help="write every figure here too")
    parser.add_argument("--skip-ceilings", action="store_true",
                        help="no model ceilings (they are far above decoding on a GPU)")
    parser.add_argument("--pools", nargs="+", default=["threads", "processes"],
                        choices=["threads", "processes"], help="decode pools to measure")
    parser.add_argument("--skip-nvjpeg", action="store_true")
    parser.add_argument("--both-layouts", action="store_true",
                        help="also time the model in NCHW (channels-last is the default)")
    parser.add_argument("--device", default="cuda",
                        help="cpu: a quick smoke test of this script where no GPU is")
    args = parser.parse_args()
    import torch
    import torchvision

    device = args.device
    assert device == "cpu" or torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    gpu = torch.cuda.get_device_name() if device == "cuda" else "no GPU (smoke test)"
    workers = args.workers or os.cpu_count() or 2
    report: dict = {
        "machine": f"{gpu}, {os.cpu_count()} CPU cores "
                   f"({platform.machine()}), torch {torch.__version__}, "
                   f"torchvision {torchvision.__version__}, Python {platform.python_version()}",
        "images": args.images, "decode_threads": workers,
    }
    print("machine:", report["machine"])
    work = Path(tempfile.mkdtemp(prefix="imgdedupe-gpu-"))
    try:
        start = time.perf_counter()
        sources = photo_sources()
        folder = work / "photos"
        with ProcessPoolExecutor() as pool:
            list(pool.map(make_photo, [folder] * args.images, range(args.images),
                          [sources] * args.images, chunksize=16))
        paths = sorted(str(p) for p in folder.rglob("*.jpg"))
        print(f"made {len(paths)} 4000x3000 JPEGs in {time.perf_counter() - start:.1f} s")

        ceilings = {}
        for name in ("resnet50", "efficientnet-lite0") if not args.skip_ceilings else ():
            for layout in (True, False) if args.both_layouts else (True,):
                if name == "resnet50":
                    backbone = resnet50_random()
                else:
                    backbone, _ = load_backbone(name, device="cpu")
                backbone.to(device, channels_last=layout)
                for batch in (128, 256) if device == "cuda" else (16,):
                    key = f"{name} batch {batch} {'channels_last' if layout else 'NCHW'}"
                    ceilings[key] = model_ceiling(backbone, batch)
                    print(f"model ceiling {key}: {ceilings[key]:.0f} images/s (1 forward each)")
                del backbone
                if device == "cuda":
                    torch.cuda.empty_cache()
        report["model_ceilings"] = ceilings

        decode = {}
        for kind in args.pools:
            decode[kind] = decode_ceiling(paths, workers, kind == "processes")
            print(f"decode ceiling, {workers} {kind} (draft decode + resize + hash): "
                  f"{decode[kind]:.0f} images/s")
        report["decode_ceiling"] = decode
        scans = {}
        for name in ("resnet50", "efficientnet-lite0"):
            for kind in args.pools:
                rates = scan_rates(folder, work / f"{name}-{kind}.db", name, workers, device, kind)
                scans[f"{name} {kind}"] = rates
                ceiling = decode[kind]
                r = rates
                print(f"scan {name}, decode {kind} (rotations on, {r['embedded']} embedded, "
                      f"{r['seconds']} s): steady {r['steady_rate']:.0f} images/s = "
                      f"{r['steady_rate'] / ceiling:.2f} x its decode ceiling (first batch "
                      f"after {r['first_batch_s']} s); embed phase "
                      f"{r['embed_phase_rate'] / ceiling:.2f} x; end to end "
                      f"{r['end_to_end_rate']:.0f} images/s = "
                      f"{r['end_to_end_rate'] / ceiling:.2f} x; in the model "
                      f"{r['model_seconds']} s; phases {r['timings']}")
        report["scans"] = scans
        for kind in args.pools:
            again = decode_ceiling(paths, workers, kind == "processes")
            report[f"decode_ceiling_again_{kind}"] = again
            print(f"decode ceiling, {kind}, again after the scans: {again:.0f} images/s")
        decode = max(decode.values())
        try:
            if device != "cuda" or args.skip_nvjpeg:
                raise RuntimeError("not measured (no GPU, or --skip-nvjpeg)")
            gpu_decode = nvjpeg_rate(paths, workers)
            report["nvjpeg"] = gpu_decode
            print(f"nvjpeg decode + GPU resize ({workers} reader threads): {gpu_decode:.0f} "
                  f"images/s = {gpu_decode / decode:.2f} x CPU draft decode")
        except Exception as exc:  # noqa: BLE001  (a measurement, reported either way)
            report["nvjpeg"] = f"failed: {type(exc).__name__}: {exc}"
            print("nvjpeg:", report["nvjpeg"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

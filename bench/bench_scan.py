"""Scan speed: model ceiling, end-to-end scan, and rescan, in one run.

    python bench/bench_scan.py [--images 48] [--copies 0] [--backbone efficientnet-lite0|resnet50]
                               [--no-rotations] [--device auto]

Prints, for one machine in one run:
  * the bare upright float32 forward rate (images/s on random 224x224 input
    at the pipeline's batch size), the yardstick of the throughput issue,
    and the rate of the model as the scan runs it (bfloat16 where native);
  * the end-to-end scan of realistic 12 MP JPEGs (walk, hash, draft decode
    in the thread pool, embed, store, index, group) and its ratio to that
    ceiling;
  * the rescan of the unchanged tree against a plain os.walk + stat;
  * with --copies N, N of the photos also get an edited copy (cropped,
    resized to 9 MP, brightened, re-encoded), so the scan's pair
    verification has real work: its share of the cold scan is printed.

ResNet50 is timed with random weights: the weights do not change its speed,
and the real ones cannot be downloaded on the build machines.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from imgdedupe.core.model.loading import load_backbone, resnet50_random
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import ScanResult
from imgdedupe.core.scan.pipeline import run_scan

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"


def photo_sources() -> list[Path]:
    return sorted(p for p in SAMPLES.rglob("*.jpg") if "broken" not in p.name)


def make_photo(folder: Path, n: int, sources: list[Path],
               size: tuple[int, int] = (4000, 3000)) -> None:
    """Photo ``n``: a 12 MP camera-like JPEG from a bundled CC0 photo, with
    its own framing (a crop of 50-100% of the source), brightness and grain.
    The framing keeps them apart as a library's photos are: with brightness
    alone, every photo was a near-exact copy of the hundreds made from the
    same source, which no real library looks like."""
    rng = np.random.default_rng(n)
    source = Image.open(sources[n % len(sources)]).convert("RGB")
    scale = 0.5 + 0.5 * rng.random()
    w, h = int(source.width * scale), int(source.height * scale)
    x, y = rng.integers(0, source.width - w + 1), rng.integers(0, source.height - h + 1)
    base = source.crop((x, y, x + w, y + h)).resize(size)
    base = ImageEnhance.Brightness(base).enhance(0.8 + 0.4 * rng.random())
    noise = rng.integers(-6, 7, size=(size[1] // 8, size[0] // 8, 3), dtype=np.int16)
    grain = Image.fromarray(np.uint8(noise + 128)).resize(size)
    photo = Image.blend(base, grain, 0.06)
    (folder / f"{n // 24:02d}").mkdir(parents=True, exist_ok=True)
    photo.save(folder / f"{n // 24:02d}" / f"IMG_{n:05d}.jpg", quality=92)


def make_photos(folder: Path, count: int, copies: int = 0) -> None:
    sources = photo_sources()
    for n in range(count):
        make_photo(folder, n, sources)
    for n in range(copies):
        original = folder / f"{n // 24:02d}" / f"IMG_{n:05d}.jpg"
        with Image.open(original) as photo:
            w, h = photo.size
            edit = photo.crop((w // 25, h // 25, w, h)).resize((3464, 2598))
            edit = ImageEnhance.Brightness(edit).enhance(1.08)
            (folder / "edited").mkdir(exist_ok=True)
            edit.save(folder / "edited" / f"IMG_{n:05d}_edit.jpg", quality=85)


def ceiling(backbone, batch: int, repeats: int, rounds: int = 3) -> float:  # noqa: ANN001
    """Images/s of the model alone: the median of ``rounds`` timings of
    ``repeats`` batches. One timing of three batches (~1 s) read 40 to 63
    images/s for the same float32 forward in runs minutes apart on the
    shared build machine, which made the scan's ratio to it swing 0.38x to
    0.70x (docs/performance.md)."""
    x = np.random.default_rng(0).integers(0, 256, size=(batch, 224, 224, 3), dtype=np.uint8)
    backbone.embed(x)  # warm-up
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            backbone.embed(x)
        rates.append(batch * repeats / (time.perf_counter() - start))
    return float(np.median(rates))


def scan(root: Path, db: Path, backbone, rotations: bool,  # noqa: ANN001
         workers: int = 0, pool: str = "auto") -> tuple[ScanResult, float]:
    config = ScanConfig(roots=(str(root),), db_path=str(db), backbone=backbone.info.name,
                        rotations=rotations, decode_workers=workers, decode_pool=pool)
    start = time.perf_counter()
    result = [e for e in run_scan(config, backbone=backbone)][-1]
    return result, time.perf_counter() - start


def walk_stat(root: Path) -> float:
    start = time.perf_counter()
    for folder, _, files in os.walk(root):
        for name in files:
            os.stat(os.path.join(folder, name))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--copies", type=int, default=0,
                        help="edited copies of the first N photos (pair verification's work)")
    parser.add_argument("--backbone", default="efficientnet-lite0")
    parser.add_argument("--no-rotations", dest="rotations", action="store_false")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--decode-workers", type=int, default=0, help="0: one per core")
    parser.add_argument("--decode-pool", default="auto", choices=["auto", "threads", "processes"])
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch's intra-op threads (0: its default, one per core)")
    parser.add_argument("--photos", type=Path,
                        help="keep the made photos here and reuse them (made once: ~30 s "
                             "for 48); default: a temporary folder, removed")
    args = parser.parse_args()
    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    if args.backbone == "resnet50":
        backbone = resnet50_random().to(args.device)
    else:
        backbone, _ = load_backbone(args.backbone, device=args.device)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, "
          f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), device {backbone.device}")
    turned = "matched (by hash; one forward a photo)" if args.rotations else "not matched"
    print(f"backbone {backbone.info.name}, batch {args.batch}, turned copies {turned}")
    work = Path(tempfile.mkdtemp(prefix="imgdedupe-bench-"))
    photos = args.photos / f"{args.images}+{args.copies}" if args.photos else work / "photos"
    try:
        start = time.perf_counter()
        if not (photos / ".made").exists():
            shutil.rmtree(photos, ignore_errors=True)
            make_photos(photos, args.images, args.copies)
            (photos / ".made").touch()  # hidden: the walk skips it
        print(f"made {args.images} 4000x3000 JPEGs and {args.copies} edited copies in "
              f"{time.perf_counter() - start:.1f} s")
        total_images = args.images + args.copies
        # The yardstick: one upright float32 forward a photo, same run.
        float32 = (resnet50_random() if args.backbone == "resnet50"
                   else load_backbone(args.backbone, device="cpu")[0]).to("cpu", bf16=False)
        bare = ceiling(float32, args.batch, repeats=6)
        del float32
        used = ceiling(backbone, args.batch, repeats=6)
        print(f"bare float32 upright forward: {bare:.1f} images/s; the scan's model "
              f"({backbone.info.model_id}): {used:.1f} images/s ({used / bare:.2f} x)")
        ceiling_rate = bare
        result, elapsed = scan(photos, work / "c.db", backbone, args.rotations,
                               args.decode_workers, args.decode_pool)
        assert result.stats.embedded == total_images, result.stats
        rate = total_images / elapsed
        print(f"end-to-end scan: {elapsed:.1f} s = {rate:.1f} images/s "
              f"-> {rate / ceiling_rate:.2f} x the bare float32 forward  "
              f"(phases: {result.stats.timings})")
        verify = result.stats.timings.get("verify", 0.0)
        tiers = {t: sum(g.tier == t for g in result.groups)
                 for t in ("exact", "near_duplicate", "similar_shot")}
        print(f"pair verification: {verify:.2f} s = {verify / (elapsed - verify):.1%} on top of "
              f"the rest of the cold scan; groups by tier {tiers}")
        rescan_result, rescan = scan(photos, work / "c.db", backbone, args.rotations)
        assert rescan_result.stats.embedded == 0
        plain = min(walk_stat(photos) for _ in range(3))
        print(f"rescan of the unchanged tree: {rescan * 1000:.1f} ms; walk+stat "
              f"{plain * 1000:.2f} ms; model load excluded")
        print(f"rescan / walk+stat = {rescan / plain:.1f}  (rescan phases: "
              f"{rescan_result.stats.timings}; a few ms of fixed cost, opening the "
              f"cache and its memo, dominate a tree this small: bench_rescan.py "
              f"measures library-sized trees)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

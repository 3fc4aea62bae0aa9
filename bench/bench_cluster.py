"""A clustered scan (scan --cluster) against a local scan, in one run.

    python bench/bench_cluster.py [--images 192] [--size 2000x1500] [--cpus 2] [--rounds 2]
                                  [--local-torch-threads N]

Starts a local Ray cluster of ``--cpus`` CPU workers in this process, makes
``--images`` camera-like JPEGs (bench_scan.make_photo) and scans them with
a fresh cache each time, alternately on this machine and through the
cluster, ``--rounds`` times. Prints each scan's embedding rate (photos
decoded and embedded per second of the embed phase, the part the cluster
takes) and its whole time, then the cluster/local ratios. Same backbone
(EfficientNet-Lite0, shipped), same folder, same machine; the cluster's
time includes starting its actors and loading the model in them.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import ray
from bench_scan import make_photo, photo_sources

from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import ScanResult
from imgdedupe.core.scan.pipeline import run_scan

BACKBONE = "efficientnet-lite0"


def scan(root: Path, work: Path, cluster: str | None) -> tuple[float, float, int]:
    """(embed rate in photos/s, whole scan in s, photos embedded)."""
    db = work / "bench.db"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    config = ScanConfig(roots=(str(root),), db_path=str(db), backbone=BACKBONE,
                        cluster=cluster)
    started = time.perf_counter()
    result = [e for e in run_scan(config) if isinstance(e, ScanResult)][0]
    whole = time.perf_counter() - started
    embed = result.stats.timings.get("embed", 0.0) + result.stats.timings.get("load_model", 0.0)
    return result.stats.embedded / embed, whole, result.stats.embedded


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--size", default="2000x1500")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--local-torch-threads", type=int, default=0,
                        help="the local scan's torch threads (0: torch's default, one a "
                             "core); each embedding actor has one per CPU it holds")
    args = parser.parse_args()
    if args.local_torch_threads:
        import torch

        torch.set_num_threads(args.local_torch_threads)
    size = tuple(int(v) for v in args.size.split("x"))
    base = Path(tempfile.mkdtemp(prefix="bench_cluster_"))
    try:
        root = base / "photos"
        root.mkdir()
        sources = photo_sources()
        for n in range(args.images):
            make_photo(root, n, sources, size)
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        print(f"machine: {cpu_name()}, {os.cpu_count()} cores; "
              f"{args.images} photos of {args.size}; Ray {ray.__version__}, "
              f"{args.cpus} CPU workers on this machine")
        rates: dict[str, list[float]] = {"local": [], "cluster": []}
        wholes: dict[str, list[float]] = {"local": [], "cluster": []}
        for round_ in range(args.rounds):
            for kind, cluster in (("local", None), ("cluster", "auto")):
                rate, whole, embedded = scan(root, base / "work", cluster)
                rates[kind].append(rate)
                wholes[kind].append(whole)
                print(f"round {round_ + 1} {kind:7s}: {embedded} embedded, "
                      f"{rate:6.1f} photos/s embedding, whole scan {whole:6.1f} s")
        local_rate, cluster_rate = (statistics.median(rates[k]) for k in ("local", "cluster"))
        local_whole, cluster_whole = (statistics.median(wholes[k]) for k in ("local", "cluster"))
        print(f"median embedding rate: local {local_rate:.1f}, cluster {cluster_rate:.1f} "
              f"photos/s: cluster/local = {cluster_rate / local_rate:.2f}")
        print(f"median whole scan: local {local_whole:.1f} s, cluster {cluster_whole:.1f} s: "
              f"cluster/local time = {cluster_whole / local_whole:.2f}")
    finally:
        ray.shutdown()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

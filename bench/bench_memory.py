"""Peak memory of a cold scan of a 10,000-photo library, at any checkout.

    nice -n 19 python bench/bench_memory.py [--source CHECKOUT] [--work /tmp/bench_memory]
                                            [--photos 10000] [--backbone efficientnet-lite0]

Builds once (cached under --work) a library of real photos: the Caltech-101
JPEGs under /work/shared/corpus/caltech101, each re-encoded whole, pasted
beside another, in a 2x2 grid with three others, and some as a crop of one
corner, 320-640 px, JPEG quality 85-92, seeded. Then runs, in a subprocess,

    python -m imgdedupe scan LIBRARY --db FRESH_DB --backbone B -q --json OUT

from the tree given by --source (cwd and PYTHONPATH), so an older checkout
(a git worktree) is measured by the same script. "Cold" means a new cache
database; the library's files may well be in the page cache.

Prints the source commit, photos, wall time, the peak RSS of the scan and
its children together (the decode pool may spawn worker processes),
the largest single process (getrusage's RUSAGE_CHILDREN ru_maxrss, the
kernel's own peak; the last VmHWM sampled can miss the final 0.2 s), and
the scan's phase timings. The summed RSS counts shared libraries once per
process: an upper bound on what the tree holds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path("/work/shared/corpus/caltech101")
# Bump when the recipe changes, so a cached library of the old recipe is rebuilt.
RECIPE = 1
MiB = 1024 * 1024


def sources(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))


def _fit(picture: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Resize so the long side is 320-640 px: phone-export sizes, and the
    Caltech originals (about 300 px) are smaller than any camera's."""
    side = int(rng.integers(320, 641))
    scale = side / max(picture.size)
    return picture.resize((max(1, round(picture.width * scale)),
                           max(1, round(picture.height * scale))), Image.LANCZOS)


def _open(path: Path) -> Image.Image:
    with Image.open(path) as picture:
        return picture.convert("RGB")


def _side_by_side(a: Image.Image, b: Image.Image) -> Image.Image:
    h = min(a.height, b.height)
    a = a.resize((max(1, a.width * h // a.height), h))
    b = b.resize((max(1, b.width * h // b.height), h))
    out = Image.new("RGB", (a.width + b.width, h))
    out.paste(a, (0, 0))
    out.paste(b, (a.width, 0))
    return out


def _grid(pictures: list[Image.Image]) -> Image.Image:
    cell = (320, 240)
    out = Image.new("RGB", (2 * cell[0], 2 * cell[1]))
    for k, picture in enumerate(pictures):
        out.paste(picture.resize(cell), ((k % 2) * cell[0], (k // 2) * cell[1]))
    return out


def _crop(picture: Image.Image, rng: np.random.Generator) -> Image.Image:
    # One corner, 55-75% of each side: a cropped copy of the whole photo,
    # the library's share of near-duplicates.
    f = 0.55 + 0.2 * rng.random()
    w, h = int(picture.width * f), int(picture.height * f)
    x = 0 if rng.random() < 0.5 else picture.width - w
    y = 0 if rng.random() < 0.5 else picture.height - h
    return picture.crop((x, y, x + w, y + h))


def build_library(folder: Path, count: int, corpus: Path) -> None:
    marker = folder / "library.json"
    recipe = {"recipe": RECIPE, "photos": count, "corpus": str(corpus)}
    if marker.exists() and json.loads(marker.read_text()) == recipe:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    paths = sources(corpus)
    n_src = len(paths)
    rng = np.random.default_rng(20260101)
    pairs, grid2, grid3, grid4 = (rng.permutation(n_src) for _ in range(4))
    # Whole photos, pairs and grids (mostly distinct pictures) in turn, the
    # rest as corner crops of whole photos.
    recipes: list[tuple[str, int]] = []
    for kind in ("whole", "pair", "grid"):
        recipes += [(kind, i) for i in range(n_src)]
    recipes = recipes[:count]
    crops = rng.permutation(n_src)
    recipes += [("crop", int(crops[k % n_src])) for k in range(count - len(recipes))]
    seen: set[bytes] = set()
    start = time.perf_counter()
    for n, (kind, i) in enumerate(recipes):
        r = np.random.default_rng([20260101, n])
        if kind == "whole":
            picture = _open(paths[i])
        elif kind == "pair":
            picture = _side_by_side(_open(paths[i]), _open(paths[pairs[i]]))
        elif kind == "grid":
            picture = _grid([_open(paths[j]) for j in (i, grid2[i], grid3[i], grid4[i])])
        else:
            picture = _crop(_open(paths[i]), r)
        picture = _fit(picture, r)
        target = folder / f"{n // 100:03d}" / f"IMG_{n:05d}.jpg"
        target.parent.mkdir(exist_ok=True)
        # The corpus holds some byte-identical photos: another quality gives
        # other bytes, so the library has no exact copies.
        for quality in [int(r.integers(85, 93))] + list(range(85, 93)):
            picture.save(target, quality=quality)
            digest = hashlib.sha1(target.read_bytes()).digest()
            if digest not in seen:
                break
        seen.add(digest)
        if n % 1000 == 999:
            print(f"  built {n + 1}/{len(recipes)} ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    marker.write_text(json.dumps(recipe))


def _status(pid: int) -> dict[str, int]:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("PPid", "VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])  # kB, or the pid
    return fields


def tree_sample(root: int) -> dict[int, dict[str, int]]:
    """VmRSS and VmHWM (kB) of ``root`` and all its descendants, by PPid.
    A kernel thread or a process that just exited has no VmRSS: skipped."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                table[int(entry)] = _status(int(entry))
            except (OSError, ValueError):
                continue
    tree, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        if pid in table and "VmRSS" in table[pid]:
            tree[pid] = table[pid]
        frontier += [p for p, s in table.items() if s.get("PPid") == pid]
    return tree


def _tree_psutil(root: int) -> dict[int, dict[str, int]]:
    import psutil

    try:
        procs = [psutil.Process(root)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return {}
    tree = {}
    for p in procs:
        try:
            tree[p.pid] = {"VmRSS": p.memory_info().rss // 1024}
            tree[p.pid].update(_status(p.pid))  # VmHWM, which psutil does not give
        except (psutil.NoSuchProcess, OSError):
            continue
    return tree


def git_commit(source: Path) -> str:
    out = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    commit = out.stdout.strip() or "unknown"
    # A measured tree with edits is not that commit: say so.
    dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain",
                            "--untracked-files=no"], capture_output=True, text=True).stdout
    changed = len(dirty.splitlines())
    return f"{commit} + {changed} changed files" if changed else commit


def measure(source: Path, commit: str, library: Path, work: Path, backbone: str,
            interval: float = 0.2) -> dict:
    try:
        import psutil  # noqa: F401

        sample, sampler = _tree_psutil, "psutil"
    except ImportError:
        sample, sampler = tree_sample, "/proc VmRSS"
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(source)] + ([os.environ["PYTHONPATH"]]
                                                           if os.environ.get("PYTHONPATH")
                                                           else []))}
    env.pop("IMGDEDUPE_DB", None)
    # The editable install points at /work/main: make sure the scan imports
    # the checkout being measured.
    where = subprocess.run([sys.executable, "-c", "import imgdedupe; print(imgdedupe.__file__)"],
                           cwd=source, env=env, capture_output=True, text=True, check=True)
    imported = Path(where.stdout.strip()).resolve()
    if source.resolve() not in imported.parents:
        raise SystemExit(f"{source} imports imgdedupe from {imported}")
    run_dir = work / "runs" / commit.split()[0]
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    db, report = run_dir / "cache.sqlite3", run_dir / "scan.json"
    command = [sys.executable, "-m", "imgdedupe", "scan", str(library), "--db", str(db),
               "--backbone", backbone, "-q", "--json", str(report)]
    peak_tree = peak_single = 0
    hwm: dict[int, int] = {}
    pids: set[int] = set()
    start = time.perf_counter()
    # The samples go to rss.tsv: set beside the phase timings, they say
    # which phase holds the peak.
    with open(run_dir / "stderr.txt", "w") as stderr, open(run_dir / "rss.tsv", "w") as log:
        log.write("seconds\ttree_rss_kib\tprocesses\n")
        proc = subprocess.Popen(command, cwd=source, env=env, stdout=subprocess.DEVNULL,
                                stderr=stderr)
        while proc.poll() is None:
            tree = sample(proc.pid)
            pids |= tree.keys()
            rss = [s["VmRSS"] for s in tree.values()]
            log.write(f"{time.perf_counter() - start:.1f}\t{sum(rss)}\t{len(rss)}\n")
            peak_tree = max(peak_tree, sum(rss))
            peak_single = max([peak_single] + rss)
            for pid, s in tree.items():
                hwm[pid] = max(hwm.get(pid, 0), s.get("VmHWM", 0))
            time.sleep(interval)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"scan exited {proc.returncode}; see {run_dir / 'stderr.txt'}")
    stats = json.loads(report.read_text()).get("stats", {})
    return {"command": command, "sampler": sampler, "wall": wall, "peak_tree": peak_tree,
            "peak_single": peak_single, "hwm": max(hwm.values(), default=0),
            "processes": len(pids), "stats": stats, "run_dir": run_dir,
            # ru_maxrss is kB on Linux: the largest waited-for child, grandchildren included.
            "ru_maxrss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, default=REPO,
                        help="the imgdedupe tree to run (default: this repo)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_memory"))
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--backbone", default="efficientnet-lite0")
    args = parser.parse_args()
    library = args.work / "library"
    start = time.perf_counter()
    build_library(library, args.photos, args.corpus)
    photos = sum(1 for _ in library.rglob("*.jpg"))
    print(f"library: {photos} photos in {library} (ready in {time.perf_counter() - start:.0f} s)")
    source = args.source.resolve()
    # Read before the scan imports the tree: a branch in use may move meanwhile.
    commit = git_commit(source)
    r = measure(source, commit, library, args.work, args.backbone)
    stats = r["stats"]
    print(f"source: {source} at {commit}")
    print(f"command: {' '.join(r['command'])}")
    print(f"photos: {photos}; scan saw {stats.get('files_seen')}, embedded "
          f"{stats.get('embedded')}, failed {stats.get('failed')}; groups "
          f"{stats.get('groups')} {stats.get('groups_by_tier', '')}")
    print(f"wall time: {r['wall']:.1f} s ({os.cpu_count()} cores, nice {os.nice(0)})")
    print(f"peak RSS, scan + children together ({r['sampler']}, every 0.2 s, "
          f"{r['processes']} processes seen): {r['peak_tree'] / 1024:.0f} MiB")
    print(f"largest single process: VmHWM {r['hwm'] / 1024:.0f} MiB, sampled VmRSS "
          f"{r['peak_single'] / 1024:.0f} MiB, RUSAGE_CHILDREN ru_maxrss "
          f"{r['ru_maxrss'] / 1024:.0f} MiB")
    timings = stats.get("timings_s")
    if timings:
        print("phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    print(f"report, stderr and RSS samples (rss.tsv): {r['run_dir']}")


if __name__ == "__main__":
    main()

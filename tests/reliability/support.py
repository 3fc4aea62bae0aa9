"""Helpers of the reliability tests: a small library with known groups,
hashes of every photo, integrity checks, child processes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from imgdedupe.cli import EXIT_OK, main
from imgdedupe.core.actions.trashing import SeenFile

REPO = Path(__file__).resolve().parents[2]
SCAN_THRESHOLD = 95.0  # generated photos of different seeds stay below it


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child python: this checkout importable, one
    intra-op thread (two processes with torch's default pool on a 2-core
    machine spin against each other and run 20x slower)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), **extra)
    env.pop("IMGDEDUPE_DB", None)
    return env


def python() -> list[str]:
    return [sys.executable, "-X", "faulthandler"]


def build_library(root: Path, make_photo: Callable[..., Image.Image]) -> dict[str, set[str]]:
    """Thirty files: twelve distinct photos, near-duplicates and byte copies
    of four of them, a truncated JPEG and a text file named .jpg. Returns
    the groups a scan at SCAN_THRESHOLD must find (sets of paths)."""
    expected: dict[str, set[str]] = {}
    for n in range(12):
        folder = root / ("camera" if n % 2 else "phone") / f"{2019 + n % 3}"
        path = folder / f"IMG_{n:04d}.jpg"
        picture = make_photo(path, 100 + 7 * n, size=(320, 240))
        if n >= 4:
            continue
        group = expected.setdefault(f"base{n}", {str(path)})
        small = root / "sent" / f"IMG_{n:04d}_small.jpg"
        small.parent.mkdir(parents=True, exist_ok=True)
        picture.resize((200, 150), Image.Resampling.LANCZOS).save(small, quality=75)
        png = root / "edits" / f"IMG_{n:04d}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        picture.save(png)
        copy = root / "backup" / f"IMG_{n:04d} (1).jpg"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        group |= {str(small), str(png), str(copy)}
        if n < 2:
            webp = root / "edits" / f"IMG_{n:04d}.webp"
            picture.save(webp, quality=85)
            group.add(str(webp))
    broken = root / "bad" / "truncated.jpg"
    broken.parent.mkdir(parents=True)
    data = (root / "phone" / "2019" / "IMG_0000.jpg").read_bytes()
    broken.write_bytes(data[: len(data) * 6 // 10])
    (root / "bad" / "notes.jpg").write_text("not a photo\n", encoding="utf-8")
    return expected


def file_hashes(root: Path) -> dict[str, str]:
    """Path -> BLAKE2b of every file below root: the bytes must never change."""
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                out[path] = hashlib.blake2b(handle.read(), digest_size=16).hexdigest()
    return out


def integrity(db: Path) -> str:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def scan_json(root: Path, tmp_path: Path, name: str = "r.json") -> list[list[SeenFile]]:
    """Scan ``root`` with the CLI; the groups, as read back from its JSON."""
    out = tmp_path / name
    assert main(["scan", str(root), "--db", str(tmp_path / "c.db"), "--backbone",
                 "efficientnet-lite0", "--no-rotations", "--threshold", str(SCAN_THRESHOLD),
                 "--json", str(out), "-q"]) == EXIT_OK
    report = json.loads(out.read_text(encoding="utf-8"))
    return [[SeenFile(m["path"], m["size"], m["mtime_ns"]) for m in g["members"]]
            for g in report["groups"]]

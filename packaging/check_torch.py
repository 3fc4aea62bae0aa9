#!/usr/bin/env python3
"""Check that this Python's torch is the CPU-only build of the version that
pyproject.toml pins, before it is bundled.

    python packaging/check_torch.py            # exit 1, saying why, unless it is
    python packaging/check_torch.py --pin      # print the pinned version (2.14.1)

The installers are CPU-only: a CUDA torch's libtorch links gigabytes of
NVIDIA libraries that PyInstaller cannot leave out, and another version is
not what the tests ran. PyTorch's CPU wheels for Linux and Windows say so
in their version (``2.14.1+cpu``); PyPI's macOS wheels carry no local tag
and no CUDA. packaging/build-bundle.sh and the release workflow run this.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pinned_torch(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The X of the ``torch==X`` requirement in pyproject.toml."""
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    for dep in deps:
        match = re.fullmatch(r"torch\s*==\s*([^\s;,]+)", dep.strip())
        if match:
            return match.group(1)
    raise LookupError(f"no torch==VERSION requirement in {pyproject}")


def expected_version(pin: str, platform: str = sys.platform) -> str:
    return pin if platform == "darwin" else f"{pin}+cpu"


def problems(version: str, cuda: str | None, pin: str, platform: str = sys.platform) -> list[str]:
    """What is wrong with a torch reporting ``version`` and CUDA ``cuda``
    (torch.__version__, torch.version.cuda) for a bundle; empty if nothing."""
    out = []
    want = expected_version(pin, platform)
    if version != want:
        out.append(f"torch {version} is installed; the bundle needs {want} "
                   f"(pyproject.toml pins torch=={pin}, CPU-only)")
    if cuda is not None:
        out.append(f"this torch is built for CUDA {cuda}; the bundle needs a CPU-only build")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pin", action="store_true", help="print the pinned torch version")
    args = parser.parse_args(argv)
    pin = pinned_torch()
    if args.pin:
        print(pin)
        return 0
    import torch

    found = problems(torch.__version__, torch.version.cuda, pin)
    for problem in found:
        print(f"check_torch: {problem}", file=sys.stderr)
    if found:
        print(f"check_torch: {sys.executable} has the wrong torch; see docs/packaging.md",
              file=sys.stderr)
        return 1
    print(f"check_torch: torch {torch.__version__}, CPU-only, as pinned")
    return 0


if __name__ == "__main__":
    sys.exit(main())

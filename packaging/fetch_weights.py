#!/usr/bin/env python3
"""Fetch ResNet50's ImageNet weights for the bundle, checked, into the
folder packaging/imgdedupe.spec bundles them from.

    python packaging/fetch_weights.py [DEST]   # default resources/weights/

torchvision's IMAGENET1K_V2 file, resnet50-11ad3fa6.pth, is found or
downloaded by the app's own loader (imgdedupe.core.model.weights:
locate_weights, then download to a .part file, checked, then renamed), with
the file's full SHA-256 instead of the 8-digit prefix the app knows: a file
with another digest, fetched or already there, stops the release. The
bundled app finds it in resources/weights/ inside the bundle
(loading.default_bundled_dirs) before any cache or download. Needs
imgdedupe installed (pip install .).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imgdedupe.core.model.weights import LocatedWeights, WeightsSpec

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "resources" / "weights"
# SHA-256 of https://download.pytorch.org/models/resnet50-11ad3fa6.pth
# (102,540,417 bytes); torchvision names the file after its first 8 digits.
SHA256 = "11ad3fa62ca79e40addfd354a8ec4b7c75143b3038b8d2a807fbc68deab379ca"


def release_spec() -> WeightsSpec:
    """The app's ResNet50 weights spec with the full digest filled in. It
    must agree with the app's: same prefix, and the same digest if the app
    ever carries the full one."""
    from imgdedupe.core.model.weights import RESNET50_IMAGENET1K_V2 as app

    if not SHA256.startswith(app.sha256_prefix.lower()) or (
        app.sha256 is not None and app.sha256.lower() != SHA256
    ):
        raise SystemExit(f"fetch_weights: SHA256 {SHA256} disagrees with the app's "
                         f"{app.filename} ({app.sha256 or app.sha256_prefix})")
    return dataclasses.replace(app, sha256=SHA256)


def fetch(dest: Path = DEST, spec: WeightsSpec | None = None, *, attempts: int = 3,
          pause_s: float = 10.0) -> LocatedWeights:
    """A verified ``spec`` file in ``dest``: the one there, or downloaded.
    A download that fails is tried ``attempts`` times; a wrong digest is
    never retried (WeightsChecksumError)."""
    from imgdedupe.core.errors import WeightsChecksumError, WeightsError
    from imgdedupe.core.model.weights import ENV_VAR, locate_weights, stderr_progress

    spec = spec if spec is not None else release_spec()
    if os.environ.get(ENV_VAR):
        # locate_weights would take that file and never look in dest.
        raise SystemExit(f"fetch_weights: unset ${ENV_VAR} first")
    for attempt in range(1, attempts + 1):
        try:
            # dest as the bundled folder and as the torch cache, so no copy
            # elsewhere on the build machine (~/.cache/torch) is used.
            return locate_weights(spec, bundled_dirs=[dest], hub_dir=dest, download_dir=dest,
                                  allow_download=True,
                                  progress=stderr_progress(spec.filename))
        except WeightsChecksumError:
            raise
        except WeightsError as e:
            if attempt == attempts:
                raise
            print(f"fetch_weights: attempt {attempt} failed, retrying: {e}", file=sys.stderr)
            time.sleep(pause_s * attempt)
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", nargs="?", type=Path, default=DEST,
                        help="folder to put the file in (default: %(default)s)")
    args = parser.parse_args(argv)
    from imgdedupe.core.errors import WeightsError

    try:
        located = fetch(args.dest)
    except WeightsError as e:
        print(f"fetch_weights: {e}", file=sys.stderr)
        return 1
    print(f"fetch_weights: {located.path} ({located.source}), sha256 {located.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

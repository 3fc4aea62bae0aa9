#!/bin/sh
# Build the one-folder app bundle dist/imgdedupe/ (imgdedupe-gui + imgdedupe)
# in a fresh virtual environment with a CPU-only torch.
#
#   packaging/build-bundle.sh            # Linux (here) or macOS
#
# Why a separate venv: the development torch may be a CUDA build whose
# libraries (3+ GB) cannot be left out, because libtorch links them. The CPU
# wheel is a fifth of the size. It is the version pyproject.toml pins
# (torch==X): X+cpu from the local wheel folder $WHEELS (default
# /opt/wheels) when it has that wheel, else from PyTorch's CPU index (PyPI
# on macOS, whose wheels are CPU builds). packaging/check_torch.py stops the
# build when the venv's torch is anything else: never a silent CUDA bundle.
set -eu
cd "$(dirname "$0")/.."
VENV=${VENV:-build/venv-bundle}
PYTHON=${PYTHON:-python3.11}
WHEELS=${WHEELS:-/opt/wheels}
DIST=${DIST:-dist}
TORCH=$("$PYTHON" packaging/check_torch.py --pin)

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip wheel
if ls "$WHEELS/torch-$TORCH+cpu-"*.whl >/dev/null 2>&1; then
    $PIP install -q "$WHEELS/torch-$TORCH+cpu-"*.whl
elif [ "$(uname -s)" = Darwin ]; then
    $PIP install -q "torch==$TORCH"
else
    $PIP install -q "torch==$TORCH" --index-url https://download.pytorch.org/whl/cpu
fi
"$VENV/bin/python" packaging/check_torch.py
# The app and its requirements from pyproject.toml except torch and
# torchvision: the CPU torch above stands in, and the bundle's ResNet50 is
# imgdedupe.core.model.resnet, not torchvision's (the spec leaves
# torchvision out).
DEPS=$("$VENV/bin/python" -c 'import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(" ".join(d for d in deps if not re.match(r"torch(vision)?\b", d)))')
$PIP install -q --no-deps .
# shellcheck disable=SC2086  # requirement specifiers, none with a space
$PIP install -q $DEPS pyinstaller
# Again, on what is bundled: none of those may have swapped torch.
"$VENV/bin/python" packaging/check_torch.py
"$VENV/bin/pyinstaller" packaging/imgdedupe.spec --noconfirm --clean \
    --distpath "$DIST" --workpath build/pyinstaller
du -sh "$DIST/imgdedupe"

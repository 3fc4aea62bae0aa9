"""model.registry: a backbone is one record, and one record is enough.

The test registers a tiny network the way a contributor would add a real
one, and runs the whole scan with it: weights, model id, vector length,
calibration, embedding, cache and grouping all come from that record.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from imgdedupe.core.errors import ImgDedupeError
from imgdedupe.core.model import calibration, registry
from imgdedupe.core.model.loading import build_backbone, model_id_of, plan_backbone
from imgdedupe.core.model.registry import REGISTRY, BackboneSpec, spec_of
from imgdedupe.core.model.weights import sha256_file
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import ScanResult
from imgdedupe.core.scan.pipeline import run_scan

DIM = 6


class _Tiny(torch.nn.Module):
    """Colour statistics: 2 x 3 numbers; enough to tell the test's photos apart."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mix(x)
        return torch.cat([y.mean(dim=(2, 3)), y.std(dim=(2, 3))], dim=1)


def _network(weights: Path | None) -> torch.nn.Module:
    net = _Tiny()
    if weights is not None:
        net.load_state_dict(torch.load(weights, weights_only=True))
    return net.eval()


@pytest.fixture
def tiny(tmp_path, monkeypatch) -> BackboneSpec:
    torch.manual_seed(3)
    weights = tmp_path / "tiny.pth"
    state = _Tiny().state_dict()
    state["mix.weight"] = torch.eye(3).view(3, 3, 1, 1)  # colours as they are
    state["mix.bias"] = torch.zeros(3)
    torch.save(state, weights)
    spec = BackboneSpec(name="tiny", title="Tiny", dim=DIM,
                        knots=((0.0, 0.0), (0.9, 50.0), (0.99, 90.0), (1.0, 100.0)),
                        mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), scale=255.0,
                        network=_network, shipped_weights=lambda: weights)
    monkeypatch.setitem(REGISTRY, "tiny", spec)  # the one entry a new backbone needs
    return spec


def test_a_new_backbone_is_one_record(tiny, tmp_path, photo_maker):
    weights = tiny.shipped_weights()
    plan = plan_backbone("tiny", device="cpu")
    assert plan.model_id == model_id_of("tiny", sha256_file(weights))
    backbone = build_backbone(plan, "cpu")
    images = np.random.default_rng(0).integers(0, 255, (2, 224, 224, 3), dtype=np.uint8)
    vectors = backbone.embed(images)
    assert vectors.shape == (2, DIM)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert calibration.score_to_cosine("tiny", 90.0) == pytest.approx(0.99)

    # The whole scan: the store, the pair search and the groups at the
    # record's own calibration.
    library = tmp_path / "lib"
    library.mkdir()
    photo_maker(library / "a.jpg", 1)
    photo_maker(library / "b.jpg", 2)
    photo_maker(library / "c.jpg", 3)
    (library / "a copy.jpg").write_bytes((library / "a.jpg").read_bytes())
    config = ScanConfig(roots=(str(library),), db_path=str(tmp_path / "c.db"), backbone="tiny",
                        device="cpu", rotations=False)
    result = [e for e in run_scan(config) if isinstance(e, ScanResult)][0]
    assert result.backbone == "tiny" and result.model_id == plan.model_id
    assert result.stats.embedded == 3  # one vector per distinct content
    assert result.graph is not None and result.graph.backbone == "tiny"
    grouped = [{Path(m.path).name for m in g.members} for g in result.groups]
    assert {"a.jpg", "a copy.jpg"} in grouped


def test_an_unknown_backbone_is_a_clear_error():
    with pytest.raises(ImgDedupeError, match="unknown backbone 'nope'.*resnet50"):
        spec_of("nope")
    with pytest.raises(ImgDedupeError, match="unknown backbone"):
        calibration.score_to_cosine("nope", 90.0)


def test_a_record_must_be_complete():
    with pytest.raises(ValueError, match="shipped_weights or download"):
        BackboneSpec(name="x", title="X", dim=2, knots=((0.0, 0.0), (1.0, 100.0)),
                     mean=(0, 0, 0), std=(1, 1, 1), scale=1.0, network=_network)
    with pytest.raises(ValueError, match="knots must increase"):
        BackboneSpec(name="x", title="X", dim=2, knots=((0.0, 100.0), (1.0, 0.0)),
                     mean=(0, 0, 0), std=(1, 1, 1), scale=1.0, network=_network,
                     shipped_weights=lambda: Path("w"))


def test_every_shipped_record_calibrates_the_default_threshold():
    for name in registry.BACKBONES:
        cosine = calibration.score_to_cosine(name, calibration.DEFAULT_THRESHOLD)
        assert 0.0 < cosine < 1.0
        assert calibration.cosine_to_score(name, cosine) == pytest.approx(
            calibration.DEFAULT_THRESHOLD)
    assert registry.FALLBACK in REGISTRY and REGISTRY[registry.FALLBACK].download is None

"""The perceptual hash behind the near-exact early results, and their event."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgdedupe.cli import main
from imgdedupe.core.groups.near_exact import MAX_DISTANCE, NearExactIndex
from imgdedupe.core.images.phash import hamming, perceptual_hash
from imgdedupe.core.images.preprocess import decode_for_network
from imgdedupe.core.scan.config import ScanConfig
from imgdedupe.core.scan.events import ExactGroupsReady, NearExactGroupsReady, Progress, ScanResult
from imgdedupe.core.scan.pipeline import run_scan

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


def _network_input(image: Image.Image, tmp_path: Path, name: str, **save: object) -> np.ndarray:
    path = tmp_path / name
    image.save(path, **save)
    return decode_for_network(str(path))[0]


@pytest.fixture
def photos(photo_maker) -> list[Image.Image]:  # noqa: ANN001
    return [photo_maker(None, seed, (800, 600)) for seed in range(8)]


@pytest.fixture(scope="module")
def lite0_backbone():  # noqa: ANN201
    from imgdedupe.core.model.loading import load_backbone

    return load_backbone("efficientnet-lite0", device="cpu")[0]


def test_reencoded_and_resized_copies_are_within_the_distance(photos, tmp_path):
    for n, photo in enumerate(photos):
        original = perceptual_hash(_network_input(photo, tmp_path, f"{n}.png"))
        for m, (copy, save) in enumerate([
            (photo, {"quality": 60}),
            (photo.resize((400, 300)), {"quality": 85}),
            (photo.resize((267, 200)), {"quality": 50}),
        ]):
            other = perceptual_hash(_network_input(copy, tmp_path, f"{n}_{m}.jpg", **save))
            assert hamming(original, other) <= MAX_DISTANCE, (n, m)


def test_distinct_photos_are_far_apart(photos, tmp_path):
    hashes = [perceptual_hash(_network_input(p, tmp_path, f"{n}.png"))
              for n, p in enumerate(photos)]
    for a, b in itertools.combinations(hashes, 2):
        assert hamming(a, b) > 3 * MAX_DISTANCE


def test_hash_is_deterministic_64_bit_and_ignores_nothing_but_noise():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
    first = perceptual_hash(image)
    assert first == perceptual_hash(image.copy())
    assert 0 <= first < 2**64
    assert perceptual_hash(np.ascontiguousarray(image[::-1])) != first


def test_band_lookup_finds_every_pair_within_the_distance():
    rng = np.random.default_rng(1)
    base = [int(x) for x in rng.integers(0, 2**63, size=300, dtype=np.int64)]
    values = dict(enumerate(base))
    for n, value in enumerate(base[:100]):  # copies 0-4 bits away
        flips = rng.choice(64, size=n % (MAX_DISTANCE + 1), replace=False)
        values[300 + n] = value ^ sum(1 << int(f) for f in flips)
    index = NearExactIndex()
    for key, value in values.items():
        index.add(f"{key:04d}", value)
    brute = {(f"{a:04d}", f"{b:04d}") for a, b in itertools.combinations(values, 2)
             if hamming(values[a], values[b]) <= MAX_DISTANCE}
    assert set(index.pairs) == brute
    assert len(brute) >= 100
    groups = index.groups()
    assert all(len(members) >= 1 for _, members in groups)


def _library(root: Path) -> None:
    """Six sample photos, a byte copy and three re-encoded copies."""
    sources = [SAMPLES / name for name in (
        "Holiday/IMG_0001.jpg", "Holiday/IMG_0002.jpg", "Holiday/IMG_0003.jpg",
        "Phone/PXL_20230814_093012.jpg", "Archive/scan_0042.jpg", "Archive/cameraman_1988.jpg")]
    (root / "photos").mkdir(parents=True)
    (root / "backup").mkdir()
    for n, src in enumerate(sources):
        image = Image.open(src).convert("RGB")
        image.save(root / "photos" / f"IMG_{n:04d}.jpg", quality=92)
        if n < 3:
            image.resize((image.width // 2, image.height // 2)).save(
                root / "backup" / f"IMG_{n:04d}.jpg", quality=70)
    (root / "backup" / "IMG_0005.jpg").write_bytes((root / "photos" / "IMG_0005.jpg").read_bytes())


def test_near_exact_groups_arrive_before_the_result(tmp_path, lite0_backbone):
    _library(tmp_path / "lib")
    config = ScanConfig(roots=(str(tmp_path / "lib"),), db_path=str(tmp_path / "c.db"),
                        backbone="efficientnet-lite0", batch_size=4)
    events = list(run_scan(config, backbone=lite0_backbone))
    kinds = [type(e) for e in events]
    near = [e for e in events if isinstance(e, NearExactGroupsReady)]
    assert near, kinds
    assert kinds.index(ExactGroupsReady) < kinds.index(NearExactGroupsReady)
    assert kinds.index(NearExactGroupsReady) < kinds.index(ScanResult) == len(events) - 1
    # The first near-exact group comes before the model's last batch.
    last_embed = max(i for i, e in enumerate(events)
                     if isinstance(e, Progress) and e.phase == "embed")
    assert kinds.index(NearExactGroupsReady) < last_embed
    final = {frozenset(m.path for m in g.members) for g in near[-1].groups}
    lib = tmp_path / "lib"
    assert final == {frozenset({str(lib / "photos" / f"IMG_{n:04d}.jpg"),
                                str(lib / "backup" / f"IMG_{n:04d}.jpg")}) for n in range(3)}
    assert all(g.kind == "near-exact" for g in near[-1].groups)
    # The CNN's final groups include them.
    result = {frozenset(m.path for m in g.members) for g in events[-1].groups}
    assert final <= result


def test_cli_stream_writes_json_lines(tmp_path, capsys):
    _library(tmp_path / "lib")
    code = main(["scan", str(tmp_path / "lib"), "--db", str(tmp_path / "c.db"), "--stream",
                 "--backbone", "efficientnet-lite0", "--no-rotations", "-q"])
    assert code == 0
    lines = [json.loads(line) for line in io.StringIO(capsys.readouterr().out)]
    kinds = [line["event"] for line in lines]
    assert kinds[-1] == "result" and "exact_groups" in kinds and "near_exact_groups" in kinds
    assert kinds.index("near_exact_groups") < kinds.index("result")
    near = [line for line in lines if line["event"] == "near_exact_groups"][-1]
    assert len(near["groups"]) == 3 and near["groups"][0]["kind"] == "near-exact"
    assert lines[-1]["groups"]


def test_identical_hashes_pair_with_their_first_holder_only():
    """2,000 blank scans share one hash: linear pairs, not 2M, and one group."""
    index = NearExactIndex()
    blank, near_blank = 0x0F0F_0F0F_0F0F_0F0F, 0x0F0F_0F0F_0F0F_0F0E  # 1 bit apart
    for n in range(2000):
        index.add(f"blank{n:04d}", blank)
    index.add("zz-near", near_blank)
    assert len(index.pairs) == 2000  # 1,999 twins of blank0000, and the near one
    [(reference, members)] = index.groups()
    assert reference == "blank0000"
    assert sorted(m for m, _ in members) == [f"blank{n:04d}" for n in range(1, 2000)] + ["zz-near"]


def test_turned_hashes_are_made_a_chunk_of_pictures_at_a_time(tmp_path, monkeypatch):
    from imgdedupe.core.images.phash import quarter_turn_hashes
    from imgdedupe.core.images.preprocess import PICTURE_KEY, picture_pixels, verification_picture
    from imgdedupe.core.pairs import rotated
    from imgdedupe.core.records import ImageFile
    from imgdedupe.core.storage.store import Store

    rng = np.random.default_rng(5)
    with Store(tmp_path / "c.db") as store:
        files = store.sync_files([ImageFile(f"/p/{n}.jpg", 1, 1) for n in range(7)])
        ids = [c.file_id for c in files]
        store.put_pictures(PICTURE_KEY, [
            (i, verification_picture(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)), None)
            for i in ids[:6]])  # the last file has no picture
        read_at_once = []
        pictures = store.pictures
        monkeypatch.setattr(store, "pictures",
                            lambda key, chunk: read_at_once.append(len(chunk)) or
                            pictures(key, chunk))
        monkeypatch.setattr(rotated, "HASH_CHUNK", 4)
        made = rotated.hashes_of(store, ids, workers=2)
        assert read_at_once == [4, 2]  # never the whole library's pictures at once
        expected = [quarter_turn_hashes(picture_pixels(p[0]))
                    for p in pictures(PICTURE_KEY, ids[:6]).values()]
        assert made == [tuple(h) for h in expected] + [None]
        # Stored: asked again, nothing is read.
        assert rotated.hashes_of(store, ids, workers=2) == made
        assert read_at_once == [4, 2]

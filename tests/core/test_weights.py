"""Offline tests for imgdedupe.core.model.weights (a local HTTP server stands in for the net)."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from imgdedupe.core.errors import DownloadCancelled, WeightsChecksumError, WeightsError
from imgdedupe.core.model.weights import (
    ENV_VAR,
    LocatedWeights,
    WeightsSpec,
    download,
    load_state_dict,
    locate_weights,
    sha256_file,
    stderr_progress,
)

FILENAME = "tiny-model.pth"


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Never see the developer's real env var or torch hub cache.
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / FILENAME
    path.parent.mkdir()
    torch.manual_seed(0)
    # Big enough (~260 KB) for the download to take several network chunks.
    torch.save(torch.nn.Linear(256, 256).state_dict(), path)
    return path


@pytest.fixture
def digest(weights_file: Path) -> str:
    return hashlib.sha256(weights_file.read_bytes()).hexdigest()


@pytest.fixture(params=["full", "prefix"])
def spec(request: pytest.FixtureRequest, digest: str) -> WeightsSpec:
    full = digest if request.param == "full" else None
    return WeightsSpec(FILENAME, "http://example.invalid/" + FILENAME, digest[:8], full)


def _copy(src: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / src.name
    dst.write_bytes(src.read_bytes())
    return dst


def _corrupt(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


# --------------------------------------------------------------- locate


def test_sha256_file(weights_file: Path, digest: str) -> None:
    assert sha256_file(weights_file) == digest


def test_explicit_beats_env_beats_bundled_beats_hub(
    tmp_path: Path,
    weights_file: Path,
    spec: WeightsSpec,
    digest: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    explicit = _copy(weights_file, tmp_path / "explicit")
    env = _copy(weights_file, tmp_path / "env")
    bundled = _copy(weights_file, tmp_path / "bundled")
    hub = _copy(weights_file, tmp_path / "hub")
    kw = {"bundled_dirs": [tmp_path / "empty", bundled.parent], "hub_dir": hub.parent}
    monkeypatch.setenv(ENV_VAR, str(env))

    assert locate_weights(spec, explicit=explicit, **kw) == LocatedWeights(
        explicit, digest, "explicit"
    )
    assert locate_weights(spec, **kw) == LocatedWeights(env, digest, "env")
    monkeypatch.setenv(ENV_VAR, "")  # empty means unset
    assert locate_weights(spec, **kw) == LocatedWeights(bundled, digest, "bundled")
    assert locate_weights(spec, hub_dir=hub.parent) == LocatedWeights(hub, digest, "hub-cache")


def test_default_hub_dir_is_torch_hub_checkpoints(
    tmp_path: Path, weights_file: Path, spec: WeightsSpec
) -> None:
    hub = _copy(weights_file, tmp_path / "torch-home" / "hub" / "checkpoints")
    found = locate_weights(spec)
    assert found.source == "hub-cache" and found.path == hub


@pytest.mark.parametrize("where", ["explicit", "env", "bundled", "hub"])
def test_wrong_hash_is_refused_not_skipped(
    tmp_path: Path,
    weights_file: Path,
    spec: WeightsSpec,
    where: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = _corrupt(_copy(weights_file, tmp_path / where))
    # A good copy later in the order must not be used instead.
    good_hub = _copy(weights_file, tmp_path / "good-hub")
    kw: dict = {"hub_dir": good_hub.parent}
    if where == "explicit":
        kw["explicit"] = bad
    elif where == "env":
        monkeypatch.setenv(ENV_VAR, str(bad))
    elif where == "bundled":
        kw["bundled_dirs"] = [bad.parent]
    else:
        kw["hub_dir"] = bad.parent
    with pytest.raises(WeightsChecksumError) as ei:
        locate_weights(spec, **kw)
    msg = str(ei.value)
    assert str(bad) in msg and sha256_file(bad) in msg and spec.sha256_prefix in msg
    assert "Delete" in msg


def test_prefix_mode_accepts_any_file_with_matching_prefix(
    tmp_path: Path, weights_file: Path, digest: str
) -> None:
    wrong_full = WeightsSpec(FILENAME, "u", digest[:8], "0" * 64)
    with pytest.raises(WeightsChecksumError):
        locate_weights(wrong_full, explicit=weights_file, hub_dir=tmp_path)
    wrong_prefix = WeightsSpec(FILENAME, "u", "deadbeef", None)
    with pytest.raises(WeightsChecksumError):
        locate_weights(wrong_prefix, explicit=weights_file, hub_dir=tmp_path)


@pytest.mark.parametrize("how", ["explicit", "env"])
def test_missing_explicit_path_is_an_error(
    tmp_path: Path,
    weights_file: Path,
    spec: WeightsSpec,
    how: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = tmp_path / "nope.pth"
    hub = _copy(weights_file, tmp_path / "hub")  # must not be used as a fallback
    kw: dict = {"hub_dir": hub.parent}
    if how == "explicit":
        kw["explicit"] = missing
    else:
        monkeypatch.setenv(ENV_VAR, str(missing))
    with pytest.raises(WeightsError, match="does not exist") as ei:
        locate_weights(spec, **kw)
    assert str(missing) in str(ei.value)


def test_nothing_found_message(tmp_path: Path, spec: WeightsSpec) -> None:
    bundled, hub = tmp_path / "bundled", tmp_path / "hub"
    with pytest.raises(WeightsError) as ei:
        locate_weights(spec, bundled_dirs=[bundled], hub_dir=hub)
    assert type(ei.value) is WeightsError
    msg = str(ei.value)
    for needle in (
        spec.url,
        "--weights",
        ENV_VAR,
        "efficientnet-lite0",
        str(bundled / FILENAME),
        str(hub / FILENAME),
    ):
        assert needle in msg


def test_load_state_dict(weights_file: Path, tmp_path: Path) -> None:
    state = load_state_dict(weights_file)
    assert set(state) == {"weight", "bias"} and state["weight"].shape == (256, 256)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a pickle\x00" * 10)
    with pytest.raises(WeightsError, match="not a valid PyTorch weights file"):
        load_state_dict(garbage)
    not_a_dict = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), not_a_dict)
    with pytest.raises(WeightsError, match="not a valid PyTorch weights file"):
        load_state_dict(not_a_dict)


# ------------------------------------------------------------- download


@pytest.fixture
def served(server, weights_file: Path, spec: WeightsSpec) -> WeightsSpec:
    server.files["/" + FILENAME] = weights_file.read_bytes()
    return replace(spec, url=f"{server.base}/{FILENAME}")


def test_download_ok(tmp_path: Path, served: WeightsSpec, digest: str) -> None:
    dest = tmp_path / "dl" / "sub" / FILENAME
    seen: list[tuple[int, int | None]] = []
    out = download(served.url, dest, expected=served, progress=lambda d, t: seen.append((d, t)))
    assert out == dest and sha256_file(dest) == digest
    size = dest.stat().st_size
    done = [d for d, _ in seen]
    assert len(done) > 1 and done == sorted(done) and done[-1] == size
    assert {t for _, t in seen} == {size}
    assert list(dest.parent.iterdir()) == [dest]


def test_download_wrong_bytes(tmp_path: Path, server, served: WeightsSpec) -> None:
    server.files["/" + FILENAME] = b"x" * 100_000
    dest = tmp_path / "dl" / FILENAME
    with pytest.raises(WeightsChecksumError):
        download(served.url, dest, expected=served)
    assert list(dest.parent.iterdir()) == []


def test_download_cancel(tmp_path: Path, served: WeightsSpec) -> None:
    dest = tmp_path / "dl" / FILENAME
    cancel = threading.Event()
    with pytest.raises(DownloadCancelled):
        download(
            served.url, dest, expected=served, progress=lambda d, t: cancel.set(), cancel=cancel
        )
    assert list(dest.parent.iterdir()) == []


def test_download_404(tmp_path: Path, server, served: WeightsSpec) -> None:
    dest = tmp_path / "dl" / FILENAME
    with pytest.raises(WeightsError, match="404"):
        download(server.base + "/missing", dest, expected=served)
    assert list(dest.parent.iterdir()) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_unreachable(tmp_path: Path, spec: WeightsSpec) -> None:
    dest = tmp_path / "dl" / FILENAME
    url = f"http://127.0.0.1:{_closed_port()}/x"
    with pytest.raises(WeightsError, match="--weights") as ei:
        download(url, dest, expected=spec, timeout=5)
    assert type(ei.value) is WeightsError
    assert list(dest.parent.iterdir()) == []


def test_locate_downloads_when_allowed(tmp_path: Path, served: WeightsSpec, digest: str) -> None:
    hub = tmp_path / "hub"
    found = locate_weights(served, hub_dir=hub, allow_download=True)
    assert found == LocatedWeights(hub / FILENAME, digest, "download")
    # The next call finds it in the cache without the network.
    assert locate_weights(served, hub_dir=hub).source == "hub-cache"


def test_locate_offline_download_lists_places(tmp_path: Path, spec: WeightsSpec) -> None:
    offline = replace(spec, url=f"http://127.0.0.1:{_closed_port()}/{FILENAME}")
    with pytest.raises(WeightsError) as ei:
        locate_weights(offline, hub_dir=tmp_path / "hub", allow_download=True)
    msg = str(ei.value)
    assert "Download failed" in msg and offline.url in msg and "--weights" in msg
    assert list((tmp_path / "hub").iterdir()) == []


def test_stderr_progress(capsys: pytest.CaptureFixture[str]) -> None:
    cb = stderr_progress("resnet50", interval=3600)
    cb(0, 2 * 1048576)
    cb(1048576, 2 * 1048576)  # throttled away
    cb(2 * 1048576, 2 * 1048576)  # completion always drawn
    cb(5, None)
    err = capsys.readouterr().err
    assert err.count("\r") == 2 and "100%" in err and err.endswith("\n")


def test_a_weights_digest_is_remembered_until_the_file_changes(
    weights_file: Path, spec: WeightsSpec, digest: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first use of a file hashes it in full; later scans read the
    digest from the cache, until the file is rewritten (a new mtime)."""
    from imgdedupe.core.model import weights as weights_module
    from imgdedupe.core.storage.store import Store

    hashed: list[Path] = []
    real = weights_module.sha256_file

    def counting(path):  # noqa: ANN001, ANN202
        hashed.append(Path(path))
        return real(path)

    monkeypatch.setattr(weights_module, "sha256_file", counting)
    with Store(tmp_path / "c.db") as store:
        for _ in range(3):
            found = locate_weights(spec, explicit=weights_file, digests=store)
            assert found.sha256 == digest
        assert hashed == [weights_file]
        before = weights_file.stat().st_mtime_ns
        damaged = bytearray(weights_file.read_bytes())
        damaged[len(damaged) // 2] ^= 0xFF
        weights_file.write_bytes(bytes(damaged))  # damaged in place, same size
        # ...a second later: the clock that stamps mtimes ticks every few ms,
        # and this test writes faster than that.
        os.utime(weights_file, ns=(before + 10**9, before + 10**9))
        with pytest.raises(WeightsChecksumError):
            locate_weights(spec, explicit=weights_file, digests=store)
        assert hashed == [weights_file, weights_file]
    with Store(tmp_path / "c.db") as store:  # remembered across runs, refused again
        with pytest.raises(WeightsChecksumError):
            locate_weights(spec, explicit=weights_file, digests=store)
    assert len(hashed) == 2

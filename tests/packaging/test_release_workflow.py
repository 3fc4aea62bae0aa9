"""The release workflow (.github/workflows/release.yml): valid for GitHub
(check-jsonschema's vendored schema, no network) and doing what
docs/packaging.md says on each of the three OSes. The checks its steps run
(check_torch, fetch_weights, smoke_check) are tested in test_release_checks."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
OSES = {"ubuntu-22.04": "Linux", "windows-latest": "Windows", "macos-14": "macOS"}


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _steps(job: dict, runner_os: str) -> list[dict]:
    """The steps that run on runner_os, in order."""
    out = []
    for step in job["steps"]:
        cond = step.get("if", "")
        if "runner.os" in cond and not (
            f"runner.os == '{runner_os}'" in cond
            or ("runner.os != '" in cond and f"runner.os != '{runner_os}'" not in cond)
        ):
            continue
        out.append(step)
    return out


def _runs(job: dict, runner_os: str) -> str:
    """The shell text of the steps that run on runner_os, joined."""
    return "\n".join(step.get("run", "") for step in _steps(job, runner_os))


def _commands(job: dict, runner_os: str) -> list[str]:
    """Each command line the steps run on runner_os, in order (backslash
    continuations joined)."""
    return [line.strip() for line in _runs(job, runner_os).replace("\\\n", " ").splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _index(commands: list[str], start: str) -> int:
    found = [i for i, c in enumerate(commands) if c.startswith(start)]
    assert len(found) == 1, (start, found)
    return found[0]


def _packaging_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "packaging" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    importlib.util.find_spec("check_jsonschema") is None,
    reason="check-jsonschema not installed: pip install check-jsonschema (or '.[test]')",
)
def test_schema_valid() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_triggers(workflow: dict) -> None:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert on["push"]["tags"] == ["v*"]
    assert "workflow_dispatch" in on
    assert workflow["permissions"] == {"contents": "read"}


def test_matrix_has_three_oses_each_uploading(workflow: dict) -> None:
    build = workflow["jobs"]["build"]
    include = build["strategy"]["matrix"]["include"]
    assert {row["os"] for row in include} == set(OSES)
    assert all(row.get("artifact", "").startswith("dist/") for row in include)
    assert build["runs-on"] == "${{ matrix.os }}"
    uploads = [
        s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")
    ]
    assert len(uploads) == 1 and "if" not in uploads[0], "every OS uploads"
    assert uploads[0]["with"]["path"] == "${{ matrix.artifact }}"
    assert "${{ matrix.name }}" in uploads[0]["with"]["name"]
    assert uploads[0]["with"]["if-no-files-found"] == "error"
    assert {row["name"] for row in include} == {"linux", "windows", "macos"}


def test_each_os_builds_and_smoke_tests(workflow: dict) -> None:
    build = workflow["jobs"]["build"]
    setup = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["python-version"] == "3.11"
    for runner_os in OSES.values():
        text = _runs(build, runner_os)
        pins = re.findall(r"torch==(\S+) torchvision==(\S+)", text)
        assert pins == [_pins()], (runner_os, pins)  # one install, pyproject's pins
        cpu_index = "--index-url https://download.pytorch.org/whl/cpu" in text
        assert cpu_index == (runner_os != "macOS"), runner_os
        assert "pip install . pyinstaller" in text
        assert "pyinstaller packaging/imgdedupe.spec --noconfirm" in text
        assert "dist/imgdedupe/imgdedupe --version" in text
    assert "packaging/linux/build-deb.sh" in _runs(build, "Linux")
    windows = _runs(build, "Windows")
    assert "choco install nsis" in windows and "makensis" in windows
    assert "-DVERSION=" in windows and "-DBUNDLE=dist/imgdedupe" in windows
    assert "packaging/windows/imgdedupe.nsi" in windows
    assert "packaging/macos/make_dmg.sh" in _runs(build, "macOS")
    assert "packaging/macos/make_dmg.sh" not in _runs(build, "Linux")


def _pins() -> tuple[str, str]:
    """pyproject.toml's torch and torchvision pins."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return (re.search(r'"torch==([^"]+)"', text).group(1),
            re.search(r'"torchvision==([^"]+)"', text).group(1))


def test_every_os_checks_torch_fetches_the_weights_and_smoke_tests_strictly(
        workflow: dict) -> None:
    """In order on each OS: the pinned CPU torch and the app installed, torch
    checked, ResNet50's weights fetched (full SHA-256) into the folder the
    spec bundles, the bundle built, then scanned by smoke_check."""
    build = workflow["jobs"]["build"]
    for runner_os in OSES.values():
        commands = _commands(build, runner_os)
        order = [_index(commands, start) for start in (
            "pip install torch==",
            "pip install . pyinstaller",
            "python packaging/check_torch.py",
            "python packaging/fetch_weights.py resources/weights",
            "pyinstaller packaging/imgdedupe.spec",
            "dist/imgdedupe/imgdedupe --version",
            "python packaging/smoke_check.py dist/imgdedupe",
        )]
        assert order == sorted(order), (runner_os, commands)
        # The smoke check is the bundle's whole scan: no lenient scan beside it.
        assert not any(c.startswith("dist/imgdedupe/imgdedupe scan") for c in commands)
    steps = build["steps"]
    for script in ("check_torch.py", "fetch_weights.py", "smoke_check.py"):
        step = next(s for s in steps if f"packaging/{script}" in s.get("run", ""))
        assert "if" not in step and "continue-on-error" not in step, script
    # fetch_weights's folder is the one the spec bundles and the frozen app
    # searches (both tested in test_release_checks), and it checks the full
    # SHA-256 that agrees with the app's own prefix.
    fetch = _packaging_script("fetch_weights")
    assert fetch.DEST == ROOT / "resources" / "weights"
    assert len(fetch.release_spec().sha256) == 64


def test_installed_apps_are_smoke_tested_too(workflow: dict) -> None:
    build = workflow["jobs"]["build"]
    windows = _runs(build, "Windows")
    assert 'python packaging/smoke_check.py "$dir"' in windows
    assert 'throw "smoke check of the installed app failed"' in windows
    mac = _commands(build, "macOS")
    mounted = _index(mac, 'python packaging/smoke_check.py "$mnt/imgdedupe.app"')
    assert _index(mac, "hdiutil attach") < mounted < _index(mac, 'hdiutil detach')


def test_windows_checks_the_verb_the_installer_writes(workflow: dict) -> None:
    """The folder verb's command as the workflow expects it (a PowerShell
    string) is the one imgdedupe.nsi writes, with its variables filled in."""
    nsi = (ROOT / "packaging" / "windows" / "imgdedupe.nsi").read_text(encoding="utf-8")
    written = re.search(r'WriteRegStr HKCU "\$\{CLASSES\}\\Directory\\shell\\imgdedupe\.scan'
                        r'\\command" "" \'([^\']+)\'', nsi).group(1)
    exe = re.search(r'!define EXE "([^"]+)"', nsi).group(1)
    written = written.replace("$INSTDIR", "$dir").replace("${EXE}", exe)
    windows = _runs(workflow["jobs"]["build"], "Windows")
    expected = re.search(r'if \(\$cmd -ne "(.+)"\) \{ throw', windows).group(1)
    assert expected.replace('`"', '"') == written


def test_scripts_it_calls_exist(workflow: dict) -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    for path in (
        "packaging/imgdedupe.spec",
        "packaging/windows/imgdedupe.nsi",
        "packaging/macos/make_dmg.sh",
        "packaging/linux/build-deb.sh",
        "packaging/check_torch.py",
        "packaging/fetch_weights.py",
        "packaging/smoke_check.py",
    ):
        assert path in text
        assert (ROOT / path).is_file(), path


def test_release_job_attaches_on_tags_only(workflow: dict) -> None:
    release = workflow["jobs"]["release"]
    assert release["needs"] == "build"
    assert release["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert release["permissions"] == {"contents": "write"}
    steps = release["steps"]
    assert any(s.get("uses", "").startswith("actions/download-artifact@") for s in steps)
    assert "gh release upload" in "\n".join(s.get("run", "") for s in steps)


def test_the_deb_check_gets_its_tools_first(workflow: dict) -> None:
    """check-deb.sh validates the desktop entries and runs the window on a
    private X server: the Linux runner installs both tools before it."""
    commands = _commands(workflow["jobs"]["build"], "Linux")
    check = _index(commands, "sudo packaging/linux/check-deb.sh")
    tools = [i for i, c in enumerate(commands)
             if "apt-get install" in c and "desktop-file-utils" in c and "xvfb" in c]
    assert tools and tools[0] < check

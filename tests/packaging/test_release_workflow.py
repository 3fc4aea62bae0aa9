"""The release workflow (.github/workflows/release.yml): valid for GitHub
(check-jsonschema's vendored schema, no network) and doing what
docs/packaging.md says on each of the three OSes."""

from __future__ import annotations

import importlib.util
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


def _runs(job: dict, runner_os: str) -> str:
    """The shell text of the steps that run on runner_os, joined."""
    out = []
    for step in job["steps"]:
        cond = step.get("if", "")
        if "runner.os" in cond and not (
            f"runner.os == '{runner_os}'" in cond
            or ("runner.os != '" in cond and f"runner.os != '{runner_os}'" not in cond)
        ):
            continue
        out.append(step.get("run", ""))
    return "\n".join(out)


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
        assert "torch==2.14.1 torchvision==0.29.1" in text
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


def test_scripts_it_calls_exist(workflow: dict) -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    for path in (
        "packaging/imgdedupe.spec",
        "packaging/windows/imgdedupe.nsi",
        "packaging/macos/make_dmg.sh",
        "packaging/linux/build-deb.sh",
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

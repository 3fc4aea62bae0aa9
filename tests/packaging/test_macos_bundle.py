"""The macOS bundle's Info.plist (packaging/macos/info_plist.py, fed to
PyInstaller's BUNDLE by packaging/imgdedupe.spec) and the .dmg script.
hdiutil only exists on macOS: here the script is only syntax-checked."""

from __future__ import annotations

import importlib.util
import os
import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest

import imgdedupe

ROOT = Path(__file__).resolve().parents[2]
MACOS = ROOT / "packaging" / "macos"


def _generator():
    spec = importlib.util.spec_from_file_location("info_plist", MACOS / "info_plist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def plist() -> dict:
    """What the spec passes to BUNDLE, after an XML and a binary round trip:
    anything plistlib cannot write (None, sets, ...) would fail here."""
    data = _generator().info_plist(imgdedupe.__version__)
    xml = plistlib.loads(plistlib.dumps(data, fmt=plistlib.FMT_XML))
    assert plistlib.loads(plistlib.dumps(data, fmt=plistlib.FMT_BINARY)) == xml == data
    return xml


def test_identity_and_version(plist: dict) -> None:
    assert plist["CFBundleIdentifier"] == "org.imgdedupe.imgdedupe"
    assert plist["CFBundleName"] == "imgdedupe"
    assert plist["CFBundleExecutable"] == "imgdedupe-gui"
    assert plist["CFBundlePackageType"] == "APPL"
    assert plist["CFBundleShortVersionString"] == imgdedupe.__version__
    assert plist["CFBundleVersion"] == imgdedupe.__version__
    # Without an argument the generator reads the same version from source.
    assert _generator().info_plist()["CFBundleVersion"] == imgdedupe.__version__


def test_display_keys(plist: dict) -> None:
    assert plist["CFBundleIconFile"] == "imgdedupe.icns"
    assert plist["NSHighResolutionCapable"] is True
    major, _, minor = plist["LSMinimumSystemVersion"].partition(".")
    assert major.isdigit() and minor.isdigit()


def test_document_types_images_and_folders(plist: dict) -> None:
    by_type = {ct: d for d in plist["CFBundleDocumentTypes"] for ct in d["LSItemContentTypes"]}
    assert set(by_type) == {"public.image", "public.folder"}
    for doc in by_type.values():
        # Alternate: offered in Open With, never taking over as the default.
        assert doc["LSHandlerRank"] == "Alternate"
        assert doc["CFBundleTypeRole"] == "Viewer"


def test_no_finder_service_without_a_provider(plist: dict) -> None:
    # The app registers no services provider: no Services entry that fails.
    assert "NSServices" not in plist
    (service,) = _generator().info_plist(services=True)["NSServices"]
    assert service["NSMessage"] == "findSimilarImages"
    assert service["NSSendFileTypes"] == ["public.image"]


def test_minimum_macos_follows_the_pinned_torch_wheel(plist: dict) -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"torch==2.14.1"' in pyproject  # the wheel whose tag is recorded below
    tag = _generator().TORCH_MACOS_WHEEL_TAG
    major, minor = tag.split("_")[1:3]
    assert plist["LSMinimumSystemVersion"] == f"{major}.{minor}" == "14.0"


def test_generator_writes_a_plist_file(tmp_path: Path) -> None:
    out = tmp_path / "Info.plist"
    assert _generator().main(["info_plist.py", str(out)]) == 0
    assert plistlib.loads(out.read_bytes())["CFBundleIdentifier"] == "org.imgdedupe.imgdedupe"


def test_make_dmg_script_parses() -> None:
    script = MACOS / "make_dmg.sh"
    if os.name != "nt":  # Windows checkouts have no executable bit
        assert script.stat().st_mode & 0o111, "make_dmg.sh must be executable"
    subprocess.run(["bash", "-n", str(script)], check=True)
    # .ci/run installs shellcheck: a missing checker is a failure, not a pass.
    assert shutil.which("shellcheck"), "install shellcheck (.ci/run does)"
    done = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_make_dmg_stages_the_app_beside_applications_and_packs_it(tmp_path) -> None:
    """Run the script with stand-ins for macOS's ditto and hdiutil that
    record what they are asked to do: the disk image holds the app and a
    link to /Applications, compressed (UDZO), and is verified."""
    app = tmp_path / "imgdedupe.app"
    (app / "Contents" / "MacOS").mkdir(parents=True)
    gui = app / "Contents" / "MacOS" / "imgdedupe-gui"
    gui.write_text("#!/bin/sh\n")
    gui.chmod(0o755)
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "calls.log"
    (fake / "ditto").write_text('#!/bin/sh\ncp -R "$1" "$2"\n')
    (fake / "hdiutil").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        'if [ "$1" = create ]; then\n'
        '  while [ "$1" != -srcfolder ]; do shift; done\n'
        f'  ls -A "$2" >> "{log}"; [ -L "$2/Applications" ] && echo link >> "{log}"\n'
        '  for last; do :; done; : > "$last"\n'
        "fi\n")
    for tool in ("ditto", "hdiutil"):
        (fake / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}",
           "APP": str(app), "OUT_DIR": str(tmp_path / "out")}
    done = subprocess.run(["sh", str(MACOS / "make_dmg.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    dmg = Path(done.stdout.strip().splitlines()[-1])
    assert dmg.exists() and dmg.parent == tmp_path / "out" and dmg.suffix == ".dmg"
    calls = log.read_text().splitlines()
    create = next(c for c in calls if c.startswith("create "))
    assert "-format UDZO" in create and create.endswith(str(dmg))
    assert {"imgdedupe.app", "Applications", "link"} <= set(calls)
    assert calls[-1] == f"verify {dmg}"
    # Without a built app it says what to do, and makes nothing.
    env["APP"] = str(tmp_path / "missing.app")
    done = subprocess.run(["sh", str(MACOS / "make_dmg.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "run pyinstaller" in done.stderr


def test_service_can_be_left_out() -> None:
    plist = _generator().info_plist(imgdedupe.__version__, services=False)
    assert "NSServices" not in plist and plist["CFBundleDocumentTypes"]

"""The .deb builder, on a dummy bundle, installed into a private dpkg root.

Building the real bundle takes minutes and a gigabyte; what can break in
the packaging script (paths, control file, desktop entries, maintainer
scripts, clean removal) is the same with two stand-in programs, so that is
what CI checks. packaging/linux/check-deb.sh does the real install.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "packaging" / "linux" / "build-deb.sh"
SHARE = REPO / "packaging" / "linux" / "share"

ELF_SAMPLE = next(iter(sorted(
    (Path(sysconfig.get_paths()["platstdlib"]) / "lib-dynload").glob("_posixsubprocess*.so"))))

needs_dpkg = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None, reason="dpkg-deb is needed (Debian/Ubuntu only)"
)


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("deb")
    bundle = work / "bundle"
    (bundle / "_internal").mkdir(parents=True)
    for name in ("imgdedupe", "imgdedupe-gui"):
        program = bundle / name
        program.write_text(f'#!/bin/sh\necho "{name} stand-in $*"\n')
        program.chmod(0o755)
    # One real ELF file, so the libc6 minimum has something to follow.
    shutil.copy(ELF_SAMPLE, bundle / "_internal" / ELF_SAMPLE.name)
    env = {
        **os.environ,
        "BUNDLE": str(bundle),
        "OUT_DIR": str(work / "out"),
        "PACKAGE": "imgdedupe",
        "COMPRESS": "-Zgzip -z1",
    }
    done = subprocess.run(["sh", str(BUILD)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (out,) = (work / "out").glob("imgdedupe_*_*.deb")
    return out


def _contents(deb: Path) -> list[str]:
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[5].removeprefix(".") for line in listing.splitlines()]


@needs_dpkg
def test_package_holds_the_app_launchers_menus_and_icons(deb: Path) -> None:
    from imgdedupe import __version__

    assert deb.name == f"imgdedupe_{__version__}_amd64.deb"
    files = _contents(deb)
    for expected in (
        "/opt/imgdedupe/imgdedupe-gui",
        "/opt/imgdedupe/imgdedupe",
        "/usr/bin/imgdedupe",
        "/usr/bin/imgdedupe-gui",
        "/usr/share/applications/imgdedupe.desktop",
        "/usr/share/applications/zz-imgdedupe-open-with.desktop",
        "/usr/share/icons/hicolor/48x48/apps/imgdedupe.png",
        "/usr/share/icons/hicolor/scalable/apps/imgdedupe.svg",
        "/usr/share/kio/servicemenus/imgdedupe-similar.desktop",
        "/usr/share/kservices5/ServiceMenus/imgdedupe-folder.desktop",
        "/usr/share/nautilus-python/extensions/nautilus_imgdedupe.py",
        "/usr/share/nemo/actions/imgdedupe-similar.nemo_action",
    ):
        assert expected in files, expected
    control = subprocess.run(
        ["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    assert f"Version: {__version__}" in control and "Architecture: amd64" in control
    fields = dict(line.split(": ", 1) for line in control.splitlines() if ": " in line)
    # libc6 follows the bundle's ELF files (here the one sample): what
    # objdump says it imports, not a guess. Then the system libraries of
    # packaging/linux/system-depends (test_linux_system_libs.py checks that
    # list against what Qt's X11 plugin loads).
    imports = subprocess.run(["objdump", "-T", str(ELF_SAMPLE)], capture_output=True,
                             text=True, check=True).stdout
    newest = max(re.findall(r"\*UND\*.*\bGLIBC_([0-9][0-9.]*)", imports),
                 key=lambda v: tuple(map(int, v.split("."))))
    listed = (REPO / "packaging" / "linux" / "system-depends").read_text().splitlines()
    system = [line.split("#")[0].strip() for line in listed]
    assert fields["Depends"].split(", ") == [f"libc6 (>= {newest})", *filter(None, system)]
    # The Nautilus entry's binding comes by default.
    assert "python3-nautilus" in fields["Recommends"]


def _desktop(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser


@needs_dpkg
def test_the_installed_desktop_entries_are_the_checked_ones(deb: Path, tmp_path: Path) -> None:
    """tests/packaging/test_linux_desktop_entries.py validates and tries the
    entries in packaging/linux/share: the package installs exactly those."""
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    installed = tmp_path / "usr" / "share" / "applications"
    names = sorted(p.name for p in installed.iterdir())
    assert names == ["imgdedupe.desktop", "zz-imgdedupe-open-with.desktop"]
    for name in names:
        assert (installed / name).read_bytes() == (SHARE / name).read_bytes(), name


def test_file_manager_actions() -> None:
    share = SHARE
    similar = _desktop(share / "dolphin-similar.desktop")
    assert similar["Desktop Entry"]["MimeType"] == "image/*;"
    action = similar["Desktop Action imgdedupeFindSimilar"]
    assert (action["Name"], action["Exec"]) == ("Find similar images", "imgdedupe-gui --similar %f")
    folder = _desktop(share / "dolphin-folder.desktop")["Desktop Action imgdedupeFindDuplicates"]
    assert (folder["Name"], folder["Exec"]) == (
        "Find duplicates in this folder",
        "imgdedupe-gui --scan %f",
    )
    nautilus = (share / "nautilus_imgdedupe.py").read_text()
    assert '"--similar"' in nautilus and '"--scan"' in nautilus
    compile(nautilus, "nautilus_imgdedupe.py", "exec")  # valid Python, even without gi


@needs_dpkg
@pytest.mark.skipif(os.geteuid() != 0, reason="dpkg --root needs root")
def test_install_run_and_remove_leave_nothing_behind(deb: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    admin = root / "var" / "lib" / "dpkg"
    for folder in ("info", "updates", "triggers"):
        (admin / folder).mkdir(parents=True)
    (admin / "status").touch()
    dpkg = [
        "dpkg",
        f"--root={root}",
        "--force-script-chrootless",
        "--force-depends",
        "--force-not-root",
        "--log=/dev/null",
    ]
    subprocess.run([*dpkg, "-i", str(deb)], check=True, capture_output=True, timeout=60)
    launcher = root / "usr" / "bin" / "imgdedupe"
    assert os.readlink(launcher) == "/opt/imgdedupe/imgdedupe"
    out = subprocess.run(
        [str(root / "opt" / "imgdedupe" / "imgdedupe"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "stand-in --version" in out
    subprocess.run([*dpkg, "--purge", "imgdedupe"], check=True, capture_output=True, timeout=60)
    left = [p for p in root.rglob("*") if p.is_file() and admin not in p.parents]
    assert left == []
    assert not (root / "opt" / "imgdedupe").exists()

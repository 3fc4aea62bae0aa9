"""The NSIS installer script: what it writes to the registry, that its
uninstaller takes all of it back, and (where makensis is installed) that it
really builds a Windows installer from a one-folder bundle."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import imgdedupe
from imgdedupe.core.files.walk import IMAGE_EXTENSIONS

ROOT = Path(__file__).resolve().parents[2]
NSI = ROOT / "packaging" / "windows" / "imgdedupe.nsi"
CLASSES = "Software\\Classes"
EXE = '"$INSTDIR\\imgdedupe-gui.exe"'

# A quoted NSIS string ("...", '...' or `...`) or a bare word.
_TOKEN = re.compile(r'"([^"]*)"|\'([^\']*)\'|`([^`]*)`|(\S+)')


def _tokens(line: str) -> list[str]:
    return [next(g for g in m.groups() if g is not None) for m in _TOKEN.finditer(line)]


def _script() -> tuple[list[list[str]], list[list[str]]]:
    """The install and uninstall sections, as token lists with ${defines}
    from the script itself expanded."""
    defines: dict[str, str] = {}
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for raw in NSI.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith((";", "#")):
            continue
        tokens = _tokens(line)
        for _ in range(3):  # defines may refer to defines
            tokens = [re.sub(r"\$\{(\w+)\}", lambda m: defines.get(m[1], m[0]), t) for t in tokens]
        if tokens[0] == "!define" and len(tokens) == 3:
            defines.setdefault(tokens[1], tokens[2])
        elif tokens[0] == "Section":
            current = sections.setdefault(tokens[1], [])
        elif tokens[0] == "SectionEnd":
            current = None
        elif current is not None:
            current.append(tokens)
    return sections["Install"], sections["Uninstall"]


def _writes(install: list[list[str]]) -> dict[tuple[str, str], str]:
    """(key, value name) -> data for every HKCU registry write."""
    out = {}
    for tokens in install:
        if tokens[0].startswith("WriteReg"):
            assert tokens[1] == "HKCU", f"per-user install writes HKCU only: {tokens}"
            out[(tokens[2], tokens[3])] = tokens[4]
    return out


def test_every_key_written_is_deleted_and_nothing_more() -> None:
    install, uninstall = _script()
    written = {key for key, _ in _writes(install)}
    deleted = set()
    for tokens in uninstall:
        if tokens[0] in ("DeleteRegKey", "DeleteRegValue"):
            assert tokens[1] == "HKCU", tokens
            deleted.add(tokens[2])
    assert written, "no registry writes parsed"
    for key in written:
        assert any(key == d or key.startswith(d + "\\") for d in deleted), f"left behind: {key}"
    # Each deleted key is one the installer made (or the parent of ones it
    # made, all of them ours): never a shared parent such as ...\shell.
    for d in deleted:
        assert any(k == d or k.startswith(d + "\\") for k in written), f"deletes foreign {d}"
        assert "imgdedupe" in d, f"deletes a key that is not ours: {d}"


def test_install_is_per_user_into_local_appdata() -> None:
    text = NSI.read_text(encoding="utf-8")
    assert re.search(r"^RequestExecutionLevel user$", text, re.M)
    assert re.search(r'^InstallDir "\$LOCALAPPDATA\\Programs\\\$\{APP\}"$', text, re.M)
    assert "HKLM" not in text  # (the version resource: test_a_pre_release_version_builds)
    install, uninstall = _script()
    assert ["File", "/r", "${BUNDLE}\\*"] in install
    assert [
        "CreateShortcut",
        "$SMPROGRAMS\\imgdedupe.lnk",
        "$INSTDIR\\imgdedupe-gui.exe",
    ] in install
    assert ["Delete", "$SMPROGRAMS\\imgdedupe.lnk"] in uninstall
    # Files: only the install folder, and only once it is known to be ours.
    removed = [t for t in uninstall if t[0] in ("Delete", "RMDir")]
    for tokens in removed:
        assert tokens[-1].startswith("$INSTDIR") or tokens[-1] == "$SMPROGRAMS\\imgdedupe.lnk"
    recursive = uninstall.index(["RMDir", "/r", "$INSTDIR"])
    assert uninstall[recursive - 1][:2] == ["IfFileExists", "$INSTDIR\\imgdedupe-gui.exe"]


def test_verbs_and_commands_are_exact() -> None:
    writes = _writes(_script()[0])
    similar = f"{CLASSES}\\SystemFileAssociations\\image\\shell\\imgdedupe.similar"
    assert writes[(similar, "")] == "Find similar images"
    assert writes[(similar + "\\command", "")] == f'{EXE} --similar "%1"'
    assert writes[(similar, "Icon")] == "$INSTDIR\\imgdedupe-gui.exe,0"
    # "%1\." and "%V\.": a quoted drive root ("E:\") would end in \" and be
    # split by Windows' command-line rules; "E:\." is the same folder.
    for shell, arg in (("Directory\\shell", "%1\\."), ("Drive\\shell", "%1\\."),
                       ("Directory\\Background\\shell", "%V\\.")):
        scan = f"{CLASSES}\\{shell}\\imgdedupe.scan"
        assert writes[(scan, "")] == "Find duplicates in this folder"
        assert writes[(scan + "\\command", "")] == f'{EXE} --scan "{arg}"'
        assert (scan, "Icon") in writes
    app = f"{CLASSES}\\Applications\\imgdedupe-gui.exe"
    assert writes[(app + "\\shell\\open\\command", "")] == f'{EXE} --similar "%1"'
    supported = {name for key, name in writes if key == app + "\\SupportedTypes"}
    assert supported == set(IMAGE_EXTENSIONS)
    assert (
        f"{CLASSES}\\SystemFileAssociations\\image\\OpenWithList\\imgdedupe-gui.exe",
        "",
    ) in writes
    uninst = "Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\imgdedupe"
    assert writes[(uninst, "UninstallString")] == '"$INSTDIR\\uninstall.exe"'
    assert writes[(uninst, "DisplayVersion")] == "${VERSION}"


@pytest.mark.skipif(
    shutil.which("makensis") is None,
    reason="makensis not found: install NSIS (Debian/Ubuntu: apt-get install nsis; "
    "Windows: choco install nsis) to build the installer",
)
def test_makensis_builds_installer(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "_internal").mkdir(parents=True)
    # Random bytes do not compress: the installer must come out bigger.
    for name, size in (("imgdedupe-gui.exe", 150_000), ("imgdedupe.exe", 50_000)):
        (bundle / name).write_bytes(os.urandom(size))
    (bundle / "_internal" / "python311.dll").write_bytes(os.urandom(20_000))
    payload = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    version = imgdedupe.__version__
    # "-" options: POSIX makensis reads "/" as a path; Windows takes either.
    cmd = ["makensis", "-NOCD", "-V2", f"-DVERSION={version}", f"-DBUNDLE={bundle}", str(NSI)]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    setup = tmp_path / f"imgdedupe-{version}-setup.exe"  # the default OUTFILE
    data = setup.read_bytes()
    assert data[:2] == b"MZ"
    assert len(data) > payload
    # The version resource (file properties) carries the version, UTF-16.
    assert version.encode("utf-16-le") in data

    out = tmp_path / "custom.exe"
    cmd[-1:-1] = [f"-DOUTFILE={out}"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert out.read_bytes()[:2] == b"MZ"


@pytest.mark.skipif(
    shutil.which("makensis") is None, reason="makensis not found: apt-get install nsis"
)
@pytest.mark.parametrize("version", ["0.2.0rc1", "1.10.3b2", "0.3.0.dev4"])
def test_a_pre_release_version_builds(tmp_path: Path, version: str) -> None:
    """A pre-release tag once broke the Windows job: VIFileVersion takes
    four numbers only. The numbers come from x.y.z, the text keeps the tag."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "imgdedupe-gui.exe").write_bytes(b"MZ stub")
    cmd = ["makensis", "-NOCD", "-V2", f"-DVERSION={version}", f"-DBUNDLE={bundle}", str(NSI)]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    data = (tmp_path / f"imgdedupe-{version}-setup.exe").read_bytes()
    assert version.encode("utf-16-le") in data  # ProductVersion, as tagged


@pytest.mark.skipif(
    shutil.which("makensis") is None, reason="makensis not found: apt-get install nsis"
)
def test_makensis_refuses_a_missing_bundle(tmp_path: Path) -> None:
    cmd = ["makensis", "-NOCD", "-V2", "-DVERSION=1.2.3", f"-DBUNDLE={tmp_path}", str(NSI)]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "imgdedupe-gui.exe not found" in done.stdout + done.stderr

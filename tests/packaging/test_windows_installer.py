"""The NSIS installer: the script's uninstall section takes back every key
its install section writes; makensis builds it (release target, pre-release
versions, a missing bundle refused); and, under wine, the built installer
run with a stub bundle: the registry after a silent install, the argv each
verb gives the app, an upgrade or uninstall while the app runs, and a clean
uninstall."""

from __future__ import annotations

import ntpath
import os
import re
import shutil
import subprocess
import time
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


# --- The installer, run -------------------------------------------------------
#
# Built by makensis and run under wine with a stub bundle: the registry after a
# silent install, the argv each verb's command gives the program, an upgrade
# and an uninstall while the app runs, and a clean uninstall. The installer is
# built for amd64 here (-XTarget): Debian's and Ubuntu's wine64 runs 64-bit
# programs only (32-bit ones need wine32 from the i386 architecture). The
# script is the same; test_makensis_builds_installer builds the default x86
# target the release ships.

WINE = shutil.which("wine") or shutil.which("wine64")
needs_wine = pytest.mark.skipif(
    WINE is None or shutil.which("makensis") is None,
    reason="needs makensis and wine: apt-get install nsis wine wine64 (.ci/run does)",
)
UNINST = "Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\imgdedupe"

# Stands in for imgdedupe-gui.exe and imgdedupe.exe. It appends its argv, as
# Windows splits its command line (CommandLineToArgvW, the rules the frozen
# app's C runtime follows), to the file STUB_ARGV names: one launch a line,
# arguments ended by tabs (no Windows path holds a tab). With STUB_HOLD set it
# then runs on until that file is gone: an app the user left open.
STUB_NSI = r"""
Unicode true
RequestExecutionLevel user
SilentInstall silent
Name "argv stub"
OutFile "${OUT}"
Function .onInit
  ReadEnvStr $0 STUB_ARGV
  StrCmp $0 "" hold
  System::Call 'kernel32::GetCommandLineW() p .r2'
  System::Call 'shell32::CommandLineToArgvW(p r2, *i .r3) p .r4'
  FileOpen $1 $0 a
  FileSeek $1 0 END
  StrCpy $5 0
  next:
    IntCmp $5 $3 written 0 written
    IntOp $6 $5 * ${NSIS_PTR_SIZE}
    IntPtrOp $6 $4 + $6
    System::Call '*$6(p .r7)'
    System::Call '*$7(&w${NSIS_MAX_STRLEN} .r8)'
    FileWriteUTF16LE $1 "$8$\t"
    IntOp $5 $5 + 1
    Goto next
  written:
  FileWriteUTF16LE $1 "$\n"
  FileClose $1
  System::Call 'kernel32::LocalFree(p r4)'
  hold:
  ReadEnvStr $0 STUB_HOLD
  StrCmp $0 "" done
  wait:
    IfFileExists $0 0 done
    Sleep 100
    Goto wait
  done:
  SetErrorLevel 0
  Quit
FunctionEnd
Section
SectionEnd
"""

# Does what Explorer does once it has put the item's path in for %1 or %V:
# CreateProcess with the command line as it stands (ExecWait), for each line
# of the UTF-16LE file RUN_LINES, one after the other.
RUNNER_NSI = r"""
Unicode true
RequestExecutionLevel user
SilentInstall silent
Name "verb runner"
OutFile "${OUT}"
Function .onInit
  ReadEnvStr $0 RUN_LINES
  FileOpen $1 $0 r
  read:
    ClearErrors
    FileReadUTF16LE $1 $2
    IfErrors done
  trim:
    StrCpy $3 $2 1 -1
    StrCmp $3 "$\n" cut
    StrCmp $3 "$\r" cut
    Goto run
  cut:
    StrCpy $2 $2 -1
    Goto trim
  run:
    StrCmp $2 "" read
    ExecWait $2
    Goto read
  done:
  FileClose $1
  SetErrorLevel 0
  Quit
FunctionEnd
Section
SectionEnd
"""


def _win(path: Path) -> str:
    """A Linux path as wine's programs see it (drive Z: is /)."""
    return "Z:" + str(path).replace("/", "\\")


def _makensis(script: Path, *defines: str) -> None:
    cmd = ["makensis", "-NOCD", "-V2", "-XTarget amd64-unicode", *defines, str(script)]
    done = subprocess.run(cmd, cwd=script.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


class Wine:
    """A private wine prefix with the stub bundle's installer built for it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = root / "prefix"
        home = root / "home"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        # No menu entries or file associations in the real desktop (wine's
        # winemenubuilder writes them to $HOME), no Mono/Gecko prompts.
        self.env.update(WINEPREFIX=str(self.prefix), WINEARCH="win64", WINEDEBUG="-all",
                        WINEDLLOVERRIDES="winemenubuilder.exe=d;mscoree,mshtml=",
                        HOME=str(home), XDG_DATA_HOME=str(home / "share"),
                        XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"))
        home.mkdir()
        self.record = root / "argv.txt"
        bundle = root / "bundle"
        (bundle / "_internal").mkdir(parents=True)
        for name, text in (("stub.nsi", STUB_NSI), ("runner.nsi", RUNNER_NSI)):
            (root / name).write_text(text, encoding="utf-8")
        _makensis(root / "stub.nsi", f"-DOUT={bundle / 'imgdedupe-gui.exe'}")
        shutil.copy(bundle / "imgdedupe-gui.exe", bundle / "imgdedupe.exe")
        (bundle / "_internal" / "python311.dll").write_bytes(b"not a dll")
        _makensis(root / "runner.nsi", f"-DOUT={root / 'runner.exe'}")
        self.version = imgdedupe.__version__
        self.setup = root / f"imgdedupe-{self.version}-setup.exe"
        _makensis(NSI, f"-DVERSION={self.version}", f"-DBUNDLE={bundle}", f"-DOUTFILE={self.setup}")
        # The prefix's first start (a minute at worst on a busy machine).
        self.run("wineboot", "-i", timeout=300)

    def run(self, *args: str, timeout: float = 120, **env: str) -> int:
        done = subprocess.run([WINE, *args], env={**self.env, **env}, timeout=timeout,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return done.returncode

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen([WINE, *args], env={**self.env, **env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_idle(self) -> None:
        """Until every program in the prefix has ended (an uninstaller
        copies itself to %TEMP% and goes on there after `wine` returns)."""
        server = shutil.which("wineserver") or "/usr/lib/wine/wineserver64"
        subprocess.run([server, "-w"], env=self.env, timeout=120, check=False)

    def registry(self) -> dict[str, dict[str, object]]:
        """HKCU\\Software as `reg export` writes it: key -> {value name
        ('' for the default): str, or int for a DWORD}."""
        out = self.root / "export.reg"
        out.unlink(missing_ok=True)
        assert self.run("reg", "export", "HKCU\\Software", _win(out), "/y") == 0
        text = re.sub(r"\\\r?\n\s*", "", out.read_bytes().decode("utf-16"))  # continued lines
        keys: dict[str, dict[str, object]] = {}
        values: dict[str, object] | None = None
        for line in text.splitlines():
            if line.startswith("[") and line.endswith("]"):
                values = keys.setdefault(line[1:-1].removeprefix("HKEY_CURRENT_USER\\"), {})
                continue
            m = re.match(r'^(@|"((?:[^"\\]|\\.)*)")=(.*)$', line)
            if m is None or values is None:
                continue
            name = "" if m[1] == "@" else re.sub(r"\\(.)", r"\1", m[2])
            data = m[3]
            if data.startswith('"'):
                values[name] = re.sub(r"\\(.)", r"\1", data[1:-1])
            elif data.startswith("dword:"):
                values[name] = int(data[6:], 16)
            else:
                values[name] = data
        return keys

    def unix(self, windows_path: str) -> Path:
        drive, rest = windows_path.split(":\\", 1)
        assert drive.upper() == "C", windows_path
        return self.prefix / "drive_c" / Path(*rest.split("\\"))

    def install(self) -> dict[str, dict[str, object]]:
        assert self.run(str(self.setup), "/S") == 0
        return self.registry()

    def stop(self) -> None:
        server = shutil.which("wineserver") or "/usr/lib/wine/wineserver64"
        subprocess.run([server, "-k"], env=self.env, timeout=60, check=False)


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    w = Wine(tmp_path_factory.mktemp("wine"))
    yield w
    w.stop()


def _ours(keys: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """The keys whose path names imgdedupe (what the installer adds), with values."""
    return {k: v for k, v in keys.items() if "imgdedupe" in k.lower() and v}


@pytest.mark.slow
@needs_wine
def test_silent_install_writes_exactly_these_keys(wine: Wine) -> None:
    keys = wine.install()
    where = keys[UNINST]["InstallLocation"]
    assert isinstance(where, str) and where.endswith("\\AppData\\Local\\Programs\\imgdedupe")
    exe = where + "\\imgdedupe-gui.exe"
    icon = exe + ",0"
    folder = wine.unix(where)
    assert sorted(p.name for p in folder.iterdir()) == [
        "_internal", "imgdedupe-gui.exe", "imgdedupe.exe", "uninstall.exe"]
    assert list(wine.prefix.glob(
        "drive_c/users/*/AppData/Roaming/Microsoft/Windows/Start Menu/Programs/imgdedupe.lnk"))
    size = keys[UNINST]["EstimatedSize"]
    assert isinstance(size, int)
    similar = f"{CLASSES}\\SystemFileAssociations\\image\\shell\\imgdedupe.similar"
    app = f"{CLASSES}\\Applications\\imgdedupe-gui.exe"
    scan = "Find duplicates in this folder"
    expected = {
        UNINST: {"DisplayName": "imgdedupe", "DisplayVersion": wine.version,
                 "Publisher": "imgdedupe contributors", "DisplayIcon": icon,
                 "InstallLocation": where,
                 "UninstallString": f'"{where}\\uninstall.exe"',
                 "QuietUninstallString": f'"{where}\\uninstall.exe" /S',
                 "NoModify": 1, "NoRepair": 1, "EstimatedSize": size},
        # Several selected images: the verb stays offered up to 100 (Player),
        # each launch hands its image to the one window.
        similar: {"": "Find similar images", "Icon": icon, "MultiSelectModel": "Player"},
        similar + "\\command": {"": f'"{exe}" --similar "%1"'},
        f"{CLASSES}\\Directory\\shell\\imgdedupe.scan": {"": scan, "Icon": icon},
        f"{CLASSES}\\Directory\\shell\\imgdedupe.scan\\command":
            {"": f'"{exe}" --scan "%1\\."'},
        f"{CLASSES}\\Drive\\shell\\imgdedupe.scan": {"": scan, "Icon": icon},
        f"{CLASSES}\\Drive\\shell\\imgdedupe.scan\\command": {"": f'"{exe}" --scan "%1\\."'},
        f"{CLASSES}\\Directory\\Background\\shell\\imgdedupe.scan": {"": scan, "Icon": icon},
        f"{CLASSES}\\Directory\\Background\\shell\\imgdedupe.scan\\command":
            {"": f'"{exe}" --scan "%V\\."'},
        app: {"FriendlyAppName": "imgdedupe"},
        app + "\\DefaultIcon": {"": icon},
        app + "\\shell\\open": {"MultiSelectModel": "Player"},
        app + "\\shell\\open\\command": {"": f'"{exe}" --similar "%1"'},
        app + "\\SupportedTypes": {ext: "" for ext in IMAGE_EXTENSIONS},
        f"{CLASSES}\\SystemFileAssociations\\image\\OpenWithList\\imgdedupe-gui.exe": {"": ""},
    }
    assert _ours(keys) == expected


@pytest.mark.slow
@needs_wine
def test_each_verb_gives_the_app_the_clicked_path(wine: Wine) -> None:
    """Each verb's command, as the registry holds it, with %1 or %V put in as
    Explorer does, started as Explorer starts it: the program's argv."""
    keys = wine.install()
    exe = f'{keys[UNINST]["InstallLocation"]}\\imgdedupe-gui.exe'

    def command(key: str) -> str:
        value = keys[f"{CLASSES}\\{key}\\command"][""]
        assert isinstance(value, str)
        return value

    similar = command("SystemFileAssociations\\image\\shell\\imgdedupe.similar")
    open_with = command("Applications\\imgdedupe-gui.exe\\shell\\open")
    folder = command("Directory\\shell\\imgdedupe.scan")
    drive = command("Drive\\shell\\imgdedupe.scan")
    background = command("Directory\\Background\\shell\\imgdedupe.scan")
    cases = [
        (similar, "%1", "C:\\Users\\Ana\\Pictures\\Summer 2024\\beach day.jpg",
         ["--similar", "C:\\Users\\Ana\\Pictures\\Summer 2024\\beach day.jpg"]),
        (similar, "%1", "C:\\Fotos\\Müller – 夏の海 (2).jpg",
         ["--similar", "C:\\Fotos\\Müller – 夏の海 (2).jpg"]),
        (open_with, "%1", "\\\\nas\\photos\\Été 2023\\IMG 0001.JPG",
         ["--similar", "\\\\nas\\photos\\Été 2023\\IMG 0001.JPG"]),
        (folder, "%1", "D:\\My Photos\\Été 2024", ["--scan", "D:\\My Photos\\Été 2024\\."]),
        # Explorer's %1 for a drive (an SD card) ends in a backslash: E:\\. is
        # still the drive's root (Windows reads a doubled separator as one).
        (drive, "%1", "E:\\", ["--scan", "E:\\\\."]),
        (background, "%V", "C:\\", ["--scan", "C:\\\\."]),
        (background, "%V", "C:\\Users\\Ана\\Bilder 2024",
         ["--scan", "C:\\Users\\Ана\\Bilder 2024\\."]),
        # The old form of the folder verbs, as a control: a quoted drive root
        # ends in \" and the program gets E:" (this is what the check catches).
        (f'"{exe}" --scan "%1"', "%1", "E:\\", ["--scan", 'E:"']),
    ]
    lines = wine.root / "lines.txt"
    lines.write_bytes("".join(f"{cmd.replace(ph, path)}\r\n"
                              for cmd, ph, path, _ in cases).encode("utf-16-le"))
    wine.record.unlink(missing_ok=True)
    assert wine.run(_win(wine.root / "runner.exe"), RUN_LINES=_win(lines),
                    STUB_ARGV=_win(wine.record)) == 0
    launches = [line.split("\t")[:-1] for line in
                wine.record.read_bytes().decode("utf-16-le").splitlines()]
    assert [argv[0] for argv in launches] == [exe] * len(cases)
    assert [argv[1:] for argv in launches] == [want for *_, want in cases]
    # Each folder verb names the clicked folder, as the app reads it (abspath).
    for (_, _, path, want), argv in zip(cases[3:-1], launches[3:-1], strict=True):
        assert ntpath.normpath(argv[-1]) == ntpath.normpath(path), want


@pytest.mark.slow
@needs_wine
def test_upgrade_and_uninstall_wait_for_the_running_app(wine: Wine) -> None:
    """While imgdedupe-gui.exe or imgdedupe.exe runs from the install folder,
    a silent upgrade or uninstall stops (exit 2: the Retry/Cancel question
    answered Cancel) before it deletes a file or a key; once the app is
    closed, the upgrade replaces the folder."""
    keys = wine.install()
    where = str(keys[UNINST]["InstallLocation"])
    folder = wine.unix(where)
    marker = folder / "left by the old version.txt"
    for program in ("imgdedupe-gui.exe", "imgdedupe.exe"):
        marker.write_text("x")
        hold = wine.root / "hold"
        hold.write_text("")
        wine.record.unlink(missing_ok=True)
        app = wine.start(f"{where}\\{program}", STUB_ARGV=_win(wine.record), STUB_HOLD=_win(hold))
        try:
            deadline = time.monotonic() + 60
            while not wine.record.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert wine.record.exists(), f"{program} did not start"
            assert wine.run(str(wine.setup), "/S") == 2
            # In place (_?=): the exit code is the uninstaller's own.
            assert wine.run(f"{where}\\uninstall.exe", "/S", f"_?={where}") == 2
            assert marker.exists() and (folder / "imgdedupe-gui.exe").exists()
            assert _ours(wine.registry()) == _ours(keys)
        finally:
            hold.unlink()
            app.wait(60)
    assert wine.run(str(wine.setup), "/S") == 0
    assert not marker.exists()  # the upgrade replaced the bundle whole


@pytest.mark.slow
@needs_wine
def test_uninstall_leaves_nothing(wine: Wine) -> None:
    keys = wine.install()
    where = str(keys[UNINST]["InstallLocation"])
    assert _ours(keys)
    assert wine.run(f"{where}\\uninstall.exe", "/S") == 0
    wine.wait_idle()
    assert not wine.unix(where).exists()
    assert not list(wine.prefix.glob("drive_c/users/*/AppData/Roaming/Microsoft/Windows/"
                                     "Start Menu/Programs/imgdedupe.lnk"))
    left = [k for k in wine.registry() if "imgdedupe" in k.lower()]
    assert left == []

"""Qt's X11 plugin finds every system library it needs, then the real window
starts on an X server with it.

A container per test is out of reach in CI, so the "fresh Debian" is
worked out instead: ``ldd`` lists every library the xcb platform plugin
(libqxcb.so) loads, directly or through the Qt libraries; ``dpkg -S`` names
the package that owns each one outside PySide6 (a library ldd cannot find
is named by Debian's soname rule); and the packages' own Depends, read from
dpkg's database, give what a set of packages pulls in. A fresh Debian holds
its required packages; the .deb adds packaging/linux/system-depends, and a
pip user on a desktop adds the README's apt line. Every owner must be among
them.

What this does not see: a library Qt dlopen()s by name at run time (libGL's
vendor drivers, the xcb GL integrations) rather than links, and packages
that are not installed here (their own dependencies cannot be read).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11: Linux")

# What every X11 desktop session has, with or without imgdedupe: Mesa's GL,
# fontconfig, GLib and the session bus (GTK and the desktop depend on them).
# The README's apt line is for a desktop, so it need not name these.
DESKTOP = {"libgl1", "libfontconfig1", "libglib2.0-0", "libdbus-1-3"}

LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(.*?)\s*(?:\(0x[0-9a-f]+\))?$")


def _plugin() -> Path:
    import PySide6

    return Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"


def _ldd(path: Path) -> tuple[list[Path], list[str]]:
    """The libraries ``path`` loads: (found paths, sonames not found)."""
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True,
                         check=True).stdout
    found, missing = [], []
    for line in out.splitlines():
        match = LDD_LINE.match(line)
        if match and match.group(2) == "not found":
            missing.append(match.group(1))
        elif match:
            found.append(Path(match.group(2)))
        elif line.strip().startswith("/"):  # the dynamic loader itself
            found.append(Path(line.split()[0]))
    return found, missing


def _debian_name(soname: str) -> str:
    """Debian's package for a shared library (Policy 8.1): libxcb-icccm.so.4
    -> libxcb-icccm4, libxkbcommon-x11.so.0 -> libxkbcommon-x11-0."""
    name, _, version = soname.partition(".so.")
    name = name.lower()
    major = version.split(".")[0]
    return f"{name}-{major}" if name[-1].isdigit() else f"{name}{major}"


def _owners(paths: list[Path]) -> dict[Path, str]:
    """The Debian package owning each path, trying the merged-/usr aliases
    (ldd says /lib/..., dpkg may know /usr/lib/..., or the link's target)."""
    def aliases(path: Path) -> list[str]:
        names = {str(path), str(path.resolve())}
        for name in list(names):
            if name.startswith("/usr/"):
                names.add(name[4:])
            else:
                names.add("/usr" + name)
        return sorted(names)

    candidates = {alias: path for path in paths for alias in aliases(path)}
    out = subprocess.run(["dpkg", "-S", *candidates], capture_output=True, text=True).stdout
    owners: dict[Path, str] = {}
    for line in out.splitlines():
        package, _, where = line.partition(": ")
        if where in candidates:
            owners[candidates[where]] = package.split(":")[0].split(",")[0]
    return owners


def _installed() -> dict[str, dict[str, str]]:
    fields = ["Package", "Essential", "Priority", "Provides", "Pre-Depends", "Depends",
              "db:Status-Status"]
    out = subprocess.run(["dpkg-query", "-W", "-f", "\t".join(f"${{{f}}}" for f in fields)
                          + "\n"], capture_output=True, text=True, check=True).stdout
    packages = {}
    for line in out.splitlines():
        row = dict(zip(fields, line.split("\t"), strict=True))
        if row["db:Status-Status"] == "installed":
            packages[row["Package"]] = row
    return packages


def _names(relations: str) -> list[list[str]]:
    """"a (>= 1) | b, c:any" -> [["a", "b"], ["c"]]."""
    return [[alt.split()[0].split(":")[0] for alt in clause.split("|")]
            for clause in relations.split(",") if clause.strip()]


def _closure(roots: set[str], installed: dict[str, dict[str, str]]) -> set[str]:
    """``roots`` and all they depend on, as far as dpkg's database tells."""
    provided: dict[str, str] = {}
    for name, row in installed.items():
        for (virtual, *_rest) in _names(row["Provides"]):
            provided.setdefault(virtual, name)
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        row = installed.get(name)
        if row is None:
            continue  # not installed here: what it pulls in is unknown
        for alternatives in _names(row["Pre-Depends"]) + _names(row["Depends"]):
            chosen = next((a for a in alternatives if a in installed), None) or \
                next((provided[a] for a in alternatives if a in provided), None)
            if chosen:
                todo.append(chosen)
    return seen


def _fresh_debian(installed: dict[str, dict[str, str]]) -> set[str]:
    """A minimal Debian: its Essential and required packages (what a
    debian:bookworm container holds)."""
    return _closure({name for name, row in installed.items()
                     if row["Essential"] == "yes" or row["Priority"] == "required"},
                    installed)


def _needed() -> set[str]:
    """The Debian packages whose libraries the xcb plugin loads."""
    assert shutil.which("ldd") and shutil.which("dpkg-query"), "Debian/Ubuntu: ldd and dpkg"
    found, missing = _ldd(_plugin())
    system = [p for p in found if "PySide6" not in p.parts]
    owners = _owners(system)
    unowned = [p for p in system if p not in owners]
    assert not unowned, f"no Debian package owns {unowned}"
    return set(owners.values()) | {_debian_name(s) for s in missing}


def _missing(extra: set[str]) -> set[str]:
    installed = _installed()
    have = _fresh_debian(installed) | _closure(extra, installed)
    return _needed() - have


def _system_depends() -> set[str]:
    text = (REPO / "packaging" / "linux" / "system-depends").read_text()
    return {line.split("#")[0].strip() for line in text.splitlines()} - {""}


def _readme_apt_line() -> set[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (line,) = [ln for ln in readme.splitlines()
               if ln.startswith("sudo apt-get install ") and "libxcb" in ln]
    return set(line.split()[3:])


def test_a_fresh_debian_with_the_deb_s_depends_has_every_library() -> None:
    missing = _missing(_system_depends() | {"libc6"})
    assert not missing, f"add to packaging/linux/system-depends: {sorted(missing)}"


def test_a_desktop_with_the_readme_s_apt_line_has_every_library() -> None:
    missing = _missing(_readme_apt_line() | DESKTOP)
    assert not missing, f"add to the README's apt line: {sorted(missing)}"


def test_a_missing_library_is_caught() -> None:
    """The check has teeth: without libxcb-cursor0 (the library a bare
    desktop lacked), it names it."""
    assert "libxcb-cursor0" in _needed()
    assert "libxcb-cursor0" in _missing(_system_depends() - {"libxcb-cursor0"})
    assert _debian_name("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert _debian_name("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert _debian_name("libEGL.so.1") == "libegl1"


def test_the_window_starts_with_the_xcb_plugin(tmp_path: Path) -> None:
    """The real window on Xvfb through Qt's X11 plugin (QT_QPA_PLATFORM=xcb:
    no fallback), scanning an empty folder and quitting when done."""
    # .ci/run installs xvfb: a missing X server is a failure, never a skip.
    assert shutil.which("xvfb-run"), "xvfb-run is needed: apt-get install xvfb"
    empty = tmp_path / "photos"
    empty.mkdir()
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb",
           "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "TMPDIR": str(tmp_path)}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    done = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", sys.executable, "-c",
         "import sys; from imgdedupe.gui.app import main; sys.exit(main())",
         "--scan", str(empty), "--db", str(tmp_path / "cache.sqlite3"),
         "--settings", str(tmp_path / "settings.ini"), "--exit-when-done"],
        env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "could not load the Qt platform plugin" not in done.stderr.lower()

"""The .deb's libc6 minimum, derived by packaging/linux/glibc-needed.sh, on
real ELF files: those of the Python environment running the tests.

The expected answer comes from another tool (objdump -T, the versions of
the undefined dynamic symbols) than the script's (readelf's version needs),
so a parsing slip in either shows up as a disagreement.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "packaging" / "linux" / "glibc-needed.sh"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF and glibc: Linux")

UNDEFINED_GLIBC = re.compile(r"\*UND\*.*\bGLIBC_([0-9][0-9.]*)")


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _objdump_newest(files: list[Path]) -> str:
    """The newest GLIBC_ version any of ``files`` imports, by objdump."""
    assert shutil.which("objdump"), "objdump is needed (binutils)"
    found: set[str] = set()
    for path in files:
        table = subprocess.run(["objdump", "-T", str(path)], capture_output=True,
                               text=True, check=True).stdout
        found.update(UNDEFINED_GLIBC.findall(table))
    return max(found, key=_key)


def _needed(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SCRIPT), *map(str, paths)], capture_output=True,
                          text=True, timeout=120)


def _loaded_libc() -> Path:
    """The libc.so.6 this process runs on."""
    maps = Path("/proc/self/maps").read_text()
    (path,) = {line.split()[-1] for line in maps.splitlines() if line.endswith("/libc.so.6")}
    return Path(path)


def test_the_python_environment_s_extension_modules() -> None:
    dynload = Path(sysconfig.get_paths()["platstdlib"]) / "lib-dynload"
    numpy_dir = Path(numpy.__file__).parent
    elf = [p for p in [*dynload.glob("*.so"), *numpy_dir.rglob("*.so")] if p.is_file()]
    assert len(elf) > 20
    done = _needed(dynload, numpy_dir)  # folders, as build-deb.sh passes the bundle
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == _objdump_newest(elf)


def test_one_file_and_what_is_not_elf(tmp_path: Path) -> None:
    """Text files, links and names with spaces are walked past or read."""
    module = Path(sysconfig.get_paths()["platstdlib"]) / "lib-dynload"
    source = next(iter(sorted(module.glob("_posixsubprocess*.so"))))
    folder = tmp_path / "a bundle"
    folder.mkdir()
    shutil.copy(source, folder / "a module.so")
    (folder / "README.md").write_text("not ELF\n")
    (folder / "data.bin").write_bytes(b"\x7fELF but truncated")
    (folder / "link.so").symlink_to(folder / "a module.so")
    done = _needed(folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == _objdump_newest([source])


def test_only_needs_count_not_versions_a_library_defines() -> None:
    """libc.so.6 defines every GLIBC_ version up to its own, and needs only
    the loader's: the script reports the need, like objdump's imports."""
    libc = _loaded_libc()
    done = _needed(libc)
    assert done.returncode == 0, done.stderr
    needed = done.stdout.strip()
    assert needed == _objdump_newest([libc])
    own = subprocess.run(["objdump", "-T", str(libc)], capture_output=True, text=True,
                         check=True).stdout
    defined = max(re.findall(r"\bGLIBC_([0-9][0-9.]*)\b", own), key=_key)
    assert _key(needed) < _key(defined)


def test_no_elf_at_all_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "imgdedupe-gui").write_text("#!/bin/sh\n")
    done = _needed(tmp_path)
    assert done.returncode == 1 and "needs glibc" in done.stderr
    assert _needed(tmp_path / "missing").returncode == 2

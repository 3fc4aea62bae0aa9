"""Fixtures of the reliability tests: throw-away filesystems."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _mount(args: list[str]) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    done = subprocess.run(["mount", *args], capture_output=True, timeout=30)
    return done.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Callable[[str], Path | None]]:
    """``make(size)`` mounts a tmpfs of ``size`` (e.g. "2m") in tmp_path and
    returns it, or None where mounting is not permitted (not root, or a
    container without CAP_SYS_ADMIN): callers then inject the error."""
    mounted: list[Path] = []

    def make(size: str) -> Path | None:
        target = tmp_path / f"fs-{uuid.uuid4().hex[:8]}"
        target.mkdir()
        if not _mount(["-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(target)]):
            return None
        mounted.append(target)
        return target

    yield make
    for target in reversed(mounted):
        _umount(target)


@pytest.fixture
def read_only_view(tmp_path: Path) -> Iterator[Callable[[Path], Path | None]]:
    """``make(folder)`` returns a read-only bind mount of ``folder`` (root
    ignores chmod, not a read-only mount), or None where not permitted."""
    mounted: list[Path] = []

    def make(folder: Path) -> Path | None:
        target = tmp_path / f"ro-{uuid.uuid4().hex[:8]}"
        target.mkdir()
        if not _mount(["--bind", str(folder), str(target)]):
            return None
        mounted.append(target)
        if not _mount(["-o", "remount,ro,bind", str(target)]):
            return None
        return target

    yield make
    for target in reversed(mounted):
        _umount(target)

"""The .deb's desktop entries: valid, and "Open with imgdedupe" for images
without imgdedupe ever becoming the program that opens folders or photos.

What GLib (Nautilus, GNOME, gio, xdg-open on GTK desktops) does is checked
with ``gio mime`` in a clean XDG profile: a private HOME, config and data
folders, and one system data folder holding the installed entries (plus,
where a test says so, another program's), indexed by update-desktop-database
as the desktop-file-utils trigger does after an install.

GLib takes the first program that lists a type as its default when no
mimeapps.list names one, hidden (NoDisplay) or not, in mimeinfo.cache's
order: sorted by file name. So the hidden entry's name, zz-..., is what
keeps imgdedupe behind every image viewer; alone, with no viewer installed,
it does become the default for photos (nothing else could open them).
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARE = REPO / "packaging" / "linux" / "share"
MENU = "imgdedupe.desktop"
OPEN_WITH = "zz-imgdedupe-open-with.desktop"
IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp",
               "image/tiff", "image/heic", "image/heif", "image/avif",
               # Camera RAW files (files.walk.RAW_EXTENSIONS), as shared-mime-info names them.
               "image/x-canon-cr2", "image/x-canon-cr3", "image/x-nikon-nef", "image/x-sony-arw",
               "image/x-adobe-dng", "image/x-fuji-raf", "image/x-olympus-orf",
               "image/x-panasonic-rw2"]

# Image viewers and file managers as Debian, Ubuntu and Mint name their
# entries (GNOME, KDE, Xfce, LXDE/LXQt, MATE, Cinnamon, and others that list
# image/jpeg).
VIEWERS = ["org.gnome.Loupe.desktop", "org.gnome.eog.desktop", "eog.desktop",
           "org.kde.gwenview.desktop", "org.xfce.ristretto.desktop", "gpicview.desktop",
           "lximage-qt.desktop", "eom.desktop", "xviewer.desktop", "pix.desktop",
           "feh.desktop", "gimp.desktop", "display-im6.q16.desktop",
           "org.nomacs.ImageLounge.desktop", "org.gnome.gThumb.desktop"]
FILE_MANAGERS = ["org.gnome.Nautilus.desktop", "org.kde.dolphin.desktop", "nemo.desktop",
                 "thunar.desktop", "pcmanfm.desktop", "pcmanfm-qt.desktop", "caja.desktop"]


def _tools() -> None:
    # .ci/run installs them: a missing tool is a failure, never a skip.
    for tool, package in (("gio", "libglib2.0-bin"),
                          ("update-desktop-database", "desktop-file-utils"),
                          ("desktop-file-validate", "desktop-file-utils")):
        assert shutil.which(tool), f"{tool} is needed: apt-get install {package}"


def _entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def _validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["desktop-file-validate", *map(str, paths)], capture_output=True,
                          text=True)


def test_entries_are_valid_and_only_the_hidden_one_lists_types() -> None:
    _tools()
    done = _validate(SHARE / MENU, SHARE / OPEN_WITH)
    assert done.returncode == 0, done.stdout + done.stderr
    menu, hidden = _entry(SHARE / MENU), _entry(SHARE / OPEN_WITH)
    assert menu["Exec"] == hidden["Exec"] == "imgdedupe-gui %F"
    assert "MimeType" not in menu and menu.get("NoDisplay", "false") == "false"
    assert hidden["NoDisplay"] == "true"
    assert hidden["MimeType"].rstrip(";").split(";") == IMAGE_TYPES


def test_a_broken_entry_fails_validation(tmp_path: Path) -> None:
    """The check above has teeth: an error the validator reports fails it."""
    _tools()
    broken = tmp_path / OPEN_WITH
    text = (SHARE / OPEN_WITH).read_text(encoding="utf-8")
    broken.write_text(text.replace("Type=Application", "Type=Program"), encoding="utf-8")
    done = _validate(SHARE / MENU, broken)
    assert done.returncode != 0 and "error" in done.stdout, done.stdout


def _profile(tmp_path: Path, others: dict[str, str]) -> dict[str, str]:
    """A clean XDG profile holding the installed entries and ``others``
    (file name -> MimeType value); returns its environment."""
    apps = tmp_path / "share" / "applications"
    apps.mkdir(parents=True)
    for name in (MENU, OPEN_WITH):
        shutil.copy(SHARE / name, apps / name)
    for name, types in others.items():
        (apps / name).write_text(f"[Desktop Entry]\nType=Application\nName={name}\n"
                                 f"Exec=stand-in %F\nMimeType={types}\n")
    # GLib lists an entry only when its program is on PATH.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("imgdedupe-gui", "stand-in"):
        (bin_dir / program).write_text("#!/bin/sh\n")
        (bin_dir / program).chmod(0o755)
    subprocess.run(["update-desktop-database", str(apps)], check=True, capture_output=True)
    for folder in ("home", "data", "config", "xdg"):
        (tmp_path / folder).mkdir()
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "LC_ALL": "C.UTF-8",
            "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_CONFIG_DIRS": str(tmp_path / "xdg"),
            "XDG_DATA_DIRS": str(tmp_path / "share")}


def _mime(env: dict[str, str], content_type: str) -> dict[str, object]:
    """``gio mime TYPE``: the default and the registered and recommended."""
    out = subprocess.run(["gio", "mime", content_type], env=env, capture_output=True,
                         text=True, check=True).stdout
    default = re.search(r"^Default application for .*: (\S+)$", out, re.MULTILINE)
    lists: dict[str, list[str]] = {"Registered": [], "Recommended": []}
    current = None
    for line in out.splitlines():
        heading = re.match(r"(Registered|Recommended) applications:", line)
        if heading:
            current = heading.group(1)
        elif line.startswith("\t") and current:
            lists[current].append(line.strip())
        else:
            current = None
    return {"default": default.group(1) if default else None, **lists}


def test_alone_imgdedupe_is_offered_for_photos_and_never_opens_folders(
        tmp_path: Path) -> None:
    _tools()
    env = _profile(tmp_path, {})
    folders = _mime(env, "inode/directory")
    assert folders == {"default": None, "Registered": [], "Recommended": []}
    for content_type in ("image/jpeg", "image/png", "image/heic"):
        photos = _mime(env, content_type)
        assert photos["Recommended"] == [OPEN_WITH], (content_type, photos)
        assert MENU not in photos["Registered"]


@pytest.mark.parametrize("viewer", VIEWERS)
def test_never_the_default_photo_viewer(tmp_path: Path, viewer: str) -> None:
    _tools()
    env = _profile(tmp_path, {viewer: "image/jpeg;image/png;"})
    photos = _mime(env, "image/jpeg")
    assert photos["default"] == viewer, photos
    assert OPEN_WITH in photos["Recommended"] and OPEN_WITH in photos["Registered"]


@pytest.mark.parametrize("manager", FILE_MANAGERS)
def test_never_the_default_folder_opener(tmp_path: Path, manager: str) -> None:
    _tools()
    env = _profile(tmp_path, {manager: "inode/directory;"})
    folders = _mime(env, "inode/directory")
    assert folders["default"] == manager
    assert folders["Registered"] == [manager]

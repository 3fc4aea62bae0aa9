"""Info.plist of imgdedupe.app, as a dict for PyInstaller's
``BUNDLE(info_plist=info_plist(VERSION))`` (packaging/imgdedupe.spec).

    python packaging/macos/info_plist.py [OUT.plist]   # writes it, to check by eye

Kept as code, not a checked-in Info.plist, so the version always comes from
imgdedupe/__init__.py. PyInstaller merges this dict over its own defaults.
"""

from __future__ import annotations

import ast
import plistlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BUNDLE_ID = "org.imgdedupe.imgdedupe"
# The pinned torch's macOS wheel (torch==2.14.1, pyproject.toml) is built
# for this platform tag; it asks for more than Qt 6.10/6.11 (macOS 13) or
# Pillow, so it sets the app's minimum. Change both together.
TORCH_MACOS_WHEEL_TAG = "macosx_14_0_arm64"
MIN_MACOS = ".".join(TORCH_MACOS_WHEEL_TAG.split("_")[1:3])  # "14.0"


def package_version() -> str:
    """imgdedupe.__version__, read without importing the package (the spec
    runs in PyInstaller's interpreter, which need not have it installed)."""
    tree = ast.parse((ROOT / "imgdedupe" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise LookupError("no __version__ in imgdedupe/__init__.py")


def info_plist(version: str | None = None, services: bool = False) -> dict:
    """The Info.plist keys. The Finder service (NSServices) is left out
    unless ``services``: the app registers no services provider yet, and a
    menu entry that fails is worse than none (the Quick Action in
    docs/packaging.md is the working route)."""
    version = version or package_version()
    plist = {
        "CFBundleIdentifier": BUNDLE_ID,
        "CFBundleName": "imgdedupe",
        "CFBundleDisplayName": "imgdedupe",
        "CFBundleExecutable": "imgdedupe-gui",
        "CFBundlePackageType": "APPL",
        "CFBundleInfoDictionaryVersion": "6.0",
        "CFBundleShortVersionString": version,
        "CFBundleVersion": version,
        # BUNDLE(icon=.../imgdedupe.icns) copies the icon to Contents/Resources.
        "CFBundleIconFile": "imgdedupe.icns",
        "LSMinimumSystemVersion": MIN_MACOS,
        "LSApplicationCategoryType": "public.app-category.photography",
        "NSHighResolutionCapable": True,
        "NSHumanReadableCopyright": "imgdedupe contributors, Apache-2.0",
        # "Open With" for images and folders. Alternate: listed, but never
        # made the default app for a type behind the user's back.
        "CFBundleDocumentTypes": [
            {
                "CFBundleTypeName": "Image",
                "CFBundleTypeRole": "Viewer",
                "LSHandlerRank": "Alternate",
                "LSItemContentTypes": ["public.image"],
            },
            {
                "CFBundleTypeName": "Folder",
                "CFBundleTypeRole": "Viewer",
                "LSHandlerRank": "Alternate",
                "LSItemContentTypes": ["public.folder"],
            },
        ],
        # Finder ▸ Services ▸ "Find similar images". macOS delivers it as the
        # message findSimilarImages:userData:error: to the app's services
        # provider, which the app does not register yet (docs/packaging.md,
        # "Finder integration"): until it does, the Quick Action described
        # there is the working route.
        "NSServices": [
            {
                "NSMenuItem": {"default": "Find similar images"},
                "NSMessage": "findSimilarImages",
                "NSPortName": "imgdedupe",
                "NSSendFileTypes": ["public.image"],
                # Present (even empty) = enabled without a trip to System
                # Settings, shown only when the selection is images.
                "NSRequiredContext": {},
            }
        ],
    }
    if not services:
        del plist["NSServices"]
    return plist


def main(argv: list[str]) -> int:
    data = plistlib.dumps(info_plist(), fmt=plistlib.FMT_XML)
    if len(argv) > 1:
        Path(argv[1]).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

#!/bin/sh
# Build dist/imgdedupe_<version>_amd64.deb from the PyInstaller bundle.
#
#   packaging/linux/build-deb.sh            # after packaging/build-bundle.sh
#
# Environment: BUNDLE (default dist/imgdedupe), OUT_DIR (default dist),
# PACKAGE (default imgdedupe; the tests build a differently named package
# from a dummy bundle), COMPRESS (dpkg-deb compression options).
#
# What it installs: the app under /opt/imgdedupe, launchers in /usr/bin,
# the menu entry and a hidden "Open with" entry for images, hicolor icons,
# and the file-manager entries "Find similar images" / "Find duplicates in
# this folder" for Dolphin (KF5 and KF6 service menus), Nautilus
# (nautilus-python) and Nemo. Every file is owned by the package, so
# removing it leaves nothing behind. Depends: libc6 follows the bundle
# (glibc-needed.sh).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARE="$ROOT/packaging/linux/share"
BUNDLE=${BUNDLE:-$ROOT/dist/imgdedupe}
OUT_DIR=${OUT_DIR:-$ROOT/dist}
PACKAGE=${PACKAGE:-imgdedupe}
COMPRESS=${COMPRESS:--Zxz -z6}
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/imgdedupe/__init__.py")
ARCH=$(dpkg --print-architecture)

[ -x "$BUNDLE/imgdedupe-gui" ] || { echo "no bundle at $BUNDLE: run packaging/build-bundle.sh" >&2; exit 2; }

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
umask 022

mkdir -p "$STAGE/opt" "$STAGE/usr/bin"
cp -a "$BUNDLE" "$STAGE/opt/$PACKAGE"
ln -s "/opt/$PACKAGE/imgdedupe" "$STAGE/usr/bin/imgdedupe"
ln -s "/opt/$PACKAGE/imgdedupe-gui" "$STAGE/usr/bin/imgdedupe-gui"

# The menu entry lists no MIME type; the hidden zz-imgdedupe-open-with.desktop
# offers "Open with imgdedupe" for images without becoming their default
# program (why, and why not folders: in that file).
for entry in imgdedupe.desktop zz-imgdedupe-open-with.desktop; do
    install -D -m 644 "$SHARE/$entry" "$STAGE/usr/share/applications/$entry"
done
for png in "$ROOT"/resources/icons/hicolor/*/apps/imgdedupe.png; do
    size=$(basename "$(dirname "$(dirname "$png")")")
    install -D -m 644 "$png" "$STAGE/usr/share/icons/hicolor/$size/apps/imgdedupe.png"
done
install -D -m 644 "$ROOT/resources/icons/imgdedupe.svg" \
    "$STAGE/usr/share/icons/hicolor/scalable/apps/imgdedupe.svg"
# Dolphin: KF6 reads kio/servicemenus, KF5 kservices5/ServiceMenus.
for dir in kio/servicemenus kservices5/ServiceMenus; do
    install -D -m 644 "$SHARE/dolphin-similar.desktop" "$STAGE/usr/share/$dir/imgdedupe-similar.desktop"
    install -D -m 644 "$SHARE/dolphin-folder.desktop" "$STAGE/usr/share/$dir/imgdedupe-folder.desktop"
done
install -D -m 644 "$SHARE/nautilus_imgdedupe.py" \
    "$STAGE/usr/share/nautilus-python/extensions/nautilus_imgdedupe.py"
install -D -m 644 "$SHARE/nemo-similar.nemo_action" "$STAGE/usr/share/nemo/actions/imgdedupe-similar.nemo_action"
install -D -m 644 "$SHARE/nemo-folder.nemo_action" "$STAGE/usr/share/nemo/actions/imgdedupe-folder.nemo_action"
install -D -m 644 "$ROOT/resources/samples/LICENSES.md" "$STAGE/usr/share/doc/$PACKAGE/sample-photos-licences.md"
cat > "$STAGE/usr/share/doc/$PACKAGE/copyright" <<EOF
imgdedupe $VERSION is licensed under the Apache License 2.0.
It bundles Python, PyTorch (BSD-3-Clause), Qt for Python (LGPL-3.0),
scikit-learn (BSD-3-Clause), Annoy (Apache-2.0), Pillow (MIT-CMU), rawpy (MIT)
with LibRaw (LGPL-2.1 or CDDL-1.0) and the EfficientNet-Lite0 ImageNet
weights (Apache-2.0).
EOF

INSTALLED_KB=$(du -sk "$STAGE" | cut -f1)
# The oldest glibc the bundle runs on: the newest GLIBC_x.y its ELF files
# need. PyInstaller also bundles libraries of the build machine, so this
# follows the machine's glibc (2.36 for a bundle built on Debian 12).
GLIBC=$("$ROOT/packaging/linux/glibc-needed.sh" "$BUNDLE")
mkdir -p "$STAGE/DEBIAN"
# The system libraries Qt's X11 plugin needs: one package a line in
# packaging/linux/system-depends (why there).
SYSTEM_DEPENDS=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$ROOT/packaging/linux/system-depends" \
    | tr -d ' \t' | paste -s -d, - | sed 's/,/, /g')
cat > "$STAGE/DEBIAN/control" <<EOF
Package: $PACKAGE
Version: $VERSION
Architecture: $ARCH
Maintainer: imgdedupe developers <imgdedupe@users.noreply.github.com>
Installed-Size: $INSTALLED_KB
Depends: libc6 (>= $GLIBC), $SYSTEM_DEPENDS
Recommends: python3-nautilus, xdg-user-dirs
Section: graphics
Priority: optional
Homepage: https://github.com/imgdedupe/imgdedupe
Description: find duplicate and near-duplicate photos, and clean up safely
 imgdedupe groups byte-identical copies and near-duplicates (resized,
 re-encoded, cropped, recoloured, rotated) with a neural network that runs
 offline, and moves what you choose to the trash, with undo. Adds "Find
 similar images" and "Find duplicates in this folder" to Dolphin, Nautilus
 (with python3-nautilus) and Nemo.
EOF
# No maintainer scripts: Debian's desktop-file-utils and icon-theme
# packages refresh the menu and icon caches through dpkg file triggers on
# /usr/share/applications and /usr/share/icons, so the package never writes
# a file it does not own (a cache left after removal was the alternative).

mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/${PACKAGE}_${VERSION}_${ARCH}.deb"
# shellcheck disable=SC2086 # COMPRESS is a list of options
dpkg-deb --root-owner-group $COMPRESS --build "$STAGE" "$OUT" >/dev/null
echo "$OUT ($(du -h "$OUT" | cut -f1); installed $((INSTALLED_KB / 1024)) MB)"

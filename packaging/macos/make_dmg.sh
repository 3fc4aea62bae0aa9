#!/bin/sh
# Pack dist/imgdedupe.app into dist/imgdedupe-<version>-macos-<arch>.dmg.
#
#   packaging/macos/make_dmg.sh        # on macOS, after pyinstaller packaging/imgdedupe.spec
#
# Environment: APP (default dist/imgdedupe.app), OUT_DIR (default dist).
# Sign and notarize the .app before this, and the .dmg after it, when
# releasing for real: docs/packaging.md, "Signing and notarization".
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
APP=${APP:-$ROOT/dist/imgdedupe.app}
OUT_DIR=${OUT_DIR:-$ROOT/dist}
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/imgdedupe/__init__.py")
ARCH=$(uname -m)
DMG="$OUT_DIR/imgdedupe-$VERSION-macos-$ARCH.dmg"

[ -x "$APP/Contents/MacOS/imgdedupe-gui" ] || {
    echo "no app at $APP: run pyinstaller packaging/imgdedupe.spec" >&2; exit 2; }

# The window users see on opening the image: the app and a link to
# /Applications to drag it onto. ditto keeps the bundle's symlinks, extended
# attributes and code signature intact (cp -R may not).
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
ditto "$APP" "$STAGE/imgdedupe.app"
ln -s /Applications "$STAGE/Applications"

mkdir -p "$OUT_DIR"
# UDZO: zlib-compressed, read-only, opens on every supported macOS.
# hdiutil now and then fails with "Resource busy" on a busy machine (CI
# runners especially): try again before giving up.
for try in 1 2 3; do
    hdiutil create -volname "imgdedupe $VERSION" -srcfolder "$STAGE" -fs HFS+ \
        -format UDZO -ov "$DMG" && break
    [ "$try" = 3 ] && exit 1
    sleep 5
done
hdiutil verify "$DMG"
echo "$DMG"

#!/bin/sh
# Install the built .deb for real, use it as a user would, remove it, and
# prove nothing is left behind. Needs root (apt), desktop-file-utils and
# xvfb. Prints one line per check; exits non-zero on the first failure
# (the package then stays installed, to look at).
#
#   sudo packaging/linux/check-deb.sh dist/imgdedupe_0.1.0_amd64.deb
#
# The windows run on a private Xvfb server through Qt's X11 plugin, the one
# a desktop uses, with every user folder (cache, settings, logs, trash,
# lock) under a temporary folder.
set -eu
[ "$#" = 1 ] || { echo "usage: $0 PACKAGE.deb" >&2; exit 2; }
DEB=$(realpath "$1")
for tool in desktop-file-validate:desktop-file-utils Xvfb:xvfb; do
    command -v "${tool%%:*}" >/dev/null || { echo "${tool%%:*} is needed: apt-get install ${tool#*:}" >&2; exit 2; }
done
WORK=$(mktemp -d)
XVFB=
FIRST=
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    for pid in $FIRST $XVFB; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

apt-get install -y -q "$DEB" >/dev/null
echo "installed: $(dpkg-query -W -f='${Package} ${Version}' imgdedupe)"
dpkg -L imgdedupe | sort > "$WORK/files"
echo "files owned by the package: $(wc -l < "$WORK/files")"
DEPENDS=$(dpkg-query -W -f='${Depends}' imgdedupe)
echo "depends: ${DEPENDS%%,*} and $(echo "$DEPENDS" | tr ',' '\n' | tail -n +2 | wc -l) system libraries"

# A desktop entry the validator rejects fails the check.
desktop-file-validate /usr/share/applications/imgdedupe.desktop \
    /usr/share/applications/zz-imgdedupe-open-with.desktop
echo "desktop entries: valid"
# desktop-file-utils' trigger has indexed them: offered for photos, never
# for folders (tests/packaging/test_linux_desktop_entries.py: never the
# default either).
CACHE=/usr/share/applications/mimeinfo.cache
grep -q '^image/jpeg=.*zz-imgdedupe-open-with\.desktop' "$CACHE" \
    || { echo "$CACHE does not offer imgdedupe for image/jpeg" >&2; exit 1; }
if grep -q '^inode/directory=.*imgdedupe' "$CACHE"; then
    echo "$CACHE offers imgdedupe for folders" >&2; exit 1
fi
echo "open with: offered for image/jpeg, not for folders"

# Every library Qt's X11 plugin loads is found, as the bundle's launcher
# sets the search path (its own folder first, then the system's).
PLUGIN=/opt/imgdedupe/_internal/PySide6/Qt/plugins/platforms/libqxcb.so
if LD_LIBRARY_PATH=/opt/imgdedupe/_internal ldd "$PLUGIN" | grep "not found"; then
    echo "libqxcb.so: the libraries above are missing" >&2; exit 1
fi
echo "libqxcb.so: every library found"

echo "imgdedupe --version: $(imgdedupe --version)"
cp -r /opt/imgdedupe/_internal/resources/samples "$WORK/photos"
imgdedupe scan "$WORK/photos" --db "$WORK/cli.sqlite3" --backbone efficientnet-lite0 --json "$WORK/scan.json" >/dev/null
echo "CLI scan: $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(len(d['groups']), 'groups')" "$WORK/scan.json")"

mkdir -p "$WORK/runtime" "$WORK/tmp"
chmod 700 "$WORK/runtime"
export XDG_CONFIG_HOME="$WORK/config" XDG_CACHE_HOME="$WORK/cache" XDG_STATE_HOME="$WORK/state" \
    XDG_DATA_HOME="$WORK/data" XDG_RUNTIME_DIR="$WORK/runtime" TMPDIR="$WORK/tmp" \
    QT_QPA_PLATFORM=xcb
Xvfb -displayfd 3 -nolisten tcp -screen 0 1280x800x24 3>"$WORK/display" 2>/dev/null &
XVFB=$!
for _ in $(seq 50); do [ -s "$WORK/display" ] && break; sleep 0.1; done
[ -s "$WORK/display" ] || { echo "Xvfb did not start" >&2; exit 1; }
DISPLAY=":$(cat "$WORK/display")"
export DISPLAY

imgdedupe-gui --scan "$WORK/photos" --db "$WORK/gui.sqlite3" --settings "$WORK/gui.ini" \
    --backbone efficientnet-lite0 --screenshot "$WORK/window.png" --exit-when-done >/dev/null
cp "$WORK/window.png" "${SCREENSHOT:-/tmp/imgdedupe-installed.png}"
echo "window (X11 plugin): exit 0, screenshot $(stat -c %s "$WORK/window.png") bytes -> ${SCREENSHOT:-/tmp/imgdedupe-installed.png}"

# One window: a right-click "Find similar images" on a running app starts
# imgdedupe-gui --similar IMAGE, which hands the image to the window and
# exits. Both use the default cache, as the file managers' entries do.
LOG="$XDG_STATE_HOME/imgdedupe/log/imgdedupe.log"
IMAGE=$(find "$WORK/photos" -type f -name '*.jpg' | sort | head -n 1)
imgdedupe-gui >/dev/null 2>&1 &
FIRST=$!
for _ in $(seq 600); do
    ls "$TMPDIR"/imgdedupe-*.lock >/dev/null 2>&1 && break
    kill -0 "$FIRST" 2>/dev/null || { echo "the first window exited" >&2; exit 1; }
    sleep 0.1
done
ls "$TMPDIR"/imgdedupe-*.lock >/dev/null 2>&1 || { echo "the first window never took its lock" >&2; exit 1; }
START=$(date +%s%N)
timeout 60 imgdedupe-gui --similar "$IMAGE" \
    || { echo "the second launch failed or hung (exit $?)" >&2; exit 1; }
TENTHS=$(( ($(date +%s%N) - START) / 100000000 ))
for _ in $(seq 100); do
    grep -qF "handed over by another launch: find similar to $IMAGE" "$LOG" 2>/dev/null && break
    sleep 0.1
done
grep -qF "handed over by another launch: find similar to $IMAGE" "$LOG" \
    || { echo "the running window never logged the hand-over" >&2; exit 1; }
kill -0 "$FIRST" || { echo "the first window is gone" >&2; exit 1; }
echo "second launch --similar: handed over and exited 0 in $((TENTHS / 10)).$((TENTHS % 10)) s; the window logged it"
kill "$FIRST"
wait "$FIRST" 2>/dev/null || true
FIRST=

apt-get remove --purge -y -q imgdedupe >/dev/null
left=0
while read -r path; do
    case "$path" in /. | /opt | /usr | /usr/bin | /usr/share | /usr/share/*/ ) continue ;; esac
    # Shared folders (icons/hicolor/48x48/apps, ...) belong to other packages too.
    if [ -e "$path" ] && [ ! -d "$path" ]; then echo "LEFT BEHIND: $path"; left=1; fi
done < "$WORK/files"
[ ! -e /opt/imgdedupe ] || { echo "LEFT BEHIND: /opt/imgdedupe"; left=1; }
# The menu's MIME index, rebuilt by desktop-file-utils' trigger, forgets it.
if grep -qs imgdedupe /usr/share/applications/mimeinfo.cache; then
    echo "LEFT BEHIND: imgdedupe in /usr/share/applications/mimeinfo.cache"; left=1
fi
[ "$left" = 0 ] && echo "removed: nothing left behind"
exit "$left"

#!/bin/sh
# Install the built .deb for real, use it, remove it, and prove nothing is
# left behind. Needs root (apt). Prints one line per check; exits non-zero
# on the first failure.
#
#   sudo packaging/linux/check-deb.sh dist/imgdedupe_0.1.0_amd64.deb
set -eu
DEB=$(realpath "$1")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

apt-get install -y -q "$DEB" >/dev/null
echo "installed: $(dpkg-query -W -f='${Package} ${Version}' imgdedupe)"
dpkg -L imgdedupe | sort > "$WORK/files"
echo "files owned by the package: $(wc -l < "$WORK/files")"

echo "imgdedupe --version: $(imgdedupe --version)"
cp -r /opt/imgdedupe/_internal/resources/samples "$WORK/photos"
imgdedupe scan "$WORK/photos" --db "$WORK/cli.sqlite3" --backbone efficientnet-lite0 --json "$WORK/scan.json" >/dev/null
echo "CLI scan: $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(len(d['groups']), 'groups')" "$WORK/scan.json")"
QT_QPA_PLATFORM=offscreen XDG_STATE_HOME="$WORK/state" imgdedupe-gui --scan "$WORK/photos" \
    --db "$WORK/gui.sqlite3" --settings "$WORK/gui.ini" --backbone efficientnet-lite0 \
    --screenshot "$WORK/window.png" --exit-when-done
cp "$WORK/window.png" "${SCREENSHOT:-/tmp/imgdedupe-installed.png}"
echo "window screenshot: $(stat -c %s "$WORK/window.png") bytes -> ${SCREENSHOT:-/tmp/imgdedupe-installed.png}"
desktop-file-validate /usr/share/applications/imgdedupe.desktop 2>/dev/null && echo "desktop entry: valid" || echo "desktop entry: desktop-file-validate not available or complained"

apt-get remove --purge -y -q imgdedupe >/dev/null
left=0
while read -r path; do
    case "$path" in /. | /opt | /usr | /usr/bin | /usr/share | /usr/share/*/ ) continue ;; esac
    # Shared folders (icons/hicolor/48x48/apps, ...) belong to other packages too.
    if [ -e "$path" ] && [ ! -d "$path" ]; then echo "LEFT BEHIND: $path"; left=1; fi
done < "$WORK/files"
[ ! -e /opt/imgdedupe ] || { echo "LEFT BEHIND: /opt/imgdedupe"; left=1; }
[ "$left" = 0 ] && echo "removed: nothing left behind"
exit "$left"

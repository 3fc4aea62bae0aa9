#!/bin/sh
# The .deb on a fresh Debian: a minimal system made by debootstrap (no X,
# no GL, no fonts) gets the package and only what its Depends pull in. Qt's
# X11 plugin must then find every library, and the window must start
# through it and quit, before anything else is installed. Then desktop-
# file-utils, xvfb and python3 join and check-deb.sh runs inside for the
# rest (validation, scans, the hand-over of a second launch, the purge).
#
#   sudo packaging/linux/check-deb-fresh.sh dist/imgdedupe_0.1.0_amd64.deb
#
# Environment: SUITE (default bookworm), MIRROR (default
# http://deb.debian.org/debian). Needs root, debootstrap, Xvfb and the
# mirror; about 5 minutes and 2 GB under /var/tmp. The window uses this
# machine's Xvfb through its abstract socket: a chroot shares the network
# namespace, so nothing is mounted but /proc.
set -eu
[ "$#" = 1 ] || { echo "usage: $0 PACKAGE.deb" >&2; exit 2; }
DEB=$(realpath "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
for tool in debootstrap:debootstrap Xvfb:xvfb; do
    command -v "${tool%%:*}" >/dev/null || { echo "${tool%%:*} is needed: apt-get install ${tool#*:}" >&2; exit 2; }
done
ROOT=$(mktemp -d /var/tmp/imgdedupe-fresh.XXXXXX)
XVFB=
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    [ -z "$XVFB" ] || kill "$XVFB" 2>/dev/null || true
    if mountpoint -q "$ROOT/proc"; then umount "$ROOT/proc" || true; fi
    # Never delete through a mount that is still there.
    if mountpoint -q "$ROOT/proc"; then echo "left $ROOT: $ROOT/proc is still mounted" >&2
    else rm -rf "$ROOT"; fi
}
trap cleanup EXIT
in_root() {
    chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >/dev/null
echo "fresh Debian $SUITE: $(in_root dpkg-query -W -f='.\n' | wc -l) packages"
mount -t proc proc "$ROOT/proc"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# A chroot has no /dev/pts for dpkg's terminal log, and apt's download user
# cannot read what root put there: quiet both.
printf 'Dpkg::Use-Pty "0";\nAPT::Sandbox::User "root";\n' > "$ROOT/etc/apt/apt.conf.d/90check-deb"
apt_install() {
    in_root apt-get install -y -q --no-install-recommends "$@" >"$ROOT/tmp/apt.log" 2>&1 \
        || { cat "$ROOT/tmp/apt.log" >&2; exit 1; }
}
cp "$DEB" "$ROOT/tmp/imgdedupe.deb"
apt_install /tmp/imgdedupe.deb
echo "installed with what its Depends pull in: $(in_root dpkg-query -W -f='.\n' | wc -l) packages"

PLUGIN=/opt/imgdedupe/_internal/PySide6/Qt/plugins/platforms/libqxcb.so
if in_root env LD_LIBRARY_PATH=/opt/imgdedupe/_internal ldd "$PLUGIN" | grep "not found"; then
    echo "libqxcb.so: the libraries above are missing on a fresh Debian" >&2; exit 1
fi
echo "libqxcb.so: every library found"

Xvfb -displayfd 3 -nolisten tcp -screen 0 1280x800x24 3>"$ROOT/tmp/display" 2>/dev/null &
XVFB=$!
for _ in $(seq 50); do [ -s "$ROOT/tmp/display" ] && break; sleep 0.1; done
[ -s "$ROOT/tmp/display" ] || { echo "Xvfb did not start" >&2; exit 1; }
mkdir -p "$ROOT/tmp/empty" "$ROOT/tmp/user"
in_root env DISPLAY=":$(cat "$ROOT/tmp/display")" QT_QPA_PLATFORM=xcb HOME=/tmp/user \
    XDG_RUNTIME_DIR=/tmp/user timeout 120 imgdedupe-gui --scan /tmp/empty \
    --db /tmp/user/cache.sqlite3 --settings /tmp/user/settings.ini --exit-when-done >/dev/null
echo "window: started through the X11 plugin and quit (exit 0)"
kill "$XVFB"
XVFB=

apt_install desktop-file-utils xvfb python3
cp "$HERE/check-deb.sh" "$ROOT/tmp/check-deb.sh"
echo "check-deb.sh inside:"
in_root env SCREENSHOT=/tmp/window.png sh /tmp/check-deb.sh /tmp/imgdedupe.deb
cp "$ROOT/tmp/window.png" "${SCREENSHOT:-/tmp/imgdedupe-fresh.png}"
echo "screenshot -> ${SCREENSHOT:-/tmp/imgdedupe-fresh.png}"

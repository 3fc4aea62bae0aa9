#!/bin/sh
# Print the newest glibc version that the ELF files under PATH... require,
# e.g. "2.36": the highest GLIBC_x.y[.z] in their version needs
# (.gnu.version_r), which is what the dynamic loader checks at start. The
# .deb's "Depends: libc6 (>= ...)" comes from it.
#
#   packaging/linux/glibc-needed.sh dist/imgdedupe
#
# Only the needs count, not the versions a library defines (a bundled
# glibc piece such as libmvec defines GLIBC_ names of its own). Files that
# are not ELF are skipped. Exits 1 when no file needs any glibc version:
# a bundle without ELF files is not a bundle.
set -eu
[ "$#" -gt 0 ] || { echo "usage: $0 PATH..." >&2; exit 2; }
for path in "$@"; do
    [ -e "$path" ] || { echo "$0: no such file or folder: $path" >&2; exit 2; }
done
command -v readelf >/dev/null || { echo "$0: readelf is needed (binutils)" >&2; exit 2; }

# readelf prints "File: PATH" before each file when given several, then
# its sections; "Name: GLIBC_2.34" lines under "Version needs section" are
# the needs. Non-ELF files only make readelf complain on stderr.
newest=$(find "$@" -type f -print0 \
    | xargs -0 -r readelf --version-info --wide 2>/dev/null \
    | awk '/^File: / || /^Version (symbols|definition) section/ { needs = 0 }
           /^Version needs section/ { needs = 1 }
           needs && match($0, /Name: GLIBC_[0-9][0-9.]*/) {
               print substr($0, RSTART + 12, RLENGTH - 12)
           }' \
    | sort -u -V | tail -n 1)
[ -n "$newest" ] || { echo "$0: no ELF file under $* needs glibc" >&2; exit 1; }
echo "$newest"

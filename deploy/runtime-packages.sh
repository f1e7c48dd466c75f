#!/bin/sh
# Prints the Debian packages that provide the shared libraries the given binaries load, one per
# line. The Dockerfile's runtime stage installs exactly these, so the image keeps up with
# whatever the build links (prometheus-cpp, nghttp2...) without a hand-kept list.
set -eu
for bin in "$@"; do
  ldd "$bin" | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
  # dpkg knows a library by the path its package installed it at; on merged-/usr systems that
  # may be the /lib or the /usr/lib spelling.
  dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null \
    || { echo "runtime-packages: no package owns $lib" >&2; exit 1; }
done | cut -d: -f1 | sort -u

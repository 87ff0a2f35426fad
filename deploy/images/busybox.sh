#!/usr/bin/env bash
# Build kyb/busybox:latest — a 2 MB workload image for tests and examples —
# without a registry: Debian's statically linked busybox, a symlink per
# applet (sh, httpd, nc, wget, sleep, ...), /tmp and /www, `docker import`ed.
# Idempotent: does nothing if the image exists (FORCE=1 rebuilds).
#
# BUSYBOX=PATH uses another busybox binary (it must be statically linked).
# Sourcing this file (as pause.sh does) only defines static_busybox.
set -euo pipefail

# Print the path of a statically linked busybox, fetching Debian's
# busybox-static when the host has none. $1: a scratch directory.
static_busybox() {
  local scratch=$1 bb=${BUSYBOX:-/bin/busybox}
  if [ ! -x "$bb" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "[images] /bin/busybox missing; install busybox-static (needs root)" >&2; return 1
    fi
    echo "[images] installing busybox-static" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      busybox-static >/dev/null \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                busybox-static >/dev/null; }
  fi
  # A dynamically linked busybox (Debian's `busybox` package) would not run
  # in an empty root: take the static one from its package without
  # replacing the host's.
  local linkage
  linkage=$(ldd "$bb" 2>&1 || true)
  if ! grep -qE 'not a dynamic executable|statically linked' <<<"$linkage"; then
    echo "[images] $bb is dynamically linked; unpacking busybox-static" >&2
    (cd "$scratch" && apt-get download busybox-static >/dev/null 2>&1) \
      || { echo "[images] apt-get download busybox-static failed" >&2; return 1; }
    dpkg-deb -x "$scratch"/busybox-static_*.deb "$scratch/deb"
    bb="$scratch/deb/bin/busybox"
  fi
  echo "$bb"
}

build_busybox() {
  local image=${IMAGE:-kyb/busybox:latest}
  if [ "${FORCE:-0}" != 1 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "[images] $image present"; return 0
  fi
  local root bb applet
  work=$(mktemp -d /tmp/kyb-busybox.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  bb=$(static_busybox "$work")
  root="$work/root"
  mkdir -p "$root"/{bin,etc,tmp,www,root,proc,sys,dev,var/run}
  chmod 1777 "$root/tmp"
  cp "$bb" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  echo 'kybernetes' >"$root/www/index.html"
  tar -C "$root" --numeric-owner --owner=0 --group=0 -c . | docker import \
    -c 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' \
    -c 'CMD ["sh"]' - "$image" >/dev/null
  docker run --rm --network none "$image" true \
    || { echo "[images] $image does not run" >&2; return 1; }
  echo "[images] built $image ($(docker image inspect -f '{{.Size}}' "$image") bytes)"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  build_busybox
fi

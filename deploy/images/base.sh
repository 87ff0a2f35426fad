#!/usr/bin/env bash
# Build kyb/base:bookworm — Debian 12 with python3 — without a registry:
# debootstrap a minimal root file system from the host's Debian mirror and
# `docker import` it. Users who can reach a registry may skip this and build
# the component images FROM python:3.11-slim instead (BASE_IMAGE).
# Idempotent: does nothing if the image exists (FORCE=1 rebuilds).
set -euo pipefail
IMAGE=${IMAGE:-kyb/base:bookworm}
if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "[images] $IMAGE present"; exit 0
fi
command -v debootstrap >/dev/null || { echo "[images] debootstrap missing (deploy/host/ensure.sh docker installs it)" >&2; exit 1; }

# The mirror this host already uses, so nothing names a host in the repo.
mirror() {
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' \
        | grep -v security | head -1)
  [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' \
        | grep -v security | head -1)
  [ -n "$uri" ] || { echo "[images] no Debian mirror found in /etc/apt sources" >&2; exit 1; }
  echo "$uri"
}
MIRROR=${MIRROR:-$(mirror)}
ROOT=$(mktemp -d /tmp/kyb-base.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "[images] debootstrap bookworm from $MIRROR (about a minute)"
t0=$(date +%s)
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || { tail -20 "$ROOT.log" >&2; exit 1; }
rm -f "$ROOT.log"
# Trim what a container never uses.
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
       "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/*
echo "deb $MIRROR bookworm main" > "$ROOT/etc/apt/sources.list"
tar -C "$ROOT" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  -c 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "[images] built $IMAGE in $(( $(date +%s) - t0 ))s"

#!/usr/bin/env bash
# Build kyb/pause:latest — the pod sandbox ("infra") image that holds a pod's
# network namespace while its containers come and go. Nothing but a static
# busybox running `sleep infinity` (PID 1 ignores SIGTERM, so the runtime
# stops a sandbox with SIGKILL). Built without a registry (`docker import`).
# Idempotent: does nothing if the image exists (FORCE=1 rebuilds).
set -euo pipefail
IMAGE=${IMAGE:-kyb/pause:latest}
if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "[images] $IMAGE present"; exit 0
fi
# shellcheck source=busybox.sh
. "$(dirname "${BASH_SOURCE[0]}")/busybox.sh"

work=$(mktemp -d /tmp/kyb-pause.XXXXXX)
trap 'rm -rf "$work"' EXIT
bb=$(static_busybox "$work")
root="$work/root"
mkdir -p "$root"/{bin,proc,sys,dev,etc}
cp "$bb" "$root/bin/busybox"
ln -s busybox "$root/bin/sleep"
tar -C "$root" --numeric-owner --owner=0 --group=0 -c . | docker import \
  -c 'ENV PATH=/bin' \
  -c 'CMD ["sleep", "infinity"]' - "$IMAGE" >/dev/null
echo "[images] built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"

#!/usr/bin/env bash
# Build every Kybernetes image, in order, without a registry:
#
#   kyb/base:bookworm   Debian 12 + python3 (debootstrap + docker import; base.sh)
#   kyb/busybox:latest  workload image for demos and tests (busybox.sh)
#   kyb/pause:latest    pod sandbox image (pause.sh)
#   kyb/python:latest   the project in a venv: API server, scheduler, controller manager
#   kyb/etcd:latest     Debian's etcd-server behind a firewall (etcd-entrypoint.sh)
#   kyb/node:latest     worker node: dockerd, iptables, kubelet, kube-proxy
#
# Idempotent and quick when nothing changed: each image carries a label with
# the hash of its inputs (Dockerfile, staged sources, parent image IDs, apt
# mirror) and is rebuilt only when that hash differs. FORCE=1 rebuilds all.
#
# Environment: BASE_IMAGE (default kyb/base:bookworm; e.g. python:3.11-slim-bookworm
# when a registry answers), MIRROR (default: the host's apt mirror),
# PY (python with pip for building wheels; default .venv/bin/python),
# KYB_CACHE_DIR (wheel cache; default ~/.cache/kyb), NO_CACHE=1 (docker build
# --no-cache, for measuring a cold build without deleting anything).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

BASE_IMAGE=${BASE_IMAGE:-kyb/base:bookworm}
PY=${PY:-$ROOT/.venv/bin/python}
CACHE=${KYB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kyb}
LABEL=org.kybernetes.inputs
mkdir -p "$CACHE"

now() { date +%s%N; }
T0=$(now)
secs() { local ms=$(( ($(now) - $1) / 1000000 )); printf '%d.%01ds' $((ms / 1000)) $((ms % 1000 / 100)); }
say() { printf '[images %7s] %s\n' "$(secs "$T0")" "$*"; }
die() { say "$*" >&2; exit 1; }

command -v docker >/dev/null && docker info >/dev/null 2>&1 \
  || die "Docker Engine is not running (deploy/host/ensure.sh docker starts it)"

# One build at a time on this machine (tests and `make images` may overlap).
exec 9>"$CACHE/build.lock"
flock 9

mirror() {
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' \
        | grep -v security | head -1)
  [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' \
        | grep -v security | head -1)
  echo "$uri"
}
MIRROR=${MIRROR-$(mirror)}

image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || echo "absent:$1"; }
image_inputs() { docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null || true; }
hash_stdin() { sha256sum | cut -c1-16; }
hash_tree() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | hash_stdin; }

# build IMAGE DOCKERFILE CONTEXT INPUTS [docker build args...]
build() {
  local image=$1 dockerfile=$2 context=$3 inputs=$4; shift 4
  if [ "${FORCE:-0}" != 1 ] && [ "$(image_inputs "$image")" = "$inputs" ]; then
    say "$image up to date"; return 0
  fi
  local t log
  t=$(now); log=$(mktemp /tmp/kyb-build.XXXXXX)
  say "building $image"
  [ "${NO_CACHE:-0}" = 1 ] && set -- --no-cache "$@"
  if ! docker build -f "$dockerfile" -t "$image" --label "$LABEL=$inputs" "$@" "$context" \
       >"$log" 2>&1; then
    tail -30 "$log" >&2; rm -f "$log"; die "building $image failed"
  fi
  rm -f "$log"
  say "built $image in $(secs "$t") ($(( $(docker image inspect -f '{{.Size}}' "$image") / 1000000 )) MB)"
}

# 1. The base image and the workload images (their own scripts, each idempotent).
if [ "$BASE_IMAGE" = kyb/base:bookworm ]; then
  IMAGE=$BASE_IMAGE "$HERE/base.sh" | sed "s/^/  /"
elif ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  say "pulling $BASE_IMAGE"; docker pull -q "$BASE_IMAGE" >/dev/null || die "cannot pull $BASE_IMAGE"
fi
for script in busybox.sh pause.sh; do
  [ -x "$HERE/$script" ] && (unset IMAGE; "$HERE/$script") | sed "s/^/  /"
done

# 2. Wheels of every dependency, built on the host with its own pip
#    configuration, cached per pyproject.toml.
[ -x "$PY" ] || die "$PY not found (make venv creates it; or set PY to a python with pip)"
STAGE=$(mktemp -d /tmp/kyb-images.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/python"
cp pyproject.toml README.md "$STAGE/python/"
tar -C "$ROOT" --exclude=__pycache__ --exclude='*.pyc' -c services | tar -C "$STAGE/python" -x
WHEELS="$CACHE/wheels/$(hash_stdin <pyproject.toml)"
if [ ! -f "$WHEELS/.complete" ]; then
  t=$(now); say "building dependency wheels (pip wheel, host configuration)"
  rm -rf "$WHEELS"; mkdir -p "$WHEELS"
  "$PY" -m pip wheel -q --disable-pip-version-check -w "$WHEELS" \
      "setuptools>=68" wheel "$STAGE/python" >"$STAGE/wheel.log" 2>&1 \
    || { tail -20 "$STAGE/wheel.log" >&2; die "pip wheel failed"; }
  rm -f "$WHEELS"/kybernetes-*.whl
  touch "$WHEELS/.complete"
  say "wheels ready in $(secs "$t") ($(ls "$WHEELS"/*.whl | wc -l) wheels)"
fi
rm -rf "$STAGE/python/build" "$STAGE/python"/*.egg-info "$STAGE/python/services"/*.egg-info
mkdir -p "$STAGE/python/wheels"
cp "$WHEELS"/*.whl "$STAGE/python/wheels/"

# 3. The images.
base_id=$(image_id "$BASE_IMAGE")
inputs=$( { echo "$base_id"; cat "$HERE/Dockerfile.python"; hash_tree "$STAGE/python"; } | hash_stdin)
build kyb/python:latest "$HERE/Dockerfile.python" "$STAGE/python" "$inputs" \
  --build-arg "BASE_IMAGE=$BASE_IMAGE"

mkdir -p "$STAGE/etcd"
cp "$HERE/etcd-entrypoint.sh" "$STAGE/etcd/"
inputs=$( { echo "$base_id $MIRROR"; cat "$HERE/Dockerfile.etcd" "$HERE/etcd-entrypoint.sh"; } \
          | hash_stdin)
build kyb/etcd:latest "$HERE/Dockerfile.etcd" "$STAGE/etcd" "$inputs" \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "MIRROR=$MIRROR"

mkdir -p "$STAGE/node"
cp "$HERE/node-entrypoint.sh" "$STAGE/node/"
inputs=$( { echo "$base_id $MIRROR $(image_id kyb/python:latest)"; cat "$HERE/Dockerfile.node";
            cat "$HERE/node-entrypoint.sh"; } | hash_stdin)
build kyb/node:latest "$HERE/Dockerfile.node" "$STAGE/node" "$inputs" \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "MIRROR=$MIRROR" \
  --build-arg "PYTHON_IMAGE=kyb/python:latest"

# Rebuilt images leave their predecessors dangling; drop ours.
docker image prune -f --filter "label=$LABEL" >/dev/null 2>&1 || true
say "images ready"

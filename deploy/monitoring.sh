#!/usr/bin/env bash
# `make monitoring`: a real Prometheus server (Debian's prometheus package, in
# a container) scraping every component of a local cluster.
#
#   deploy/monitoring.sh [up]    build kyb/prometheus if needed, (re)start it, print its URL
#   deploy/monitoring.sh down    remove the Prometheus container and its configuration
#   deploy/monitoring.sh url     print the URL of a running Prometheus
#
# The container (NAME-prometheus) sits on the cluster's Docker network
# (NAME-net) at the subnet's 5th address, so it reaches every component by
# its fixed address; the host reaches it there too, and on
# 127.0.0.1:$PROMETHEUS_PORT. Its prometheus.yml is generated from the
# cluster's own options (deploy/prometheus/generate.py) into
# ~/.kyb/monitoring/NAME/ and mounted read-only.
#
# Every component serves /metrics over HTTPS to clients with a certificate
# from the cluster CA that RBAC lets get /metrics: beside prometheus.yml go
# the CA certificate and Prometheus' own certificate and key (CN system:prometheus, group
# system:monitoring), copied from the cluster's PKI directory
# (~/.kyb/clusters/NAME/pki, made by `kyb-cluster up`). The directory is
# private (0750, files 0640); the container's prometheus user reads it as a
# member of this user's group (--group-add).
#
# Idempotent: run again, it regenerates the configuration and reloads
# Prometheus only if the configuration or its certificate changed (a node
# added), recreates the
# container only if its image or flags changed, and otherwise does nothing.
# Remove it with `down` before `kyb-cluster down` (a container left on the
# cluster network keeps Docker from removing the network).
#
# Environment: KYB_CLUSTER (the cluster's name, default kyb), PROMETHEUS_PORT
# (host port on 127.0.0.1, default 9090; 0 publishes none), SCRAPE_INTERVAL
# (default 15s), PY (python of the project's venv, default .venv/bin/python),
# MIRROR (default: the host's apt mirror), BASE_IMAGE (default kyb/base:bookworm),
# KYB_CONFIG (client config; the monitoring files live beside it).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

CLUSTER=${KYB_CLUSTER:-kyb}
PORT=${PROMETHEUS_PORT:-9090}
INTERVAL=${SCRAPE_INTERVAL:-15s}
PY=${PY:-$ROOT/.venv/bin/python}
BASE_IMAGE=${BASE_IMAGE:-kyb/base:bookworm}
IMAGE=kyb/prometheus:latest
NAME=$CLUSTER-prometheus
CONFIG_HOME=$(dirname "${KYB_CONFIG:-$HOME/.kyb/config}")
DIR=$CONFIG_HOME/monitoring/$CLUSTER
INPUTS_LABEL=org.kybernetes.inputs
SPEC_LABEL=org.kybernetes.spec
OWNER_LABEL=org.kybernetes.monitoring

now() { date +%s%N; }
T0=$(now)
secs() { local ms=$(( ($(now) - $1) / 1000000 )); printf '%d.%01ds' $((ms / 1000)) $((ms % 1000 / 100)); }
say() { printf '[monitoring %6s] %s\n' "$(secs "$T0")" "$*"; }
die() { say "$*" >&2; exit 1; }
hash_stdin() { sha256sum | cut -c1-16; }
label() { docker inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }

check_docker() {
  if ! { command -v docker >/dev/null && docker info >/dev/null 2>&1; }; then
    die "Docker Engine is not running (deploy/host/ensure.sh docker starts it)"
  fi
  [ -x "$PY" ] || die "$PY not found (make venv creates it)"
}

# The mirror this host's apt uses, so nothing names a host in the repo
# (as deploy/images/build.sh does).
mirror() {
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' \
        | grep -v security | head -1 || true)
  [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' \
        | grep -v security | head -1 || true)
  echo "$uri"
}

# kyb/prometheus, rebuilt only when its inputs (Dockerfile, base image,
# mirror) changed; the same label scheme as deploy/images/build.sh.
build_image() {
  if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    [ "$BASE_IMAGE" = kyb/base:bookworm ] || die "base image $BASE_IMAGE not found"
    IMAGE=$BASE_IMAGE "$ROOT/deploy/images/base.sh" | sed 's/^/  /'
  fi
  local mirror_uri inputs t log cache
  # One image build at a time on this machine, shared with deploy/images/build.sh.
  cache=${KYB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kyb}
  mkdir -p "$cache"
  exec 9>"$cache/build.lock"
  flock 9
  mirror_uri=${MIRROR-$(mirror)}
  inputs=$( { docker image inspect -f '{{.Id}}' "$BASE_IMAGE"; echo "$mirror_uri";
              cat "$HERE/prometheus/Dockerfile"; } | hash_stdin)
  if [ "$(docker image inspect -f "{{index .Config.Labels \"$INPUTS_LABEL\"}}" "$IMAGE" \
          2>/dev/null || true)" = "$inputs" ]; then
    say "$IMAGE up to date"; exec 9>&-; return 0
  fi
  t=$(now); log=$(mktemp /tmp/kyb-prometheus-build.XXXXXX)
  say "building $IMAGE (Debian's prometheus package)"
  if ! docker build -f "$HERE/prometheus/Dockerfile" -t "$IMAGE" --label "$INPUTS_LABEL=$inputs" \
       --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "MIRROR=$mirror_uri" \
       "$HERE/prometheus" >"$log" 2>&1; then
    tail -30 "$log" >&2; rm -f "$log"; die "building $IMAGE failed"
  fi
  rm -f "$log"
  docker image prune -f --filter "label=$INPUTS_LABEL" >/dev/null 2>&1 || true
  exec 9>&-
  say "built $IMAGE in $(secs "$t")"
}

# install_file SRC DEST: copy SRC to DEST (mode 0640) unless DEST already
# holds the same bytes; succeeds only when it copied.
install_file() {
  if cmp -s "$1" "$2"; then chmod 640 "$2"; return 1; fi
  cp "$1" "$2.tmp" && chmod 640 "$2.tmp" && mv "$2.tmp" "$2"
}

# Poll Prometheus' readiness endpoint (no proxy: the address is local).
wait_ready() {
  "$PY" - "$1" <<'EOF' || die "Prometheus did not become ready; see: docker logs $NAME"
import sys, time, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.monotonic() + 60
while True:
    try:
        with opener.open(f"http://{sys.argv[1]}:9090/-/ready", timeout=2) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.3)
EOF
}

print_url() {
  local ip=$1
  cat <<EOF

Prometheus for cluster $CLUSTER: http://$ip:9090$([ "$PORT" != 0 ] && echo " (also http://127.0.0.1:$PORT)")
  web UI:   http://$ip:9090/classic/graph   (Debian ships the classic UI)
  targets:  http://$ip:9090/classic/targets
  a query:  curl -s http://$ip:9090/api/v1/query --data-urlencode \\
              'query=histogram_quantile(0.99, sum(rate(kubelet_pod_start_duration_seconds_bucket[5m])) by (le))'
  (more in deploy/README.md)  remove it with: make monitoring-down
EOF
}

cmd_up() {
  check_docker
  local address network ip tmp args spec state
  address=$("$PY" "$HERE/prometheus/generate.py" address --name "$CLUSTER") || exit 1
  read -r network ip <<<"$address"
  docker network inspect "$network" >/dev/null 2>&1 \
    || die "cluster $CLUSTER has no network $network (is it up? make cluster)"
  build_image

  mkdir -p "$DIR"
  chmod 750 "$DIR"
  local changed=0 pki file
  tmp=$(mktemp "$DIR/.prometheus.yml.XXXXXX")
  "$PY" "$HERE/prometheus/generate.py" config --name "$CLUSTER" --scrape-interval "$INTERVAL" \
    >"$tmp" || { rm -f "$tmp"; exit 1; }
  install_file "$tmp" "$DIR/prometheus.yml" && changed=1
  rm -f "$tmp"
  pki=$("$PY" "$HERE/prometheus/generate.py" pki --name "$CLUSTER") || exit 1
  for file in ca.crt prometheus.crt prometheus.key; do
    [ -f "$pki/$file" ] \
      || die "no $pki/$file: the cluster has no Prometheus certificate (kyb-cluster up issues it)"
    install_file "$pki/$file" "$DIR/$file" && changed=1
  done

  args=(--name "$NAME" --hostname "$NAME" --network "$network" --ip "$ip"
        --restart unless-stopped --label "$OWNER_LABEL=$CLUSTER"
        --group-add "$(id -g)" -v "$DIR:/etc/prometheus/kyb:ro")
  [ "$PORT" != 0 ] && args+=(-p "127.0.0.1:$PORT:9090")
  spec=$( { docker image inspect -f '{{.Id}}' "$IMAGE"; printf '%s\n' "${args[@]}"; } | hash_stdin)
  state=absent
  if docker container inspect "$NAME" >/dev/null 2>&1; then
    state=$(docker container inspect -f '{{.State.Running}}' "$NAME")
  fi
  if [ "$state" != absent ] && [ "$(label "$NAME" "$SPEC_LABEL")" = "$spec" ]; then
    if [ "$state" != true ]; then
      docker start "$NAME" >/dev/null; say "$NAME started"
    elif [ "$changed" = 1 ]; then
      docker kill -s HUP "$NAME" >/dev/null; say "$NAME: configuration or certificate changed, reloaded"
    else
      say "$NAME running, configuration unchanged"
    fi
  else
    [ "$state" != absent ] && { docker rm -f "$NAME" >/dev/null; say "$NAME: image or flags changed"; }
    docker run -d "${args[@]}" --label "$SPEC_LABEL=$spec" "$IMAGE" >/dev/null \
      || die "docker run $NAME failed (is 127.0.0.1:$PORT free? PROMETHEUS_PORT=0 publishes none)"
    say "$NAME created on $network at $ip"
  fi
  wait_ready "$ip"
  say "Prometheus ready, scraping $(grep -c '^    - ' "$DIR/prometheus.yml") targets every $INTERVAL"
  print_url "$ip"
}

cmd_down() {
  if ! { command -v docker >/dev/null && docker info >/dev/null 2>&1; }; then
    say "Docker Engine is not running"; exit 0
  fi
  if docker inspect "$NAME" >/dev/null 2>&1; then
    docker rm -f "$NAME" >/dev/null; say "$NAME removed"
  else
    say "no $NAME"
  fi
  rm -rf "$DIR"
  rmdir "$CONFIG_HOME/monitoring" 2>/dev/null || true
}

cmd_url() {
  local ip
  ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$NAME" 2>/dev/null) \
    || die "no $NAME (make monitoring starts it)"
  echo "http://$ip:9090"
}

case "${1:-up}" in
  up) cmd_up ;;
  down) cmd_down ;;
  url) cmd_url ;;
  *) echo "usage: $0 [up|down|url]" >&2; exit 2 ;;
esac

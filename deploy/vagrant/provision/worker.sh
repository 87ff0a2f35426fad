#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Worker VM number INDEX: the node container of `make cluster` (kyb/node:
# deploy/images/node-entrypoint.sh starting the routes agent, the kubelet and
# kube-proxy) with host networking, so that kube-proxy programs this VM's
# iptables and routes; with KYB_DOCKERD=host it starts no dockerd of its own
# but drives this VM's Docker (socket mounted), which is set up here the way
# the entrypoint sets up its own: the bridge on the node's pod CIDR, no
# masquerade of its own. The node's credentials (its own identity,
# system:node:NAME, and kube-proxy's) are the bundle the Vagrantfile uploaded.
#
# Usage: worker.sh INDEX IP API_HOST:PORT. Idempotent.
set -euo pipefail
# Vagrant uploads this script alone; lib.sh is read from the synced repository.
LIB=$(dirname "${BASH_SOURCE[0]}")/lib.sh
[ -f "$LIB" ] || LIB=${KYB_SRC:-/kybernetes}/deploy/vagrant/provision/lib.sh
# shellcheck source=lib.sh
. "$LIB"
INDEX=${1:?usage: worker.sh INDEX IP API}
IP=${2:?usage: worker.sh INDEX IP API}
API=${3:?usage: worker.sh INDEX IP API}

# Docker's daemon.json with the pod CIDR's bridge (other settings kept);
# restart dockerd if it changed.
current=/etc/docker/daemon.json
[ -f "$current" ] || current=/dev/null
want=$(plan kyb/node:latest daemon-json --index "$INDEX" --current - <"$current") \
  || die "plan.py failed"
if [ "$(cat /etc/docker/daemon.json 2>/dev/null)" != "$want" ]; then
  mkdir -p /etc/docker
  printf '%s\n' "$want" >/etc/docker/daemon.json
  say "dockerd: $(tr -d '\n ' <<<"$want"); restarting"
  if command -v systemctl >/dev/null && systemctl is-active --quiet docker; then
    systemctl restart docker
  else
    # No systemd (ensure.sh started dockerd itself): stop it, and start it
    # again the same way. dockerd removes its pid file when it has stopped.
    pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 150); do [ -e /var/run/docker.pid ] || break; sleep 0.2; done
    fi
    "$SRC/deploy/host/ensure.sh" docker
  fi
fi

mkdir -p /var/lib/kyb-kubelet /var/lib/kyb/preload  # preload: images are loaded by base.sh
install_pki
lines=$(plan kyb/node:latest containers worker --index "$INDEX" --ip "$IP" --api "$API") \
  || die "plan.py failed"
ensure_containers <<<"$lines"
say "worker $INDEX ready: node container running, API $API"

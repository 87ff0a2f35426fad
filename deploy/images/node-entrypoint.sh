#!/usr/bin/env bash
# Entry point of a kyb/node container: one worker node.
#
#   1. dockerd, the node's container runtime, with its bridge on the node's
#      pod CIDR (--bip = the CIDR's first address), the pods' cgroups under
#      /<node name>, and no masquerade of its own (we masquerade only what
#      leaves the cluster CIDR, so pods on other nodes see the sender's pod IP);
#   2. forwarding to and from the cluster CIDR allowed (Docker's FORWARD
#      rules drop new inbound connections to its bridge otherwise);
#   3. the images in $KYB_PRELOAD (docker save tarballs) loaded into that
#      dockerd, since no registry can be pulled from;
#   4. the route agent (routes to every other node's pod CIDR, from the Node
#      objects), the kubelet and kube-proxy, each restarted if it exits.
#
# The pod CIDR is given (KYB_POD_CIDR): kyb-cluster assigns it up front and
# writes it into the Node object before this node starts, so dockerd can
# start at once with the right bridge (see services/cluster/topology.py).
#
# Credentials: kyb-cluster mounts the node's bundle read-only at
# /etc/kybernetes (services/cluster/credentials.py) and names its files in
# the daemons' flags: the kubelet and the route agent connect as the node
# (system:node:NAME, kubelet.conf), kube-proxy as system:kube-proxy
# (kube-proxy.conf); the kubelet serves its gRPC API and both serve their
# metrics over TLS with the node's serving certificates.
#
# Environment: KYB_NODE_NAME, KYB_POD_CIDR (required); KYB_CLUSTER_CIDR
# (10.244.0.0/16); KYB_NODE_IP (default: the address of the default route's
# interface); KYB_PRELOAD (/preload); KYB_KUBELET_ARGS, KYB_PROXY_ARGS,
# KYB_ROUTES_ARGS (further flags: --kubeconfig and the TLS files);
# KYB_SERVER (API servers, when no --kubeconfig names them); KYB_DOCKERD
# (own: start dockerd here; host: use the dockerd whose socket is mounted,
# as a VM worker of deploy/vagrant does).
set -uo pipefail

NODE=${KYB_NODE_NAME:?KYB_NODE_NAME is not set}
POD_CIDR=${KYB_POD_CIDR:?KYB_POD_CIDR is not set}
CLUSTER_CIDR=${KYB_CLUSTER_CIDR:-10.244.0.0/16}
PRELOAD=${KYB_PRELOAD:-/preload}
T0=$(date +%s%N)
say() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '[node %s %d.%03ds] %s\n' "$NODE" $((ms / 1000)) $((ms % 1000)) "$*"; }

NODE_IP=${KYB_NODE_IP:-$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") print $(i + 1)}')}
PREFIX=${POD_CIDR#*/}
GATEWAY=$(python3 -c 'import ipaddress, sys; print(next(ipaddress.ip_network(sys.argv[1]).hosts()))' "$POD_CIDR") \
  || { say "invalid KYB_POD_CIDR $POD_CIDR"; exit 2; }

PIDS=()
STOPPING=0
shutdown() {
  STOPPING=1
  say "stopping"
  [ ${#PIDS[@]} -gt 0 ] && kill -TERM "${PIDS[@]}" 2>/dev/null
  [ -f /run/docker.pid ] && kill -TERM "$(cat /run/docker.pid)" 2>/dev/null
  for _ in $(seq 1 40); do [ -f /run/docker.pid ] && kill -0 "$(cat /run/docker.pid)" 2>/dev/null || break; sleep 0.25; done
  exit 0
}
trap shutdown TERM INT

# supervise NAME CMD...: run CMD, restarting it a second after it exits,
# its output prefixed with NAME on this container's log.
supervise() {
  local name=$1; shift
  (
    trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0' TERM
    while :; do
      "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
      child=$!
      wait "$child"; code=$?
      echo "[$name] exited with $code; restarting" >&2
      sleep 1
    done
  ) &
  PIDS+=($!)
}

say "pod CIDR $POD_CIDR (bridge $GATEWAY/$PREFIX), node IP $NODE_IP"
mount --make-rshared / 2>/dev/null || true
sysctl -qw net.ipv4.ip_forward=1 2>/dev/null || true
if [ "${KYB_DOCKERD:-own}" = host ]; then
  # A VM worker (deploy/vagrant): the runtime is the machine's own dockerd,
  # its socket mounted at /run/docker.sock, its bridge already on the pod
  # CIDR (daemon.json written by deploy/vagrant/provision/worker.sh).
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.25; done
  docker info >/dev/null 2>&1 || { say "no dockerd answers at /run/docker.sock"; exit 1; }
  bridge=$(docker network inspect -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' bridge 2>/dev/null)
  [ "$bridge" = "$GATEWAY" ] || say "warning: the host's docker0 is on $bridge, not $GATEWAY (bip)"
  say "using the host's dockerd ($(docker info -f '{{.Driver}}'))"
else
  rm -f /run/docker.pid /run/docker.sock
  # Hairpin: a pod reaching itself through its Service's ClusterIP needs
  # hairpin_mode on its bridge port, which dockerd sets only without the
  # userland proxy; that in turn needs a writable /proc/sys in the node.
  mount -o remount,rw /proc/sys 2>/dev/null || true
  dockerd --bip "$GATEWAY/$PREFIX" --cgroup-parent "/$NODE" --iptables=true --ip-masq=false \
    --userland-proxy=false --log-level warn >>/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.25; done
  docker info >/dev/null 2>&1 || { say "dockerd did not start:"; tail -20 /var/log/dockerd.log; exit 1; }
  say "dockerd ready ($(docker info -f '{{.Driver}}'))"
fi

# rule TABLE CHAIN SPEC...: insert SPEC at the top of CHAIN unless present.
rule() { local t=$1 c=$2; shift 2; iptables -t "$t" -C "$c" "$@" 2>/dev/null || iptables -t "$t" -I "$c" 1 "$@"; }
rule filter FORWARD -d "$CLUSTER_CIDR" -j ACCEPT
rule filter FORWARD -s "$CLUSTER_CIDR" -j ACCEPT
rule nat POSTROUTING -s "$POD_CIDR" ! -d "$CLUSTER_CIDR" ! -o docker0 -j MASQUERADE

shopt -s nullglob
for tarball in "$PRELOAD"/*.tar; do
  docker load -q -i "$tarball" >/dev/null && say "loaded $(basename "$tarball")" \
    || say "could not load $tarball"
done

# shellcheck disable=SC2086 # the extra flags are split on purpose
supervise routes python3 -m services.cluster.routes --node-name "$NODE" --cluster-cidr "$CLUSTER_CIDR" \
  ${KYB_ROUTES_ARGS:-}
# shellcheck disable=SC2086
supervise kubelet kyb-kubelet --node-name "$NODE" --node-ip "$NODE_IP" ${KYB_KUBELET_ARGS:-}
# shellcheck disable=SC2086
supervise proxy kyb-proxy --hostname-override "$NODE" --cluster-cidr "$CLUSTER_CIDR" ${KYB_PROXY_ARGS:-}
say "kubelet and kube-proxy started"

while :; do
  wait -n 2>/dev/null
  [ "$STOPPING" = 1 ] && break
  if ! docker info >/dev/null 2>&1; then say "dockerd is gone; restarting the node"; exit 1; fi
done

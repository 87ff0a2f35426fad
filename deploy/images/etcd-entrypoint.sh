#!/usr/bin/env bash
# Entry point of a kyb/etcd container: a firewall, then etcd.
#
# etcd already asks every client and peer for a certificate signed by the
# cluster CA (--client-cert-auth, --peer-client-cert-auth); this makes it
# reachable only by the API servers as well, so that nothing else on the
# cluster network — nor the host on its bridge — even gets a TCP
# connection to the client port:
#
#   client port (2379)   the addresses in KYB_ETCD_CLIENTS (the API servers) and loopback
#   peer port (2380)     the addresses in KYB_ETCD_PEERS (the etcd members) and loopback
#   anything else        as etcd decides (the metrics port 2381 is mutual TLS too)
#
# The rules live in a chain of their own (KYB-ETCD), jumped to from INPUT,
# flushed and rewritten on every start, so a restart with other addresses
# converges. In a container they are the container's own network
# namespace's (CAP_NET_ADMIN); on a Vagrant VM with host networking, the
# VM's. Fails closed: if the rules cannot be set, etcd does not start.
#
# Environment: KYB_ETCD_CLIENTS, KYB_ETCD_PEERS (comma-separated IPv4
# addresses; both unset: no firewall, plain etcd), KYB_ETCD_CLIENT_PORT
# (2379), KYB_ETCD_PEER_PORT (2380). Arguments: etcd's.
set -Eeuo pipefail

CHAIN=KYB-ETCD
CLIENT_PORT=${KYB_ETCD_CLIENT_PORT:-2379}
PEER_PORT=${KYB_ETCD_PEER_PORT:-2380}
say() { printf '[etcd-entrypoint] %s\n' "$*" >&2; }

# allow PORT ADDRESSES: accept PORT from each address, reject the rest.
allow() {
  local port=$1 addresses=$2 ip
  iptables -w -A "$CHAIN" -p tcp --dport "$port" -i lo -j ACCEPT
  for ip in ${addresses//,/ }; do
    [[ $ip =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || { say "not an IPv4 address: $ip"; exit 2; }
    iptables -w -A "$CHAIN" -p tcp --dport "$port" -s "$ip" -j ACCEPT
  done
  iptables -w -A "$CHAIN" -p tcp --dport "$port" -j REJECT --reject-with tcp-reset
}

if [ -n "${KYB_ETCD_CLIENTS:-}${KYB_ETCD_PEERS:-}" ]; then
  trap 'say "cannot set the firewall (does the container have CAP_NET_ADMIN?); not starting"' ERR
  iptables -w -N "$CHAIN" 2>/dev/null || true
  iptables -w -F "$CHAIN"
  allow "$CLIENT_PORT" "${KYB_ETCD_CLIENTS:-}"
  allow "$PEER_PORT" "${KYB_ETCD_PEERS:-}"
  iptables -w -C INPUT -j "$CHAIN" 2>/dev/null || iptables -w -I INPUT 1 -j "$CHAIN"
  trap - ERR
  say "client port $CLIENT_PORT open to ${KYB_ETCD_CLIENTS:-nobody}; peer port $PEER_PORT to ${KYB_ETCD_PEERS:-nobody}"
fi
exec etcd "$@"

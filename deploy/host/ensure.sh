#!/usr/bin/env bash
# Install what Kybernetes needs on a Debian 12 host, only when it is missing.
#
#   deploy/host/ensure.sh python   python3 with venv support
#   deploy/host/ensure.sh etcd     etcd-server and etcdctl
#   deploy/host/ensure.sh docker   docker.io, iptables, debootstrap; dockerd running
#   deploy/host/ensure.sh deploy   vagrant, vagrant-libvirt, shellcheck (for the tests)
#
# Idempotent: a second run installs nothing and prints nothing but checks.
set -euo pipefail

say() { printf '[host] %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    say "need root to install: $* (run as root or install them yourself)"; exit 1
  fi
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"; DEBIAN_FRONTEND=noninteractive apt-get update -qq; apt_updated=1
  fi
  say "installing: $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_python() {
  local py=${PYTHON:-python3}
  command -v "$py" >/dev/null || apt_install python3 python3-venv
  if ! "$py" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    say "$py is older than 3.11"; exit 1
  fi
  if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then apt_install python3-venv; fi
}

ensure_etcd() {
  command -v etcd >/dev/null && command -v etcdctl >/dev/null && return
  apt_install etcd-server etcd-client
  # Debian's package starts a system etcd on 2379; ours run on their own ports.
  if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
}

ensure_docker() {
  local need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v iptables >/dev/null || need+=(iptables)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  command -v ip >/dev/null || need+=(iproute2)
  [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
  if ! docker info >/dev/null 2>&1; then
    say "starting dockerd (log: /var/log/dockerd.log)"
    nohup dockerd >/var/log/dockerd.log 2>&1 &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { say "dockerd did not start; see /var/log/dockerd.log"; exit 1; }
  fi
}

ensure_deploy() {  # vagrant + libvirt provider (the Vagrantfile's validate test), shellcheck
  local need=()
  command -v vagrant >/dev/null || need+=(vagrant)
  dpkg -s vagrant-libvirt >/dev/null 2>&1 || need+=(vagrant-libvirt)
  command -v shellcheck >/dev/null || need+=(shellcheck)
  [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
}

for what in "$@"; do
  case "$what" in
    python) ensure_python ;;
    etcd) ensure_etcd ;;
    docker) ensure_docker ;;
    deploy) ensure_deploy ;;
    *) say "unknown requirement: $what (python, etcd, docker, deploy)"; exit 2 ;;
  esac
done

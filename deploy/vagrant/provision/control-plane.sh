#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The control-plane VM: etcd, the API server, the scheduler and the controller
# manager, each in its own container from the same images and with the same
# flags as `kyb-cluster up` gives them (plan.py derives them from
# services/cluster/topology.py), but with host networking on this VM's
# address. Then the Node objects of the workers, each with its pod CIDR, so
# that a worker's dockerd starts on the right bridge (as kyb-cluster up does),
# registered as the cluster's admin. Every container gets only its own
# credentials (install_pki: the bundles the Vagrantfile uploaded).
#
# Usage: control-plane.sh IP WORKERS. Idempotent: a container whose flags and
# image are unchanged is left running.
set -euo pipefail
# Vagrant uploads this script alone; lib.sh is read from the synced repository.
LIB=$(dirname "${BASH_SOURCE[0]}")/lib.sh
[ -f "$LIB" ] || LIB=${KYB_SRC:-/kybernetes}/deploy/vagrant/provision/lib.sh
# shellcheck source=lib.sh
. "$LIB"
IP=${1:?usage: control-plane.sh IP WORKERS}
WORKERS=${2:?usage: control-plane.sh IP WORKERS}

install_pki
lines=$(plan kyb/python:latest containers control-plane --ip "$IP") || die "plan.py failed"
ensure_containers <<<"$lines"
plan kyb/python:latest register-nodes --api "$IP:6443" --workers "$WORKERS" \
  --kubeconfig /etc/kybernetes/admin/admin.conf | sed 's/^/  /'
say "control plane ready: API $IP:6443"

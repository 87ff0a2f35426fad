#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Every VM: Docker Engine, installed and started by the same script that
# prepares the host for `make cluster` (deploy/host/ensure.sh docker), and
# the kyb/* images that deploy/vagrant/up.sh built and saved on the host (no
# registry is needed). Idempotent.
set -euo pipefail
# Vagrant uploads this script alone; lib.sh is read from the synced repository.
LIB=$(dirname "${BASH_SOURCE[0]}")/lib.sh
[ -f "$LIB" ] || LIB=${KYB_SRC:-/kybernetes}/deploy/vagrant/provision/lib.sh
# shellcheck source=lib.sh
. "$LIB"

# The VM's pods are routed between nodes (host-gateway), like the node containers'.
sysctl -qw net.ipv4.ip_forward=1 2>/dev/null || true  # dockerd sets it too
"$SRC/deploy/host/ensure.sh" docker
load_images
say "Docker $(docker version -f '{{.Server.Version}}') ready"

#!/usr/bin/env bash
# `make cluster PROVIDER=vagrant`: the Kybernetes cluster on Vagrant VMs.
#
#   1. the images, built by deploy/images/build.sh (`make images`), saved to
#      deploy/vagrant/.images/images.tar unless unchanged since last time;
#   2. the cluster's PKI in deploy/vagrant/.pki (plan.py pki: the CA, kept
#      across runs, and a certificate per component), and each VM's share of
#      it in .pki/vms/VM, which the Vagrantfile uploads to that VM only;
#   3. `vagrant up --provision`: the VMs of settings.yaml (NODES=N workers),
#      provisioned by provision/*.sh (idempotent, so a second run converges);
#   4. wait until every worker's Node is Ready, and point the client config
#      (~/.kyb/config, or $KYB_CONFIG) at the control-plane VM's API server
#      as the cluster's admin (the certificate in .pki/pki).
#
# Environment: NODES (workers; default settings.yaml's), PY (default
# .venv/bin/python), VAGRANT_DEFAULT_PROVIDER (virtualbox, libvirt, ...),
# WAIT (seconds to wait for Ready nodes, default 600).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
IMAGES=(kyb/etcd:latest kyb/python:latest kyb/node:latest kyb/pause:latest kyb/busybox:latest)

T0=$(date +%s)
say() { printf '[vagrant %4ds] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { say "$*" >&2; exit 1; }

command -v vagrant >/dev/null \
  || die "vagrant is not installed (Debian: apt-get install vagrant vagrant-libvirt; or VirtualBox's)"
[ -x "$PY" ] || die "$PY not found (make venv creates it)"
setting() { "$PY" -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d = d[k]
print(d)' "$HERE/settings.yaml" "$1"; }
CP_IP=$(setting control_plane.ip)
WORKERS=${NODES:-$(setting workers.count)}

# 1. Images, saved only when one of them changed.
mkdir -p "$HERE/.images"
for image in "${IMAGES[@]}"; do
  docker image inspect "$image" >/dev/null 2>&1 || die "image $image missing: make images"
done
ids=$(docker image inspect -f '{{.Id}}' "${IMAGES[@]}" | sha256sum | cut -c1-16)
if [ "$(cat "$HERE/.images/images.ids" 2>/dev/null)" != "$ids" ] || [ ! -f "$HERE/.images/images.tar" ]; then
  say "saving ${IMAGES[*]} for the VMs"
  docker save -o "$HERE/.images/images.tar.tmp" "${IMAGES[@]}"
  mv "$HERE/.images/images.tar.tmp" "$HERE/.images/images.tar"
  echo "$ids" >"$HERE/.images/images.ids"
else
  say "saved images up to date"
fi

# 2. The credentials.
say "certificates in $HERE/.pki"
"$PY" "$HERE/plan.py" pki --out "$HERE/.pki" --workers "$WORKERS" | sed 's/^/  /'

# 3. The VMs.
say "vagrant up: control plane $CP_IP and $WORKERS worker(s)"
(cd "$HERE" && NODES=$WORKERS vagrant up --provision)

# 4. Ready nodes, and the client config.
say "waiting for $WORKERS node(s) to be Ready"
"$PY" "$HERE/plan.py" wait-ready --api "$CP_IP:6443" --workers "$WORKERS" --timeout "${WAIT:-600}" \
  --kubeconfig "$HERE/.pki/admin.conf"
config=$(PYTHONPATH=$ROOT "$PY" -c 'import sys; from services.machinery import config
pki = sys.argv[2]
print(config.write_config([sys.argv[1]], certificate_authority=f"{pki}/ca.crt",
                          client_certificate=f"{pki}/admin.crt", client_key=f"{pki}/admin.key"))' \
  "$CP_IP:6443" "$HERE/.pki/pki")
say "ready; client config $config (user kubernetes-admin, group system:masters)"
cat <<EOT

Kybernetes on Vagrant VMs: API $CP_IP:6443 (client config $config)
Try:
  .venv/bin/kyb get nodes
  .venv/bin/kyb apply -f deploy/examples/web.yaml
  (cd deploy/vagrant && vagrant ssh kyb-node-1)   a worker: docker ps, iptables-save
Remove it with: make cluster-down PROVIDER=vagrant
EOT

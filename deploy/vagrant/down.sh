#!/usr/bin/env bash
# `make cluster-down PROVIDER=vagrant`: destroy the VMs, the saved images, the
# cluster's PKI (a new cluster gets a new CA) and the client config if it
# points at the VMs' API server.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
command -v vagrant >/dev/null || { echo "[vagrant] vagrant is not installed; nothing to remove"; exit 0; }
(cd "$HERE" && vagrant destroy -f)
rm -rf "$HERE/.images" "$HERE/.pki"
PYTHONPATH=$ROOT "$PY" - "$HERE/settings.yaml" <<'PYEOF'
import sys, yaml
from services.machinery import config
api = f"{yaml.safe_load(open(sys.argv[1]))['control_plane']['ip']}:6443"
path = config.config_path()
try:
    if str(config.read_config(path).get("server", "")) == api:
        path.unlink()
        print(f"[vagrant] client config {path}: removed")
except (ValueError, OSError):
    pass
PYEOF

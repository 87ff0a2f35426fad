#!/usr/bin/env bash
# Start the Kybernetes control plane on this machine: the API server with its
# embedded etcd, in the background, state in $1 (default .kyb), gRPC on $2.
# Idempotent: a second run finds it running and changes nothing.
# (The container-based multi-node cluster replaces this in a later issue.)
set -euo pipefail
cd "$(dirname "$0")/../.."
STATE=${1:-$PWD/.kyb}
PORT=${2:-6443}
METRICS_PORT=${METRICS_PORT:-8081}
ETCD_PORT=${ETCD_PORT:-2379}
PY=.venv/bin/python
mkdir -p "$STATE"
t0=$(date +%s%N)
step() { local ms=$(( ($(date +%s%N) - t0) / 1000000 )); printf '[cluster %3d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*"; }

if [ -f "$STATE/apiserver.pid" ] && kill -0 "$(cat "$STATE/apiserver.pid")" 2>/dev/null; then
  step "API server already running (pid $(cat "$STATE/apiserver.pid")) on localhost:$PORT"
else
  step "starting the API server (embedded etcd in $STATE/apiserver/etcd)"
  nohup "$PY" -m services.apiserver.main --port "$PORT" --metrics-port "$METRICS_PORT" \
    --data-dir "$STATE/apiserver" --embedded-etcd-port "$ETCD_PORT" --insecure-plaintext \
    >>"$STATE/apiserver.log" 2>&1 &
  echo $! >"$STATE/apiserver.pid"
fi

for _ in $(seq 1 120); do
  if .venv/bin/kyb --server "localhost:$PORT" get namespaces >/dev/null 2>&1; then
    break
  fi
  if ! kill -0 "$(cat "$STATE/apiserver.pid")" 2>/dev/null; then
    echo "the API server exited; last lines of $STATE/apiserver.log:" >&2
    tail -20 "$STATE/apiserver.log" >&2; exit 1
  fi
  sleep 0.5
done
.venv/bin/kyb --server "localhost:$PORT" get namespaces >/dev/null \
  || { echo "the API server did not become ready; see $STATE/apiserver.log" >&2; exit 1; }

"$PY" - "$PORT" <<'PYEOF'
import sys
from services.machinery import config
print(f"wrote client config {config.write_config([f'localhost:{sys.argv[1]}'])}")
PYEOF
step "ready"
cat <<MSG

Kybernetes API server: localhost:$PORT (metrics: http://localhost:$METRICS_PORT/metrics)
Try:
  .venv/bin/kyb get namespaces
  .venv/bin/kyb apply -f deploy/examples/web.yaml
  .venv/bin/kyb get all -n default
Stop it with: make cluster-down
MSG

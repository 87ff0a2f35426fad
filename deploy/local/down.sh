#!/usr/bin/env bash
# Stop what deploy/local/up.sh started. Keeps the state directory unless
# PURGE=1 is set.
set -euo pipefail
cd "$(dirname "$0")/../.."
STATE=${1:-$PWD/.kyb}
if [ -f "$STATE/apiserver.pid" ]; then
  pid=$(cat "$STATE/apiserver.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    echo "stopped the API server (pid $pid)"
  fi
  rm -f "$STATE/apiserver.pid"
fi
if [ "${PURGE:-0}" = 1 ]; then rm -rf "$STATE"; echo "removed $STATE"; fi

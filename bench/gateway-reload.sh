#!/usr/bin/env bash
# Reloads under load: wrk drives a route through the gateway's config (rendered by devenv,
# on this host's nginx) while devenv changes the routes 20 times, each change going through
# gateway::apply (nginx -t on the candidate, rename, nginx -s reload, verify). Prints wrk's
# figures and fails unless there were 0 non-2xx responses and 0 socket errors.
#
# Needs nginx, wrk, curl, python3. Usage: bench/gateway-reload.sh [SECONDS_PER_RELOAD]
# (WRK_ARGS='-H Connection:close' runs every request on a new connection.)
set -euo pipefail
cd "$(dirname "$0")/.."
pause=${1:-0.5}
for t in nginx wrk curl python3; do command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 3; }; done

# devenv only renders and reloads here; nginx serves: a debug build is enough.
cargo build -q --bin devenv --example gateway-host
devenv=target/debug/devenv
host=target/debug/examples/gateway-host
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port); https=$(port); backend=$(port)
export DEVENV_STATE_DIR=$work/state HOME=$work
# An environment of its own: no gateway container of another one is touched.
printf 'name: bench-gateway-reload\n' >"$work/devenv.yaml"
export DEVENV_CONFIG=$work/devenv.yaml

# The dev server behind the route: a second nginx answering 200 (fast, so that wrk measures
# the gateway, not the backend).
mkdir -p "$work/backend"
cat >"$work/backend/nginx.conf" <<CONF
worker_processes 1;
events { worker_connections 1024; }
http {
    access_log off;
    server { listen 127.0.0.1:$backend; location / { return 200 "ok\n"; } }
}
CONF
nginx -e stderr -p "$work/backend" -c "$work/backend/nginx.conf" -g "pid $work/backend/nginx.pid; daemon off;" 2>/dev/null & pids+=($!)

"$host" setup "$DEVENV_STATE_DIR" "$work/nginx" "$http" "$https"
nginx -e stderr -p "$work/nginx" -c "$work/nginx/nginx.conf" -g "pid $work/nginx/nginx.pid; daemon off;" >/dev/null 2>"$work/nginx.err" & pids+=($!)
"$devenv" -q routes add bench --to "127.0.0.1:$backend" 2>/dev/null
"$host" apply "$DEVENV_STATE_DIR" "$work/nginx" "$http" "$https" >/dev/null
curl -sf -H 'Host: bench.macula.local' "http://127.0.0.1:$http/" >/dev/null

cat >"$work/count.lua" <<'LUA'
wrk.headers["Host"] = "bench.macula.local"
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
LUA
duration=$(python3 -c "print(int(20 * ($pause + 0.6)) + 4)")
wrk -t2 -c32 --timeout 10s -d"${duration}s" ${WRK_ARGS:-} -s "$work/count.lua" "http://127.0.0.1:$http/" >"$work/wrk.out" & wrk=$!
sleep 2
started=$(date +%s.%N)
for i in $(seq 1 "${RELOADS:-20}"); do
  if (( i % 2 )); then "$devenv" -q routes add "extra$i" --to "127.0.0.1:$backend" 2>/dev/null
  else "$devenv" -q routes rm "extra$((i - 1))" 2>/dev/null; fi
  "$host" apply "$DEVENV_STATE_DIR" "$work/nginx" "$http" "$https" | grep -q Reloaded
  sleep "$pause"
done
echo "20 reloads in $(python3 -c "print(round($(date +%s.%N) - $started, 1))") s" >&2
wait "$wrk"
cat "$work/wrk.out"
result=$(grep '^RESULT' "$work/wrk.out")
case "$result" in
  *"non2xx=0 connect=0 read=0 write=0 timeout=0") echo "PASS: 0 non-2xx, 0 socket errors across 20 reloads" ;;
  *) echo "FAIL: $result" >&2; exit 4 ;;
esac

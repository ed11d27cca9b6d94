#!/usr/bin/env bash
# Reloads under load: load generators drive a route through the gateway's config (rendered by
# devenv, on this host's nginx) while devenv changes the routes 20 times, each change going
# through gateway::apply (nginx -t on the candidate, rename, nginx -s reload, verify).
#
# Two phases of 20 reloads each:
#   keep-alive  wrk (32 connections) and bench/keepalive-client.py (8 connections, the way
#               browsers and HTTP libraries reuse connections) side by side
#   close       wrk with `Connection: close`: every request on a new connection
#
# What a reload does to connections: nginx's old workers finish the requests in flight, then
# close their idle keep-alive connections (a FIN, or a reset when the client's next request
# crossed the close). A client may see that on any keep-alive connection (RFC 9112 9.6) and
# retries the request on a new connection (9.3.1); wrk 4.1 counts each such close as a `read`
# error instead (wg/wrk 8bf0b2e, "handle unexpected EOF as error"). So wrk's `read` count in
# the keep-alive phase is reported, not judged; the client-visible failures are judged:
# PASS needs 0 non-2xx and 0 connect/write/timeout errors from wrk in both phases, 0 read
# errors from wrk in the close phase (where no connection is ever reused), and 0 failures from
# keepalive-client.py (it retries only a request whose reused connection closed before any
# byte of the answer, and counts every other error, a cut-off answer included).
#
# Needs nginx, wrk, curl, python3. Usage: bench/gateway-reload.sh [SECONDS_PER_RELOAD]
# (RELOADS=N for another number of reloads per phase.)
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
# The load runs until the reloads are done (SIGINT stops wrk, which then reports; SIGTERM
# the client), so every reload happens under load however long a reload takes here.
stop_load() { sleep 1; kill -INT "$wrk"; [ -z "${client:-}" ] || kill -TERM "$client"; wait "$wrk"; [ -z "${client:-}" ] || wait "$client"; }
n=0
reloads() {
  sleep 2
  local started i
  started=$(date +%s.%N)
  for i in $(seq 1 "${RELOADS:-20}"); do
    n=$((n + 1))
    if (( n % 2 )); then "$devenv" -q routes add "extra$n" --to "127.0.0.1:$backend" 2>/dev/null
    else "$devenv" -q routes rm "extra$((n - 1))" 2>/dev/null; fi
    "$host" apply "$DEVENV_STATE_DIR" "$work/nginx" "$http" "$https" | grep -q Reloaded
    sleep "$pause"
  done
  echo "${RELOADS:-20} reloads in $(python3 -c "print(round($(date +%s.%N) - $started, 1))") s" >&2
}

# Phase 1: keep-alive.
wrk -t2 -c32 --timeout 10s -d600s -s "$work/count.lua" "http://127.0.0.1:$http/" >"$work/wrk-keepalive.out" & wrk=$!; pids+=("$wrk")
python3 bench/keepalive-client.py "$http" bench.macula.local 600 8 >"$work/client.out" 2>"$work/client.err" & client=$!; pids+=("$client")
reloads
stop_load
keepalive=$(grep '^RESULT' "$work/wrk-keepalive.out")
client_result=$(grep '^RESULT' "$work/client.out")
echo "keep-alive  wrk:                 ${keepalive#RESULT }"
echo "keep-alive  keepalive-client.py: ${client_result#RESULT }"
sed 's/^/  /' "$work/client.err" >&2

# Phase 2: a new connection per request.
wrk -t2 -c32 --timeout 10s -d600s -H 'Connection: close' -s "$work/count.lua" "http://127.0.0.1:$http/" >"$work/wrk-close.out" & wrk=$!; pids+=("$wrk")
client=
reloads
stop_load
close=$(grep '^RESULT' "$work/wrk-close.out")
echo "close       wrk:                 ${close#RESULT }"

fail=
case "$keepalive" in *" non2xx=0 connect=0 read="*" write=0 timeout=0") ;; *) fail=1 ;; esac
case "$close" in *" non2xx=0 connect=0 read=0 write=0 timeout=0") ;; *) fail=1 ;; esac
case "$client_result" in *" failed=0") ;; *) fail=1 ;; esac
if [ -z "$fail" ]; then
  echo "PASS: 0 non-2xx, 0 client-visible socket errors across 2 x ${RELOADS:-20} reloads (wrk's keep-alive read count: idle connections the old workers closed)"
else
  echo "FAIL" >&2; exit 4
fi

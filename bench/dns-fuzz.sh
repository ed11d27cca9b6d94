#!/usr/bin/env bash
# Robustness run: at least a million mutated and malformed UDP packets at `devenv dns serve`
# (forwarding to a local dnsmasq, so the forwarder and its cache are exercised too), checking
# that it keeps answering correctly and that its RSS does not grow.
#
# Usage: bench/dns-fuzz.sh [PACKETS]     (default 1000000)
#        DEVENV_BIN=/path/to/devenv bench/dns-fuzz.sh   (another build of the server)
# Needs: dnsmasq, dig; builds the release binary and the dns_fuzz example.
set -euo pipefail
PACKETS=${1:-1000000}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
cargo build --release --bin devenv --example dns_fuzz
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

up_port=5393
dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
  --listen-address=127.0.0.1 --port=$up_port --pid-file= --user=root --local-ttl=300 \
  --address=/upstream.test/192.0.2.7 --address=/example.com/192.0.2.8 2>"$work/dnsmasq.err" &
pids+=($!)

: > "$work/devenv.yaml"
HOME="$work" DEVENV_STATE_DIR="$work/state" "${DEVENV_BIN:-target/release/devenv}" --config "$work/devenv.yaml" \
  dns serve --port 0 --upstream 127.0.0.1:$up_port >"$work/out" 2>"$work/err" &
pid=$!; pids+=("$pid")
for _ in $(seq 50); do [[ -s "$work/out" ]] && break; sleep 0.1; done
addr=$(head -1 "$work/out")
echo "devenv dns serve (pid $pid) on $addr"

target/release/examples/dns_fuzz "$addr" "$PACKETS" "$pid"

# Still answering both the zone and forwarded names, and still alive.
dig +short @127.0.0.1 -p "${addr##*:}" grafana.macula.local | grep -qx 127.0.0.1
dig +short @127.0.0.1 -p "${addr##*:}" upstream.test | grep -qx 192.0.2.7
kill -0 "$pid"
echo "ok: the server survived and answers; its log has $(wc -l < "$work/err") lines"

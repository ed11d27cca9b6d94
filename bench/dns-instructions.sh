#!/usr/bin/env bash
# Instructions per answered query: devenv's resolver (one or more builds) beside dnsmasq,
# counted by valgrind's callgrind, so the figure does not depend on what else the machine is
# doing (bench/dns.sh measures time, which does).
#
# Each server runs under callgrind; once it answers, its counters are zeroed, dnsperf sends
# QUERIES queries (the mix of bench/dns.sh: infrastructure names, application names, AAAA),
# the counters are dumped, and the instructions executed in between are divided by the
# queries answered.
#
# Usage: bench/dns-instructions.sh [DEVENV_BINARY...]   (default: target/release/devenv)
#        QUERIES=20000 bench/dns-instructions.sh old/devenv new/devenv
# Needs: valgrind (callgrind_control), dnsperf, dnsmasq, dig.
set -euo pipefail

QUERIES=${QUERIES:-10000}
PORT=${PORT:-5393}
here=$(cd "$(dirname "$0")/.." && pwd)
bins=("$@")
[[ ${#bins[@]} -gt 0 ]] || bins=("$here/target/release/devenv")
for t in valgrind callgrind_control dnsperf dnsmasq dig; do
  command -v "$t" >/dev/null || { echo "bench/dns-instructions.sh: $t is not installed" >&2; exit 3; }
done

work=$(mktemp -d)
pid=
cleanup() {
  [[ -n $pid ]] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

# The same records for devenv and dnsmasq, and the query mix (bench/dns-lib.sh).
. "$here/bench/dns-lib.sh"
dns_inputs "$work"
lines=$(wc -l < "$work/queries.txt")
passes=$(( (QUERIES + lines - 1) / lines ))

# measure NAME COMMAND... : start COMMAND under callgrind, count one batch of queries.
measure() {
  local name=$1; shift
  local tag; tag=$(printf '%s' "$name" | tr -c 'A-Za-z0-9' _)
  local out="$work/callgrind.$tag"
  valgrind --tool=callgrind --callgrind-out-file="$out.%p" --dump-instr=no --collect-atstart=yes \
    "$@" >"$work/$tag.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    dig +time=1 +tries=1 +short @127.0.0.1 -p "$PORT" grafana.macula.local >/dev/null 2>&1 && break
    sleep 0.2
  done
  callgrind_control -z "$pid" >/dev/null
  local result answered
  result=$(dnsperf -s 127.0.0.1 -p "$PORT" -d "$work/queries.txt" -n "$passes" -c 1 -q 20 -t 30 2>&1)
  answered=$(awk '/Queries completed:/ { print $3 }' <<<"$result")
  rm -f "$out".*
  callgrind_control -d "$pid" >/dev/null
  sleep 1
  local ir
  # The dump made by -d holds only what ran since -z; summed over the process's threads.
  ir=$(for f in "$out".*; do awk '/^summary:|^totals:/ { print $2; exit }' "$f"; done | awk '{ s += $1 } END { print s + 0 }')
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=
  awk -v n="$name" -v ir="$ir" -v q="$answered" \
    'BEGIN { printf "%-40s %8d answered  %12d instructions  %8.0f per query\n", n, q, ir, (q > 0 ? ir / q : 0) }'
}

echo "instructions per query ($QUERIES queries, one client, under callgrind):"
for b in "${bins[@]}"; do
  HOME="$work" DEVENV_STATE_DIR="$work/state-$(printf '%s' "$b" | tr -c 'A-Za-z0-9' _)" \
    measure "$b" "$b" --config "$work/devenv.yaml" dns serve --port "$PORT" --no-forward
done
measure dnsmasq dnsmasq --keep-in-foreground --conf-file="$work/dnsmasq.conf" --no-resolv --no-hosts \
  --bind-interfaces --listen-address=127.0.0.1 --port="$PORT" --pid-file= --user=root \
  --local-ttl=5 --cache-size=10000

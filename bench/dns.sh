#!/usr/bin/env bash
# Benchmark `devenv dns serve` against dnsmasq serving the same records.
#
# Each server is pinned to CPU 0 with taskset, dnsperf to CPU 1. For 1, 10 and 50 clients,
# REPEAT runs of DURATION seconds each; per run: queries per second, average and max latency
# (dnsperf), server CPU seconds (utime+stime from /proc), queries per server CPU-second, and
# devenv's ratio to dnsmasq. Then one verbose run per server at 50 clients for p50/p99 latency,
# and the servers' resident memory.
#
# Usage: bench/dns.sh            (DURATION=20 REPEAT=3 CLIENTS="1 10 50" by default)
#        DURATION=5 REPEAT=1 bench/dns.sh
#        DEVENV_BIN=/path/to/devenv bench/dns.sh   (another build, e.g. to compare two)
# Needs: dnsperf, dnsmasq, dig, taskset; builds target/release/devenv if missing.
set -euo pipefail

DURATION=${DURATION:-20}
REPEAT=${REPEAT:-3}
CLIENTS=${CLIENTS:-"1 10 50"}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
DEVENV_PORT=${DEVENV_PORT:-5391}
DNSMASQ_PORT=${DNSMASQ_PORT:-5392}

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${DEVENV_BIN:-"$here/target/release/devenv"}
for t in dnsperf dnsmasq dig taskset; do
  command -v "$t" >/dev/null || { echo "bench/dns.sh: $t is not installed" >&2; exit 3; }
done
[[ -x "$bin" ]] || (cd "$here" && cargo build --release --bin devenv)

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The same records for devenv and dnsmasq, and the query mix (bench/dns-lib.sh).
. "$here/bench/dns-lib.sh"
dns_inputs "$work"

HOME="$work" DEVENV_STATE_DIR="$work/state" taskset -c "$SERVER_CPU" \
  "$bin" --config "$work/devenv.yaml" dns serve --port "$DEVENV_PORT" --no-forward >"$work/devenv.out" 2>"$work/devenv.err" &
devenv_pid=$!; pids+=("$devenv_pid")
taskset -c "$SERVER_CPU" dnsmasq --keep-in-foreground --conf-file="$work/dnsmasq.conf" --no-resolv --no-hosts \
  --bind-interfaces --listen-address=127.0.0.1 --port="$DNSMASQ_PORT" --pid-file= --user=root \
  --local-ttl=5 --cache-size=10000 2>"$work/dnsmasq.err" &
dnsmasq_pid=$!; pids+=("$dnsmasq_pid")

# Ready, and the same answers from both.
for _ in $(seq 50); do
  dig +short @127.0.0.1 -p "$DEVENV_PORT" grafana.macula.local >/dev/null 2>&1 && \
  dig +short @127.0.0.1 -p "$DNSMASQ_PORT" grafana.macula.local >/dev/null 2>&1 && break
  sleep 0.2
done
while read -r name type; do
  a=$(dig +short @127.0.0.1 -p "$DEVENV_PORT" "$name" "$type")
  b=$(dig +short @127.0.0.1 -p "$DNSMASQ_PORT" "$name" "$type")
  [[ "$a" == "$b" ]] || { echo "answers differ for $name $type: devenv '$a', dnsmasq '$b'" >&2; exit 1; }
done < "$work/queries.txt"

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run SERVER PID PORT CLIENTS -> "qps avg_ms max_ms cpu_s qpcpu"
run() {
  local pid=$2 port=$3 clients=$4 before after out
  before=$(cpu_ticks "$pid")
  out=$(taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l "$DURATION" -c "$clients" 2>&1)
  after=$(cpu_ticks "$pid")
  echo "$out" | awk -v cpu="$(( after - before ))" -v hz="$ticks" '
    /Queries completed:/ { done = $3 }
    /Queries per second:/ { qps = $4 }
    /Average Latency/ { avg = $4; max = $8; sub(/\)/, "", max) }
    END { c = cpu / hz; printf "%.0f %.3f %.3f %.2f %.0f\n", qps, avg * 1000, max * 1000, c, (c > 0 ? done / c : 0) }'
}

printf "%-8s %7s %3s %10s %9s %9s %8s %12s\n" server clients run qps avg_ms max_ms cpu_s q_per_cpu_s
declare -A sum
for c in $CLIENTS; do
  for r in $(seq "$REPEAT"); do
    for s in devenv dnsmasq; do
      if [[ $s == devenv ]]; then line=$(run devenv "$devenv_pid" "$DEVENV_PORT" "$c"); else line=$(run dnsmasq "$dnsmasq_pid" "$DNSMASQ_PORT" "$c"); fi
      read -r qps avg max cpu qpc <<<"$line"
      printf "%-8s %7s %3s %10s %9s %9s %8s %12s\n" "$s" "$c" "$r" "$qps" "$avg" "$max" "$cpu" "$qpc"
      sum[$s,$c]=$(( ${sum[$s,$c]:-0} + qpc ))
    done
  done
done

echo
echo "queries per server CPU-second (mean of $REPEAT runs of ${DURATION}s), devenv / dnsmasq:"
for c in $CLIENTS; do
  d=$(( sum[devenv,$c] / REPEAT )); m=$(( sum[dnsmasq,$c] / REPEAT ))
  awk -v c="$c" -v d="$d" -v m="$m" 'BEGIN { printf "  %2s clients: devenv %8d  dnsmasq %8d  ratio %.2f\n", c, d, m, (m > 0 ? d / m : 0) }'
done

# Latency percentiles: dnsperf -v prints each answer's latency. Its output goes to a file and
# is sorted afterwards, so that no filter competes with the server or dnsperf for a core
# during the run.
echo
echo "latency at 50 clients (verbose run of ${DURATION}s; p50 / p99 / max, ms):"
for s in devenv dnsmasq; do
  port=$DEVENV_PORT; [[ $s == dnsmasq ]] && port=$DNSMASQ_PORT
  taskset -c "$CLIENT_CPU" dnsperf -v -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l "$DURATION" -c 50 \
    >"$work/verbose.$s" 2>/dev/null
  awk '$1 == ">" { print $NF }' "$work/verbose.$s" | sort -g > "$work/lat.$s"
  rm -f "$work/verbose.$s"
  awk -v s="$s" '{ v[NR] = $1 } END {
      if (NR == 0) { print "  " s ": no samples"; exit }
      p50 = v[int(NR * 0.50) + 1]; p99 = v[int(NR * 0.99) + 1];
      printf "  %-8s p50 %.3f  p99 %.3f  max %.3f  (%d answers)\n", s, p50 * 1000, p99 * 1000, v[NR] * 1000, NR }' "$work/lat.$s"
done

echo
for s in devenv dnsmasq; do
  pid=$devenv_pid; [[ $s == dnsmasq ]] && pid=$dnsmasq_pid
  awk -v s="$s" '/VmRSS|VmHWM/ { printf "  %-8s %s %s %s\n", s, $1, $2, $3 }' "/proc/$pid/status"
done

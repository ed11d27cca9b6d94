#!/bin/sh
# Benchmark: `devenv up --only cluster` from nothing with provider kind, on the real control
# plane of the cluster tier (etcd, kube-apiserver, controller-manager and scheduler v1.20.2 from
# Debian's sources), through the fake kind (tests/support/fake-kind): real node containers whose
# 6443 relays to that API server, kubelets played by the node agent, the lookup pod run for real
# against BIND (examples/controlplane.rs --fake-kind). Then `down` and `up` again (the node
# started, the API waited for through the node's start-up delay, Traefik's pods run again), and
# `down --purge`.
#
#   bench/cluster-kind-real.sh [RUNS]    (default 5; prints medians)
#
# Still simulated, so the figures are devenv's part and the fake's, not kind's: the nodes' boot
# (kind's takes 20-40 s; the fake's API answers FAKE_KIND_API_DELAY = 3 s after the container
# starts, and that wait is inside both figures), image pulls (none), the pods' containers (none
# but the lookup's).
# Needs: cargo, etcd (etcd-server), docker, python3 with PyYAML, busybox-static, the binaries of
# tests/support/controlplane/build.sh and the images of tests/support/realimages/build.sh.
set -eu
runs=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --quiet --bin devenv
cargo build --quiet --example controlplane
devenv="$root/target/release/devenv"
work=$(mktemp -d)
plane_pid=
trap '[ -f "$work/env/devenv.yaml" ] && dv down --purge --yes >/dev/null 2>&1; [ -n "$plane_pid" ] && kill "$plane_pid" 2>/dev/null; rm -rf "$work"' EXIT
target/debug/examples/controlplane --fake-kind > "$work/plane.out" 2> "$work/plane.err" &
plane_pid=$!
for _ in $(seq 900); do grep -q READY "$work/plane.out" 2>/dev/null && break; sleep 0.2; done
grep -q READY "$work/plane.out" || { cat "$work/plane.err" >&2; exit 3; }
eval "$(grep '^export ' "$work/plane.out")"

d="$work/env"; mkdir -p "$d/home"
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# The cluster alone: no registry to wire into the nodes, no gateway (the lookup resolves the
# application name only).
printf 'name: benchkind\nrouting:\n  mode: ports\ncluster:\n  provider: kind\n  http_port: %s\n  https_port: %s\n  quic_port: %s\nservices:\n  registry:\n    enabled: false\n  registry-ui:\n    enabled: false\n  gateway:\n    enabled: false\n' \
  "$(free)" "$(free)" "$(free)" > "$d/devenv.yaml"
dv() { (cd "$d" && HOME="$d/home" DEVENV_STATE_DIR="$d/state" DEVENV_KUBECONFIG="$d/kubeconfig" \
        DEVENV_KIND="$root/tests/support/fake-kind" NO_COLOR=1 "$devenv" -q "$@"); }

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: > "$work/cold"; : > "$work/again"; : > "$work/create"
for _ in $(seq "$runs"); do
  s=$(now); dv up --only cluster --timeout 180 >/dev/null; e=$(now); ms "$s" "$e" >> "$work/cold"
  dv down >/dev/null
  s=$(now); dv up --only cluster --timeout 180 >/dev/null; e=$(now); ms "$s" "$e" >> "$work/again"
  dv down --purge --yes >/dev/null
  # The fake kind's own share of a cold up: creating the cluster alone.
  s=$(now)
  (cd "$d" && "$root/tests/support/fake-kind" create cluster --name benchkind-k \
     --kubeconfig "$work/k.kubeconfig" -q >/dev/null 2>&1)
  e=$(now); ms "$s" "$e" >> "$work/create"
  "$root/tests/support/fake-kind" delete cluster --name benchkind-k --kubeconfig "$work/k.kubeconfig" -q >/dev/null 2>&1
done
echo "up --only cluster with the fake kind on the real API server, median of $runs:"
echo "  from nothing            $(median < "$work/cold") ms   (of which fake kind create $(median < "$work/create") ms, and the node's 3 s API delay)"
echo "  after down (start)      $(median < "$work/again") ms   (the 3 s API delay, a heartbeat since the start, Traefik's pods again)"

#!/bin/sh
# Benchmark: `devenv up` of two revisions of devenv side by side in one run, on the same
# stand-in images (tests/support/standin) and the same devenv.yaml: what a change (a refactor,
# say) costs, with nothing else between the two figures.
#
#   bench/up-versions.sh REV_A REV_B [RUNS]   (default 5 runs; prints medians)
#
# Each revision is built in release mode in a temporary git worktree; the build cache is kept
# in $BENCH_TARGET (default /tmp/devenv-bench-target), so a second run builds nothing. Each run
# measures, alternating A and B so that load on the machine falls on both alike:
#   cold   from nothing (no containers, networks, volumes) until every service is healthy;
#   no-op  a rerun with everything already up, once Docker itself reports every container
#          healthy. (devenv answers `up` as soon as its own checks pass; Docker's first
#          healthcheck of a container comes up to one interval later, and a rerun before it
#          waits for Docker's verdict. Right after a cold `up` the no-op therefore measures
#          Docker's healthcheck timing, not devenv; bench/up.sh measures that immediate rerun.)
# The devenv.yaml is the one bench/up.sh uses (every port unpublished, the stand-in image for
# every service), with `cluster: provider: none` for revisions that know a cluster and without
# it for those that came before; both revisions get the same services.
# Needs: git, cargo, docker (engine + CLI), /bin/busybox (busybox-static).
set -eu
[ $# -ge 2 ] || { echo "usage: bench/up-versions.sh REV_A REV_B [RUNS]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${3:-5}
target=${BENCH_TARGET:-/tmp/devenv-bench-target}
cd "$root"
work=$(mktemp -d)
cleanup() {
  for side in a b; do
    [ -x "$work/$side.bin" ] && (cd "$work/$side" && "$work/$side.bin" down --purge --yes >/dev/null 2>&1) || true
    [ -d "$work/tree-$side" ] && git -C "$root" worktree remove --force "$work/tree-$side" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

build() { # side rev
  rev=$(git rev-parse --verify "$2^{commit}")
  git worktree add --detach --quiet "$work/tree-$1" "$rev"
  (cd "$work/tree-$1" && CARGO_TARGET_DIR="$target" cargo build --release --locked --quiet)
  cp "$target/release/devenv" "$work/$1.bin"
  echo "$1 = $2 ($(git log -1 --format='%h %s' "$rev" | cut -c1-90))" >&2
}
build a "$1"
build b "$2"
docker network inspect kind >/dev/null 2>&1 || docker network create kind >/dev/null
image=$(sh tests/support/standin/build.sh devenv-test/standin:v1)

services="registry:api registry-ui:http pdns-db:postgres pdns:dns,api pdns-admin:http prometheus:http loki:http tempo:http,otlp-grpc,otlp-http grafana:http minio:api,console timescaledb:postgres excalidraw:http gateway:http"
config() { # name subnet cluster(yes|no) -> devenv.yaml on stdout
  printf 'name: %s\nnetwork:\n  subnet: %s\n' "$1" "$2"
  [ "$3" = yes ] && printf 'cluster:\n  provider: none\n'
  printf 'services:\n'
  for s in $services; do
    printf '  %s:\n    image: "%s"\n    ports:\n' "${s%%:*}" "$image"
    for p in $(echo "${s#*:}" | tr , ' '); do printf '      %s: 0\n' "$p"; done
  done
}
prepare() { # side name subnet
  mkdir -p "$work/$1"
  config "$2" "$3" yes > "$work/$1/devenv.yaml"
  if ! (cd "$work/$1" && "$work/$1.bin" render --out "$work/$1/check" >/dev/null 2>&1); then
    config "$2" "$3" no > "$work/$1/devenv.yaml"
  fi
  rm -rf "$work/$1/check"
}
prepare a benchva 10.214.3.0/24
prepare b benchvb 10.214.4.0/24

ms() { # side args... -> elapsed milliseconds of devenv ARGS in that side's directory
  side=$1; shift
  start=$(date +%s%N)
  if ! (cd "$work/$side" && DEVENV_STATE_DIR="$work/$side/state" "$work/$side.bin" "$@") >"$work/out" 2>&1; then
    echo "bench: $side: devenv $* failed:" >&2; cat "$work/out" >&2; exit 1
  fi
  end=$(date +%s%N)
  echo $(( (end - start) / 1000000 ))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
settle() { # project: until Docker reports none of its containers' health as starting
  while docker ps --filter "label=dev.devenv.project=$1" --format '{{.Status}}' | grep -q 'starting'; do
    sleep 0.2
  done
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)" >&2
for f in ac bc an bn; do : > "$work/$f"; done
i=0
while [ "$i" -lt "$runs" ]; do
  i=$((i + 1))
  for side in a b; do
    (cd "$work/$side" && DEVENV_STATE_DIR="$work/$side/state" "$work/$side.bin" down --purge --yes >/dev/null 2>&1) || true
  done
  ms a up >> "$work/ac"
  ms b up >> "$work/bc"
  settle benchva; settle benchvb
  ms a up >> "$work/an"
  ms b up >> "$work/bn"
  echo "run $i: A cold $(tail -1 "$work/ac") ms, B cold $(tail -1 "$work/bc") ms, A no-op $(tail -1 "$work/an") ms, B no-op $(tail -1 "$work/bn") ms (load $(cut -d' ' -f1 /proc/loadavg))" >&2
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
ac=$(median < "$work/ac"); bc=$(median < "$work/bc"); an=$(median < "$work/an"); bn=$(median < "$work/bn")
printf '%-8s %10s %10s %8s\n' measure A_ms B_ms B/A
printf '%-8s %10s %10s %8s\n' cold "$ac" "$bc" "$(awk "BEGIN{printf \"%.2f\", $bc/$ac}")"
printf '%-8s %10s %10s %8s\n' no-op "$an" "$bn" "$(awk "BEGIN{printf \"%.2f\", $bn/$an}")"

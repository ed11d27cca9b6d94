#!/bin/sh
# Benchmark: `devenv up` against `docker-compose up -d` on the compose file devenv renders,
# side by side in one run, with the same local images (the busybox stand-in of
# tests/support/standin, since no registry is reachable here).
#
#   bench/up.sh [RUNS]        (default 5 runs of each measurement; prints medians)
#
# Measured:
#   cold   from nothing (no containers, networks, volumes) to up. devenv waits until every
#          service is healthy; docker-compose returns once the containers are started (it
#          waits only for the health of dependencies), so devenv does more work in its time.
#   no-op  a rerun with everything already up.
# Targets (issue 3): no-op < 300 ms and <= 0.25x compose's; cold <= 0.7x compose's.
# Needs: docker (engine + CLI), docker-compose, /bin/busybox (busybox-static), cargo.
set -eu
runs=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --quiet
devenv="$root/target/release/devenv"
image=$(sh tests/support/standin/build.sh devenv-test/standin:v1)
docker network inspect kind >/dev/null 2>&1 || docker network create kind >/dev/null

work=$(mktemp -d)
services="registry:api registry-ui:http pdns-db:postgres pdns:dns,api pdns-admin:http prometheus:http loki:http tempo:http,otlp-grpc,otlp-http grafana:http minio:api,console timescaledb:postgres excalidraw:http gateway:http"
config() { # name subnet -> devenv.yaml on stdout, every port unpublished, the stand-in image
  printf 'name: %s\ncluster:\n  provider: none\nnetwork:\n  subnet: %s\nservices:\n' "$1" "$2"
  for s in $services; do
    printf '  %s:\n    image: "%s"\n    ports:\n' "${s%%:*}" "$image"
    for p in $(echo "${s#*:}" | tr , ' '); do printf '      %s: 0\n' "$p"; done
  done
}
mkdir -p "$work/d" "$work/c"
config benchd 10.214.1.0/24 > "$work/d/devenv.yaml"
config benchc 10.214.2.0/24 > "$work/c/devenv.yaml"
export DEVENV_STATE_DIR="$work/d/state"
d() { (cd "$work/d" && "$devenv" "$@"); }
# The compose side: devenv renders, docker-compose runs it (secrets from a generated file).
(cd "$work/c" && "$devenv" render --out . >/dev/null 2>&1)
for v in PDNS_DB_PASSWORD PDNS_API_KEY PDNS_ADMIN_SECRET_KEY GRAFANA_ADMIN_PASSWORD MINIO_ROOT_PASSWORD TIMESCALE_PASSWORD; do
  echo "DEVENV_$v=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
done > "$work/c/secrets.env"
c() { (cd "$work/c" && set -a && . compose/infra.env && set +a &&
       docker-compose -p benchc --env-file secrets.env -f compose/infra.yaml "$@"); }

cleanup() {
  d down --purge --yes >/dev/null 2>&1 || true
  c down -v >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

ms() { # command... -> elapsed milliseconds on stdout
  start=$(date +%s%N)
  if ! "$@" >"$work/out" 2>&1; then
    echo "bench: $* failed:" >&2; cat "$work/out" >&2; exit 1
  fi
  end=$(date +%s%N)
  echo $(( (end - start) / 1000000 ))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: > "$work/dc"; : > "$work/cc"; : > "$work/dn"; : > "$work/cn"
i=0
while [ "$i" -lt "$runs" ]; do
  i=$((i + 1))
  d down --purge --yes >/dev/null 2>&1; c down -v >/dev/null 2>&1 || true
  ms d up >> "$work/dc"
  ms c up -d >> "$work/cc"
  ms d up >> "$work/dn"
  ms c up -d >> "$work/cn"
  echo "run $i: devenv cold $(tail -1 "$work/dc") ms, compose cold $(tail -1 "$work/cc") ms, devenv no-op $(tail -1 "$work/dn") ms, compose no-op $(tail -1 "$work/cn") ms" >&2
done
dc=$(median < "$work/dc"); cc=$(median < "$work/cc"); dn=$(median < "$work/dn"); cn=$(median < "$work/cn")
printf '%-8s %12s %16s %8s %s\n' measure devenv_ms docker-compose_ms ratio target
printf '%-8s %12s %16s %8s %s\n' cold "$dc" "$cc" "$(awk "BEGIN{printf \"%.2f\", $dc/$cc}")" "<= 0.70"
printf '%-8s %12s %16s %8s %s\n' no-op "$dn" "$cn" "$(awk "BEGIN{printf \"%.2f\", $dn/$cn}")" "<= 0.25 and < 300 ms"

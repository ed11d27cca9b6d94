#!/bin/sh
# Benchmark: `devenv up` against `docker-compose up -d` on the compose file devenv renders, side
# by side in one run, on the core tier's REAL programs (nginx, the Distribution registry,
# PostgreSQL, PowerDNS with its pgsql backend, Prometheus: the Debian-package images of
# tests/support/realimages; registry-ui and PowerDNS-Admin have no Debian package and are off,
# as are the other tiers). bench/up.sh measures the whole platform on the busybox stand-in.
#
#   bench/up-real.sh [RUNS]        (default 3 runs of each measurement; prints medians)
#
# Measured:
#   cold   from nothing (no containers, networks, volumes: Postgres initialises its database and
#          loads the PowerDNS schema) to up. devenv waits until every service is healthy;
#          docker-compose returns once the containers are started (it waits only for the health
#          of dependencies, here pdns-db before pdns), so devenv does more work in its time.
#   no-op  a rerun with everything already up.
# Needs: docker (engine + CLI), docker-compose, cargo, and what build.sh needs when the images
# are not built yet (root, debootstrap).
set -eu
runs=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --quiet
devenv="$root/target/release/devenv"
images=$(bash tests/support/realimages/build.sh)
image() { echo "$images" | awk -v p="$1" '$1 == p { print $2 }'; }
docker network inspect kind >/dev/null 2>&1 || docker network create kind >/dev/null

work=$(mktemp -d)
config() { # name subnet -> devenv.yaml on stdout: the real programs, nothing published
  printf 'name: %s\nnetwork:\n  subnet: %s\nservices:\n' "$1" "$2"
  printf '  gateway: {image: "%s", ports: {http: 0}}\n' "$(image gateway)"
  printf '  registry: {image: "%s", ports: {api: 0}}\n' "$(image registry)"
  printf '  pdns-db: {image: "%s"}\n' "$(image postgres)"
  printf '  pdns: {image: "%s", ports: {dns: 0}}\n' "$(image pdns)"
  printf '  prometheus: {image: "%s", ports: {http: 0}}\n' "$(image prometheus)"
  for s in registry-ui pdns-admin loki tempo grafana minio timescaledb excalidraw; do
    printf '  %s: {enabled: false}\n' "$s"
  done
}
mkdir -p "$work/d" "$work/c"
config benchrd 10.214.11.0/24 > "$work/d/devenv.yaml"
config benchrc 10.214.12.0/24 > "$work/c/devenv.yaml"
export DEVENV_STATE_DIR="$work/d/state"
d() { (cd "$work/d" && "$devenv" "$@"); }
# The compose side: devenv renders, docker-compose runs it (secrets from a generated file).
(cd "$work/c" && "$devenv" render --out . >/dev/null 2>&1)
for v in PDNS_DB_PASSWORD PDNS_API_KEY PDNS_ADMIN_SECRET_KEY GRAFANA_ADMIN_PASSWORD MINIO_ROOT_PASSWORD TIMESCALE_PASSWORD; do
  echo "DEVENV_$v=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
done > "$work/c/secrets.env"
c() { (cd "$work/c" && set -a && . compose/infra.env && set +a &&
       docker-compose -p benchrc --env-file secrets.env -f compose/infra.yaml "$@"); }

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

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)" >&2
: > "$work/dc"; : > "$work/cc"; : > "$work/dn"; : > "$work/cn"
i=0
while [ "$i" -lt "$runs" ]; do
  i=$((i + 1))
  d down --purge --yes >/dev/null 2>&1; c down -v >/dev/null 2>&1 || true
  ms d up >> "$work/dc"
  ms c up -d >> "$work/cc"
  ms d up >> "$work/dn"
  ms c up -d >> "$work/cn"
  echo "run $i: devenv cold $(tail -1 "$work/dc") ms, compose cold $(tail -1 "$work/cc") ms, devenv no-op $(tail -1 "$work/dn") ms, compose no-op $(tail -1 "$work/cn") ms (load $(cut -d' ' -f1 /proc/loadavg))" >&2
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
dc=$(median < "$work/dc"); cc=$(median < "$work/cc"); dn=$(median < "$work/dn"); cn=$(median < "$work/cn")
printf '%-8s %12s %16s %8s\n' measure devenv_ms docker-compose_ms ratio
printf '%-8s %12s %16s %8s\n' cold "$dc" "$cc" "$(awk "BEGIN{printf \"%.2f\", $dc/$cc}")"
printf '%-8s %12s %16s %8s\n' no-op "$dn" "$cn" "$(awk "BEGIN{printf \"%.2f\", $dn/$cn}")"

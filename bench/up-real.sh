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
# are not built yet (root, debootstrap). The shared part (build, work directories, timing,
# medians) is bench/lib.sh.
set -eu
runs=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
bench_build
images=$(bash tests/support/realimages/build.sh)
image() { echo "$images" | awk -v p="$1" '$1 == p { print $2 }'; }

config() { # name subnet -> devenv.yaml on stdout: the real programs, nothing published
  printf 'name: %s\ncluster:\n  provider: none\nnetwork:\n  subnet: %s\nservices:\n' "$1" "$2"
  printf '  gateway: {image: "%s", ports: {http: 0, https: 0}}\n' "$(image gateway)"
  printf '  registry: {image: "%s", ports: {api: 0}}\n' "$(image registry)"
  printf '  pdns-db: {image: "%s"}\n' "$(image postgres)"
  printf '  pdns: {image: "%s", ports: {dns: 0}}\n' "$(image pdns)"
  printf '  prometheus: {image: "%s", ports: {http: 0}}\n' "$(image prometheus)"
  for s in registry-ui pdns-admin loki tempo grafana minio timescaledb excalidraw; do
    printf '  %s: {enabled: false}\n' "$s"
  done
}
bench_prepare benchrd 10.214.11.0/24 benchrc 10.214.12.0/24
bench_run "$runs"
bench_report

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
# Beside the 13 built-ins run OWN (default 5) services of one's own (busybox httpd on the
# stand-in image, each with a named volume, a command healthcheck and a hostname).
# Targets (issues 3 and 18): no-op < 300 ms and <= 0.25x compose's; cold <= 0.7x compose's.
# Needs: docker (engine + CLI), docker-compose, /bin/busybox (busybox-static), cargo. The shared
# part (build, work directories, timing, medians) is bench/lib.sh.
set -eu
runs=${1:-5}
own=${OWN:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
bench_build
image=$(sh tests/support/standin/build.sh devenv-test/standin:v1)

services="registry:api registry-ui:http pdns-db:postgres pdns:dns,api pdns-admin:http prometheus:http loki:http tempo:http,otlp-grpc,otlp-http grafana:http minio:api,console timescaledb:postgres excalidraw:http gateway:http,https"
config() { # name subnet -> devenv.yaml on stdout, every port unpublished, the stand-in image
  printf 'name: %s\ncluster:\n  provider: none\nnetwork:\n  subnet: %s\nservices:\n' "$1" "$2"
  for s in $services; do
    printf '  %s:\n    image: "%s"\n    ports:\n' "${s%%:*}" "$image"
    for p in $(echo "${s#*:}" | tr , ' '); do printf '      %s: 0\n' "$p"; done
  done
  i=1
  while [ "$i" -le "$own" ]; do
    printf '  app%s:\n    image: "%s"\n    entrypoint: [httpd, -f, -p, "8080", -h, /etc]\n' "$i" "$image"
    printf '    ports:\n      http: {container: 8080, host: 0}\n    volumes: ["data:/data"]\n'
    printf '    healthcheck: {command: [wget, -q, -O, /dev/null, "http://127.0.0.1:8080/hostname"], interval: 1}\n'
    printf '    hostnames: [app%s]\n' "$i"
    i=$((i + 1))
  done
}
bench_prepare benchd 10.214.1.0/24 benchc 10.214.2.0/24
bench_run "$runs"
bench_report "<= 0.70" "<= 0.25 and < 300 ms"

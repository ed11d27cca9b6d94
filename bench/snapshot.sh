#!/bin/sh
# Benchmark: `devenv snapshot save` / `restore` of a ~1 GB PostgreSQL database against
# `pg_dump -Fc` / `pg_restore` run by hand on the same database, side by side in one run, on
# the real PostgreSQL (the Debian-package image of tests/support/realimages, as `timescaledb`).
#
#   bench/snapshot.sh [RUNS] [ROWS]     (default 3 runs; 6000000 rows, about 1 GB with its index)
#
# Measured, each a median of RUNS:
#   save      devenv: stop the service, stream the volume through zstd, start it, wait healthy.
#             by hand: `pg_dump -Fc` of the database to a file on the host (the server keeps
#             running; its default compression).
#   restore   devenv: check the checksums, copy the volume aside, replace it, start the service,
#             wait healthy (the whole cluster: every database, role and setting).
#             by hand: `pg_restore --clean --if-exists` of that file (one database; indexes
#             are rebuilt).
#   size      of the snapshot's files and of the dump.
# Needs: docker, cargo, and what build.sh needs when the images are not built yet.
set -eu
runs=${1:-3}
rows=${2:-6000000}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ -n "${BENCH_DEVENV:-}" ]; then
  devenv=$BENCH_DEVENV
else
  cargo build --release --quiet
  devenv="${CARGO_TARGET_DIR:-$root/target}/release/devenv"
fi
images=$(bash tests/support/realimages/build.sh)
postgres=$(echo "$images" | awk '$1 == "postgres" { print $2 }')
docker network inspect kind >/dev/null 2>&1 || docker network create kind >/dev/null

work=$(mktemp -d)
export DEVENV_STATE_DIR="$work/state"
d() { (cd "$work" && "$devenv" "$@"); }
cleanup() { d down --purge --yes --snapshots >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
{
  printf 'name: benchsnap\ncluster:\n  provider: none\ndns:\n  enabled: false\nnetwork:\n  subnet: 10.214.21.0/24\nservices:\n'
  printf '  timescaledb: {enabled: true, image: "%s", ports: {postgres: 0}}\n' "$postgres"
  for s in gateway registry registry-ui pdns-db pdns pdns-admin prometheus loki tempo grafana minio excalidraw; do
    printf '  %s: {enabled: false}\n' "$s"
  done
} > "$work/devenv.yaml"

d up --pull never >/dev/null 2>&1
container=$(docker ps --filter label=dev.devenv.project=benchsnap --filter label=dev.devenv.service=timescaledb --format '{{.Names}}')
password=$(sed -n 's/^DEVENV_TIMESCALE_PASSWORD=//p' "$work/state/secrets.env")
psql() { docker exec -e PGPASSWORD="$password" "$container" psql -h 127.0.0.1 -U devenv -d devenv -v ON_ERROR_STOP=1 -tAc "$1"; }
psql "create table big as select g as id, md5(g::text) as a, md5((g * 7)::text) as b, now() as t from generate_series(1, $rows) g; create index on big (a); checkpoint;" >/dev/null
echo "database: $(psql "select pg_size_pretty(pg_database_size('devenv'))"), $rows rows"

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
median() { sort -n | awk '{ a[NR] = $1 } END { m = a[int((NR + 1) / 2)]; printf "%.1f", m }'; }
for i in $(seq 1 "$runs"); do
  t=$(now); d snapshot save "s$i" >/dev/null 2>&1; echo "$(since "$t")" >> "$work/save"
  # The container is re-created by restore: look it up again afterwards.
  t=$(now); d snapshot restore "s$i" >/dev/null 2>&1; echo "$(since "$t")" >> "$work/restore"
  container=$(docker ps --filter label=dev.devenv.project=benchsnap --filter label=dev.devenv.service=timescaledb --format '{{.Names}}')
  [ "$(psql 'select count(*) from big')" = "$rows" ] || { echo "restore lost rows" >&2; exit 1; }
  t=$(now)
  docker exec -e PGPASSWORD="$password" "$container" pg_dump -h 127.0.0.1 -U devenv -Fc devenv > "$work/dump"
  echo "$(since "$t")" >> "$work/dump-time"
  t=$(now)
  docker exec -i -e PGPASSWORD="$password" "$container" pg_restore -h 127.0.0.1 -U devenv --clean --if-exists -d devenv < "$work/dump"
  echo "$(since "$t")" >> "$work/pgrestore-time"
  [ "$(psql 'select count(*) from big')" = "$rows" ] || { echo "pg_restore lost rows" >&2; exit 1; }
done
snap=$(du -sb "$work/state/snapshots/s1" | cut -f1)
dump=$(stat -c %s "$work/dump")
printf '%-10s %12s %12s\n' "" "devenv" "pg_dump/pg_restore"
printf '%-10s %11ss %11ss\n' save "$(median < "$work/save")" "$(median < "$work/dump-time")"
printf '%-10s %11ss %11ss\n' restore "$(median < "$work/restore")" "$(median < "$work/pgrestore-time")"
# What the volume held (the data directory: the tables, their indexes and the WAL) against what
# the dump holds (the rows and the definitions of the indexes).
stream=$(python3 -c 'import json,sys; print(sum(v["bytes"] for v in json.load(open(sys.argv[1]))["volumes"]))' "$work/state/snapshots/s1/manifest.json")
printf '%-10s %10sMB %10sMB\n' size "$((snap / 1000000))" "$((dump / 1000000))"
printf '%-10s %10sMB %12s\n' volume "$((stream / 1000000))" "-"
echo "($runs runs each, medians)"

# The part bench/up.sh and bench/up-real.sh share, sourced by both (not run on its own): build
# devenv, prepare one work directory for devenv and one for docker-compose running the file
# devenv renders, time cold and no-op runs side by side, print medians.
#
# The caller sets `root` (the checkout) and defines `config NAME SUBNET`, which writes a
# devenv.yaml on stdout; then calls, in order:
#   bench_build                       devenv's release binary into $devenv
#   bench_prepare D_NAME D_SUBNET C_NAME C_SUBNET
#   bench_run RUNS
#   bench_report [COLD_TARGET NOOP_TARGET]
# BENCH_DEVENV=path uses that devenv binary instead of building one (a quick check of the
# scripts themselves with a debug build; its figures are not the release's).

bench_build() {
  cd "$root"
  if [ -n "${BENCH_DEVENV:-}" ]; then
    devenv=$BENCH_DEVENV
  else
    cargo build --release --quiet
    devenv="$root/target/release/devenv"
  fi
  docker network inspect kind >/dev/null 2>&1 || docker network create kind >/dev/null
}

bench_prepare() { # devenv's name and subnet, compose's name and subnet
  work=$(mktemp -d)
  compose_project=$3
  trap bench_cleanup EXIT
  mkdir -p "$work/d" "$work/c"
  config "$1" "$2" > "$work/d/devenv.yaml"
  config "$3" "$4" > "$work/c/devenv.yaml"
  export DEVENV_STATE_DIR="$work/d/state"
  # The compose side: devenv renders, docker-compose runs it (secrets from a generated file).
  (cd "$work/c" && "$devenv" render --out . >/dev/null 2>&1)
  for v in PDNS_DB_PASSWORD PDNS_API_KEY PDNS_ADMIN_SECRET_KEY GRAFANA_ADMIN_PASSWORD MINIO_ROOT_PASSWORD TIMESCALE_PASSWORD; do
    echo "DEVENV_$v=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  done > "$work/c/secrets.env"
}

d() { (cd "$work/d" && "$devenv" "$@"); }
c() { (cd "$work/c" && set -a && . compose/infra.env && set +a &&
       docker-compose -p "$compose_project" --env-file secrets.env -f compose/infra.yaml "$@"); }

bench_cleanup() {
  d down --purge --yes >/dev/null 2>&1 || true
  c down -v >/dev/null 2>&1 || true
  rm -rf "$work"
}

ms() { # command... -> elapsed milliseconds on stdout
  start=$(date +%s%N)
  if ! "$@" >"$work/out" 2>&1; then
    echo "bench: $* failed:" >&2; cat "$work/out" >&2; exit 1
  fi
  end=$(date +%s%N)
  echo $(( (end - start) / 1000000 ))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

bench_run() { # runs
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)" >&2
  : > "$work/dc"; : > "$work/cc"; : > "$work/dn"; : > "$work/cn"
  i=0
  while [ "$i" -lt "$1" ]; do
    i=$((i + 1))
    d down --purge --yes >/dev/null 2>&1; c down -v >/dev/null 2>&1 || true
    ms d up >> "$work/dc"
    ms c up -d >> "$work/cc"
    ms d up >> "$work/dn"
    ms c up -d >> "$work/cn"
    echo "run $i: devenv cold $(tail -1 "$work/dc") ms, compose cold $(tail -1 "$work/cc") ms, devenv no-op $(tail -1 "$work/dn") ms, compose no-op $(tail -1 "$work/cn") ms (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  done
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
}

bench_report() { # [cold target, no-op target]
  dc=$(median < "$work/dc"); cc=$(median < "$work/cc"); dn=$(median < "$work/dn"); cn=$(median < "$work/cn")
  printf '%-8s %12s %16s %8s %s\n' measure devenv_ms docker-compose_ms ratio "${1:+target}"
  printf '%-8s %12s %16s %8s %s\n' cold "$dc" "$cc" "$(awk "BEGIN{printf \"%.2f\", $dc/$cc}")" "${1:-}"
  printf '%-8s %12s %16s %8s %s\n' no-op "$dn" "$cn" "$(awk "BEGIN{printf \"%.2f\", $dn/$cn}")" "${2:-}"
}

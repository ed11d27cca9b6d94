#!/usr/bin/env bash
# Build local Docker images of the REAL programs behind devenv's core tier, from Debian packages
# and without any image registry, for tests/real_programs.rs and bench/up-real.sh:
#
#   gateway     nginx-light + libnginx-mod-stream (stands in for nginx:1.30.5-alpine, whose
#               stream module is built in)
#   registry    docker-registry      (Distribution 2.8; stands in for registry:3.1.2)
#   postgres    postgresql-15        (stands in for postgres:16.15-alpine, the pdns-db service)
#   pdns        pdns-server 4.7 + pdns-backend-pgsql (stands in for powerdns/pdns-auth-51:5.1.4)
#   prometheus  prometheus 2.42      (stands in for prom/prometheus:v3.15.0)
#   redis       redis-server 7.0     (a user service's image in tests: redis:<tag> stands for it)
#   rabbitmq    rabbitmq-server 3.10 (the same, for rabbitmq:<tag>)
#   named       bind9 9.18           (no devenv service: the real DNS server that answers the
#               cluster's zone to devenv's lookup pod on the real control plane, in place of
#               CoreDNS, which cannot run here; tests/support/controlplane/agent/runner.rs)
#
# No Debian package exists for registry-ui (joxit/docker-registry-ui) or PowerDNS-Admin, so the
# real-program tests leave those two services disabled.
#
# How: debootstrap a minimal bookworm root (--variant=minbase) from the Debian mirror apt uses
# on this machine, install every package above into it (plus busybox-static for the
# healthchecks' `wget`, tini for PowerDNS as in its image), trim what no test runs (docs,
# locales, apt lists, Postgres's LLVM JIT, the 210 MB of moment-timezone data in Prometheus's
# classic UI), and `docker import` it once as a shared base. Each program's image is that base
# plus rootfs/ (a layer of a few KB: the stand-ins for the upstream entrypoint scripts, the
# registry's config) and its own metadata (entrypoint, command, user, environment), made with
# `docker commit`, so the program images share one copy of the base on disk. One root with everything
# is faster and smaller than one root per program: one debootstrap (50 s on a quiet machine) and
# one apt run (55 s), where one root per program would repeat the minimal system (about 130 MB once
# trimmed) and its setup for each. Measured on the 2-core CI machine under a load of 6-7: a
# cold build takes 3-4.5 minutes (the base 184-251 s, then about 4 s per program image).
#
# Images are tagged with a hash of their recipe, so a rebuild happens only when the recipe
# changes; the Docker engine keeps them between runs, and a run whose tags all exist does
# nothing (about 0.2 s). Images of an older recipe (devenv-real/*:<other hash>) are removed after
# a successful build.
#
#   build.sh            build what is missing; print "<program> <image>" per program
#   build.sh --check    exit 0 when every image exists, 1 otherwise; build nothing
#
# Environment: DEVENV_DEBIAN_MIRROR overrides the mirror (default: the one apt's sources name for
# bookworm, else http://deb.debian.org/debian). Needs root (debootstrap, chroot), debootstrap,
# docker, flock.
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
repo=devenv-real
programs=(gateway registry postgres pdns prometheus named redis rabbitmq)
packages=(nginx-light libnginx-mod-stream docker-registry postgresql pdns-server pdns-backend-pgsql prometheus
          bind9 redis-server redis-tools rabbitmq-server busybox-static tini)

# Two hashes, so that editing an entrypoint script or an image's metadata does not rebuild the
# Debian root: the base's covers what goes into it (suite, packages, build_base below), each
# program's covers the base's, rootfs/ and its metadata (changes below).
recipe_hash() { sha256sum | cut -c1-12; }
base_hash() { { echo "$suite ${packages[*]}"; declare -f build_base; } | recipe_hash; }
program_hash() {
  { echo "$(base_hash)"; declare -f changes
    (cd "$here" && find rootfs -print0 | LC_ALL=C sort -z | xargs -0 stat -c '%n %a' &&
       find rootfs -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); } | recipe_hash
}
# Set once every function is defined (see below the functions).
base_h=; program_h=
tag() { if [ "$1" = base ]; then echo "$repo/base:$base_h"; else echo "$repo/$1:$program_h"; fi; }
say() { echo "realimages: $*" >&2; }

# The mirror apt uses for $suite: deb822 .sources first, then one-line .list files.
mirror() {
  if [ -n "${DEVENV_DEBIAN_MIRROR:-}" ]; then echo "$DEVENV_DEBIAN_MIRROR"; return; fi
  local found=
  shopt -s nullglob
  for f in /etc/apt/sources.list.d/*.sources; do
    found=$(awk -v suite="$suite" '
      BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/) types = substr($i, 7)
          if ($i ~ /^URIs:/) uris = substr($i, 6)
          if ($i ~ /^Suites:/) suites = substr($i, 8)
        }
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ")) {
          split(uris, u, " "); for (k in u) if (u[k] != "") { print u[k]; exit }
        }
      }' "$f")
    [ -n "$found" ] && { echo "$found"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    found=$(awk -v suite="$suite" '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit } }' "$f")
    [ -n "$found" ] && { echo "$found"; return; }
  done
  echo http://deb.debian.org/debian
}

# apt's proxy, if it has one, for debootstrap and the chroot's apt too.
proxy=$(apt-config shell p Acquire::http::Proxy 2>/dev/null | sed -n "s/^p='\(.*\)'$/\1/p" || true)
if [ -n "$proxy" ]; then export http_proxy="$proxy"; fi

build_base() {
  local url work root start
  url=$(mirror)
  start=$(date +%s)
  work=$(mktemp -d /var/tmp/devenv-realimages.XXXXXX)
  root="$work/root"
  # shellcheck disable=SC2064
  trap "mountpoint -q '$root/proc' && umount '$root/proc'; rm -rf --one-file-system '$work'" EXIT
  say "debootstrap $suite (minbase) from $url"
  debootstrap --variant=minbase "$suite" "$root" "$url" > "$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }

  # Packages must not start services inside the build root, and Postgres's package must not
  # create a cluster: the entrypoint does that on the container's volume.
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
  mkdir -p "$root/etc/postgresql-common"
  echo 'create_main_cluster = false' > "$root/etc/postgresql-common/createcluster.conf"
  mount -t proc proc "$root/proc"
  say "apt-get install ${packages[*]}"
  chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C sh -c \
    "apt-get update -q && apt-get install -y -q --no-install-recommends ${packages[*]}" \
    > "$work/apt.log" 2>&1 || { tail -30 "$work/apt.log" >&2; exit 1; }
  umount "$root/proc"

  ln -sf /bin/busybox "$root/usr/local/bin/wget"
  ln -sf /usr/bin/docker-registry "$root/usr/local/bin/registry"
  # Directories the programs write to, owned by the user each one runs as, so a new named
  # volume mounted there starts with that owner (Docker copies it from the image).
  chroot "$root" sh -c '
    set -e
    install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data
    install -d -o postgres -g postgres -m 2775 /run/postgresql
    install -d -o pdns -g pdns -m 755 /run/pdns
    rm -rf /etc/powerdns/pdns.d && install -d -o pdns -g pdns -m 750 /etc/powerdns/pdns.d
    install -d -m 755 /etc/powerdns/templates.d
    install -d -o nobody -g nogroup -m 755 /prometheus
    install -d -o bind -g bind -m 775 /run/named
    install -d -o redis -g redis -m 755 /data
    install -d -o rabbitmq -g rabbitmq -m 755 /var/lib/rabbitmq /var/log/rabbitmq
    install -d -m 755 /var/lib/registry'

  # Trim what no test runs.
  rm -f "$root/usr/sbin/policy-rc.d"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/*.log \
         "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
         "$root"/usr/share/locale/* "$root"/usr/share/i18n \
         "$root"/usr/share/javascript/moment-timezone \
         "$root"/usr/lib/x86_64-linux-gnu/libLLVM-* "$root"/usr/lib/x86_64-linux-gnu/libz3.so* \
         "$root"/usr/lib/postgresql/*/lib/llvmjit* "$root"/usr/lib/postgresql/*/lib/bitcode

  say "docker import $(tag base) ($(du -sh "$root" | cut -f1) root)"
  tar --numeric-owner -C "$root" -c . |
    docker import --message "devenv real-program base" \
      --change "LABEL dev.devenv.realimages=$base_h" - "$(tag base)" >/dev/null
  rm -rf --one-file-system "$work"
  trap - EXIT
  say "base built in $(( $(date +%s) - start )) s"
}

# The metadata of each program's image: what the upstream image it stands in for declares
# (entrypoint, command, user, environment), one `--change` per line. `docker commit` cannot set
# STOPSIGNAL: nginx takes Docker's SIGTERM as a fast shutdown anyway, and postgres-entrypoint
# turns it into Postgres's fast shutdown (the upstream image's STOPSIGNAL SIGINT).
changes() {
  echo "LABEL dev.devenv.realimages.program=$1"
  case "$1" in
    gateway)
      echo 'EXPOSE 80'
      echo 'CMD ["nginx", "-g", "daemon off;"]' ;;
    registry)
      echo 'EXPOSE 5000'
      echo 'ENTRYPOINT ["registry", "serve"]'
      echo 'CMD ["/etc/docker/registry/config.yml"]' ;;
    postgres)
      echo 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
      echo 'ENV PGDATA=/var/lib/postgresql/data'
      echo 'ENV LANG=C.UTF-8'
      echo 'EXPOSE 5432'
      echo 'ENTRYPOINT ["postgres-entrypoint"]'
      echo 'CMD ["postgres"]' ;;
    pdns)
      echo 'USER pdns'
      echo 'EXPOSE 5300 5300/udp 8081'
      echo 'ENTRYPOINT ["/usr/bin/tini", "--"]'
      echo 'CMD ["pdns-startup"]' ;;
    prometheus)
      echo 'USER nobody'
      echo 'WORKDIR /prometheus'
      echo 'EXPOSE 9090'
      echo 'ENTRYPOINT ["/usr/bin/prometheus"]'
      echo 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' ;;
    named)
      echo 'EXPOSE 53 53/udp'
      echo 'ENTRYPOINT ["/usr/sbin/named", "-g"]'
      echo 'CMD ["-c", "/etc/bind/named.conf"]' ;;
    redis)
      # As the official image: the redis user, its data in /data, reachable from the network
      # (the official image builds protected mode off).
      echo 'USER redis'
      echo 'WORKDIR /data'
      echo 'EXPOSE 6379'
      echo 'CMD ["redis-server", "--protected-mode", "no"]' ;;
    rabbitmq)
      echo 'USER rabbitmq'
      echo 'ENV HOME=/var/lib/rabbitmq'
      echo 'ENV RABBITMQ_LOGS=-'
      echo 'EXPOSE 5672 15672'
      echo 'CMD ["rabbitmq-server"]' ;;
  esac
}

base_h=$(base_hash)
program_h=$(program_hash)
exists() { docker image inspect "$1" >/dev/null 2>&1; }
all_exist() {
  local p
  for p in "${programs[@]}"; do exists "$(tag "$p")" || return 1; done
}
print_tags() {
  local p
  for p in "${programs[@]}"; do echo "$p $(tag "$p")"; done
}

if [ "${1:-}" = --check ]; then
  all_exist
  exit
fi

# One build at a time on this engine (tests and CI may start it together).
exec 9>"${TMPDIR:-/tmp}/devenv-realimages.lock"
flock 9
if all_exist; then
  print_tags
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { say "needs root (debootstrap, chroot)"; exit 3; }
command -v debootstrap >/dev/null || { say "debootstrap is missing (apt-get install debootstrap)"; exit 3; }

exists "$(tag base)" || build_base
# Each program: a container of the base that never runs, rootfs/ copied in (the stand-in
# entrypoint scripts, the registry's config), committed with its metadata in one engine call.
for p in "${programs[@]}"; do
  exists "$(tag "$p")" && continue
  args=()
  while IFS= read -r change; do args+=(--change "$change"); done < <(changes "$p")
  cid=$(docker create --label "dev.devenv.realimages=$program_h" "$(tag base)" /bin/true)
  if ! { docker cp "$here/rootfs/." "$cid:/" &&
          docker commit "${args[@]}" "$cid" "$(tag "$p")" >/dev/null; }; then
    docker rm "$cid" >/dev/null
    say "making $(tag "$p") failed"
    exit 1
  fi
  docker rm "$cid" >/dev/null
done

# Images of older recipes: ours by repository name, never anything else.
docker image ls --format '{{.Repository}}:{{.Tag}}' |
  awk -v repo="$repo/" -v base=":$base_h" -v prog=":$program_h" '
    index($0, repo) == 1 && !(substr($0, length($0) - 12) == base || substr($0, length($0) - 12) == prog)' |
  while read -r old; do docker image rm "$old" >/dev/null 2>&1 || true; done

print_tags

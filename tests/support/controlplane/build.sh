#!/usr/bin/env bash
# Build the real Kubernetes control plane the cluster-tier tests run against
# (tests/support/controlplane.rs): kube-apiserver, kube-controller-manager and kube-scheduler from
# Debian's `kubernetes` source package (v1.20.2) with Debian's Go 1.19, plus Debian's etcd.
#
# Nothing is downloaded but Debian packages. The binaries are cached outside the clone, keyed by the
# source package's version, so a warm run costs nothing:
#
#   $DEVENV_CONTROLPLANE_CACHE (default /var/cache/devenv-tests/controlplane)/<version>/bin/
#
#   build.sh            build what is missing; print the directory holding the binaries
#   build.sh --check    print the directory and exit 0 when the binaries are cached, exit 1
#                       otherwise; build nothing
#
# Cold: about 6 minutes on 2 cores (apt 1 min, generated files 1 min, the three binaries 4 min).
# Needs root (apt-get), flock.
set -Eeuo pipefail

cache=${DEVENV_CONTROLPLANE_CACHE:-/var/cache/devenv-tests/controlplane}
binaries=(kube-apiserver kube-controller-manager kube-scheduler)
say() { echo "controlplane: $*" >&2; }

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

# The deb-src entry: the same mirror and keyring as the bookworm binary entry apt already has.
srcs=/etc/apt/sources.list.d/devenv-tests-src.sources
ensure_deb_src() {
  [ -e "$srcs" ] && return 0
  local uri=http://deb.debian.org/debian keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  if [ -n "${DEVENV_DEBIAN_MIRROR:-}" ]; then uri=$DEVENV_DEBIAN_MIRROR; fi
  printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: %s\n' \
    "$uri" "$keyring" >"$srcs"
  apt-get update -q >&2
}

# The version is the source package's, so a new Debian upload rebuilds; until apt knows the
# deb-src entry the version of the last build stands.
version() {
  apt-cache showsrc kubernetes 2>/dev/null | awk '/^Version:/ { print $2; exit }'
}

latest=$(ls -1 "$cache" 2>/dev/null | grep -v '^\.' | sort -V | tail -n 1 || true)
complete() { local d=$1; for b in "${binaries[@]}"; do [ -x "$d/bin/$b" ] || return 1; done; command -v etcd >/dev/null; }

if [ "${1:-}" = --check ]; then
  if [ -n "$latest" ] && complete "$cache/$latest"; then echo "$cache/$latest/bin"; exit 0; fi
  exit 1
fi

need=()
for p in golang-1.19-go golang-github-modern-go-reflect2-dev etcd-server rsync dpkg-dev make gcc; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ] || [ ! -e "$srcs" ]; then
  ensure_deb_src
  [ "${#need[@]}" -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi

ver=$(version)
if [ -z "$ver" ]; then
  apt-get update -q >&2
  ver=$(version)
fi
[ -n "$ver" ] || { say "apt knows no source package 'kubernetes' (is the deb-src entry in $srcs right?)"; exit 1; }
# The build carries one fix of its own (below), named in the key so a cache built without it
# is rebuilt.
out=$cache/$ver+reflect2-1.0.2
if complete "$out"; then echo "$out/bin"; exit 0; fi

say "building Kubernetes $ver from Debian's source package (about 6 minutes cold)"
work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
(
  cd "$work"
  apt-get source --download-only kubernetes >&2
  tarball=$(ls kubernetes_*.orig.tar.* | head -n 1)
  mkdir src
  tar -xf "$tarball" -C src --strip-components=1
  cd src
  # v1.20 vendors reflect2 v1.0.1, whose map iteration reads Go runtime internals that Go 1.18
  # changed: under Go 1.19 the API server segfaults in json-iterator's map encoding the first
  # time it serves a custom resource. v1.0.2 is the upstream fix (its go_above_118.go iterates
  # maps the way Go 1.18 changed them); Debian packages it, so its source replaces the
  # vendored copy.
  reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
  [ -d "$reflect2" ] || { echo "controlplane: $reflect2 is missing (golang-github-modern-go-reflect2-dev)" >&2; exit 1; }
  rm -rf vendor/github.com/modern-go/reflect2
  mkdir -p vendor/github.com/modern-go/reflect2
  cp "$reflect2"/*.go "$reflect2"/*.s vendor/github.com/modern-go/reflect2/ 2>/dev/null || cp "$reflect2"/*.go vendor/github.com/modern-go/reflect2/
  rm -f vendor/github.com/modern-go/reflect2/*_test.go
  sed -i 's#github.com/modern-go/reflect2 v1.0.1#github.com/modern-go/reflect2 v1.0.2#g' go.mod vendor/modules.txt
  export PATH=/usr/lib/go-1.19/bin:$PATH GOPATH=$work/gopath GOCACHE=$work/gocache
  unset GOFLAGS
  rm -rf _output
  make generated_files >&2
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >&2
  mkdir -p "$out.tmp/bin"
  for b in "${binaries[@]}"; do cp "_output/bin/$b" "$out.tmp/bin/$b"; done
)
rm -rf "$out"
mv "$out.tmp" "$out"
say "built in $out/bin"
echo "$out/bin"

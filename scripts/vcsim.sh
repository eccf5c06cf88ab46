#!/usr/bin/env bash
# vcsim: VMware's vCenter simulator (govmomi's simulator package), for the vmware
# plugin's tests. Debian ships the govmomi source but no vcsim command, so this
# builds a small main (plugins/vmware/vcsim/main.go) against it, offline:
#   scripts/vcsim.sh build        build target/vcsim/vcsim if missing (or outdated)
#   scripts/vcsim.sh path         print the binary's path
#   scripts/vcsim.sh run [ARGS]   build if needed, then run it in the foreground
#                                 (default -l 127.0.0.1:8989, https, user/pass)
#   scripts/vcsim.sh packages     print the Debian packages it needs
# Needs the Debian packages golang-go and golang-github-vmware-govmomi-dev (which
# pulls golang-github-google-uuid-dev). The tests start their own vcsim on a free
# port (-l 127.0.0.1:0) and kill it; set TFO_VCSIM to use another binary.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
out="${CARGO_TARGET_DIR:-$root/target}/vcsim"
bin="$out/vcsim"
src="$root/plugins/vmware/vcsim/main.go"
gopath=/usr/share/gocode
packages="golang-go golang-github-vmware-govmomi-dev"

missing() {
  local need=()
  command -v go >/dev/null 2>&1 || need+=(golang-go)
  [ -d "$gopath/src/github.com/vmware/govmomi/simulator" ] || need+=(golang-github-vmware-govmomi-dev)
  echo "${need[*]:-}"
}

build() {
  if [ -x "$bin" ] && [ "$bin" -nt "$src" ]; then
    return 0
  fi
  local need
  need="$(missing)"
  if [ -n "$need" ]; then
    echo "vcsim.sh: cannot build vcsim: missing Debian packages: $need" >&2
    echo "vcsim.sh: install with: apt-get install -y --no-install-recommends $packages" >&2
    return 1
  fi
  mkdir -p "$out"
  echo "== building vcsim into $bin (GOPATH=$gopath, offline)" >&2
  local start=$SECONDS
  # GOPATH mode (no modules): imports resolve to Debian's source under
  # /usr/share/gocode; nothing is downloaded. GOFLAGS/GOPROXY pinned so a user's
  # environment cannot turn the network on.
  GOPATH="$gopath" GO111MODULE=off GOFLAGS= GOPROXY=off GOCACHE="$out/go-build" \
    go build -o "$bin.tmp" "$src"
  mv "$bin.tmp" "$bin"
  echo "== vcsim built in $((SECONDS - start))s" >&2
}

case "${1:-build}" in
  build) build ;;
  path) echo "$bin" ;;
  packages) echo "$packages" ;;
  run)
    shift
    build
    if [ "$#" -eq 0 ]; then
      set -- -l 127.0.0.1:8989
    fi
    exec "$bin" "$@"
    ;;
  *)
    echo "usage: $0 build|path|run [vcsim args]|packages" >&2
    exit 2
    ;;
esac

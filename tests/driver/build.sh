#!/usr/bin/env bash
# Build the cnitool test driver against Debian's libcni (golang-github-appc-cni-dev)
# in GOPATH mode, fully offline. Usage: tests/driver/build.sh [OUTPUT]
# OUTPUT defaults to dist/cnitool relative to the repo root.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

out="${1:-$root/dist/cnitool}"
case "$out" in
/*) ;;
*) out="$PWD/$out" ;;
esac
mkdir -p "$(dirname "$out")"

libcni=/usr/share/gocode/src/github.com/containernetworking/cni/libcni
if [[ ! -d $libcni ]]; then
    echo "build.sh: $libcni missing; apt-get install golang-go golang-github-appc-cni-dev" >&2
    exit 1
fi

cd "$root"
env GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOPROXY=off \
    GOCACHE="${GOCACHE:-${TMPDIR:-/tmp}/pycni-gocache}" \
    CGO_ENABLED=0 \
    go build -o "$out" ./tests/driver

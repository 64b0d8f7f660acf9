#!/usr/bin/env bash
# Builds the real kube-apiserver, etcd and kubectl (for the install tests'
# `kubectl apply -k` / `kubectl kustomize`) from the Go modules pinned in this
# folder's go.mod/go.sum, into a cache outside the clone keyed by those pins:
#
#   ${CAPT_KUBE_CACHE:-$HOME/.cache/capt-status/kube}/<key>/{kube-apiserver,etcd,kubectl}
#
# <key> is a hash of go.mod, go.sum and this script, so the binaries are
# rebuilt only when a pin (or the way they are built) changes. Prints the
# folder holding the binaries as its last line of standard output; progress
# goes to standard error. The first build downloads the modules and compiles
# for several minutes; later runs return at once. Safe to run concurrently:
# a lock file serialises builders, and the binaries appear atomically.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${CAPT_KUBE_CACHE:-$HOME/.cache/capt-status/kube}"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)"
out="$cache_root/$key"

say() { echo "tests/kube/build.sh: $*" >&2; }
built() { [[ -x "$out/kube-apiserver" && -x "$out/etcd" && -x "$out/kubectl" ]]; }

if built; then
    say "reusing $out"
    echo "$out"
    exit 0
fi

command -v go >/dev/null || { say "Go is not installed (see .ci/run)"; exit 1; }
mkdir -p "$cache_root"
exec 9>"$cache_root/$key.lock"
say "waiting for the build lock $cache_root/$key.lock"
flock 9
if built; then
    say "built meanwhile by another process: $out"
    echo "$out"
    exit 0
fi

# Versions named in go.mod, stamped into the binaries as Kubernetes' own
# release build does, so that /version answers the release and not v0.0.0.
cd "$here"
kube_version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
etcd_version="$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
minor="${kube_version#v1.}"
minor="${minor%%.*}"
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$kube_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
ldflags="$ldflags -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"

tmp="$(mktemp -d "$cache_root/.build-$key.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
say "building kube-apiserver and kubectl $kube_version and etcd $etcd_version into $out"
say "(the first build downloads the modules and compiles for several minutes)"
go mod download
say "modules ready after $((SECONDS - start)) s; compiling etcd"
go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
say "etcd built after $((SECONDS - start)) s; compiling kube-apiserver"
go build -trimpath -ldflags "$ldflags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
say "kube-apiserver built after $((SECONDS - start)) s; compiling kubectl"
go build -trimpath -ldflags "$ldflags" -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl
say "kubectl built after $((SECONDS - start)) s"
mv "$tmp" "$out.new"
mv -T "$out.new" "$out"
trap - EXIT
say "done: $out"
echo "$out"

#!/usr/bin/env bash
# hw-tests/k8s/build.sh: the pinned Kubernetes release and etcd, built from their Go modules.
#
# usage: hw-tests/k8s/build.sh [--print-dir] [--force]
#        hw-tests/k8s/build.sh --pin K8S_VERSION ETCD_VERSION
#
#   (no option)   build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and
#                 kubectl into the cache (below) unless they are already there for this pin;
#                 prints how long it took and the directory holding the binaries
#   --print-dir   print the binary directory for the current pin and exit (nothing is built)
#   --force       rebuild even when the cache holds this pin
#   --pin K E     rewrite go.mod/go.sum of the two wrapper modules for k8s.io/kubernetes K and
#                 go.etcd.io/etcd/server/v3 E. Every staging module that K's own go.mod requires at
#                 v0.0.0 is replaced by its published release of the same minor (v1.37.2 -> v0.37.2):
#                 the list is read from that go.mod, never typed. Commit the two go.mod/go.sum pairs.
#
# The wrapper modules hold only go.mod and go.sum: no Kubernetes or etcd source is copied here.
# Binaries go to $SMARTNIC_K8S_CACHE/<pin>/bin (default /var/tmp/smartnic-k8s), outside the repo.
# The Go build and module caches are Go's own (GOCACHE, GOMODCACHE), so a warm rebuild is fast.
# A module the proxy refuses fails the build with that module named (exit 3).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${SMARTNIC_K8S_CACHE:-/var/tmp/smartnic-k8s}
export GOFLAGS=-mod=readonly GOTOOLCHAIN=local

die() { echo "hw-tests/k8s/build.sh: $*" >&2; exit 3; }
# shellcheck source=../lib/go-build.sh
. "$HERE/../lib/go-build.sh"

k8s_version() { awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$HERE/go.mod"; }
etcd_version() { awk '$1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v/ { print $2; exit }' "$HERE/etcd/go.mod"; }

# How the binaries are built (flags, the list of commands): bump it when that changes.
RECIPE=1
# The pin's identity: the four committed files and the recipe. Any change means a rebuild.
stamp() {
  { cat "$HERE/go.mod" "$HERE/go.sum" "$HERE/etcd/go.mod" "$HERE/etcd/go.sum"; echo "recipe $RECIPE"; } \
    | sha256sum | cut -c1-16
}

pin() {
  local k=$1 e=$2 s
  [[ $k =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "--pin: $k is not a Kubernetes release (v1.N.M)"
  s="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
  local gm
  gm=$(go mod download -json "k8s.io/kubernetes@$k" | jq -r '.GoMod // empty') || true
  [ -n "$gm" ] || die "the module proxy does not serve k8s.io/kubernetes@$k"

  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  (
    cd "$tmp"
    go mod init smartnic.io/hw-tests/k8s >/dev/null 2>&1
    # The release's own go and godebug lines: only the main module's godebug counts.
    go mod edit -go="$(awk '$1 == "go" { print $2; exit }' "$gm")"
    awk '$1 == "godebug" { print }' "$gm" >>go.mod
    # Each staging module is a `=> ./staging/src/...` replace in the release's go.mod.
    awk '$2 == "=>" && $3 ~ /^\.\/staging\/src\// { print $1 }' "$gm" | while read -r m; do
      go mod edit -replace="$m=$m@$s"
    done
    go_or_die "go get k8s.io/kubernetes@$k" go get \
      "k8s.io/kubernetes/cmd/kube-apiserver@$k" "k8s.io/kubernetes/cmd/kube-controller-manager@$k" \
      "k8s.io/kubernetes/cmd/kube-scheduler@$k" "k8s.io/kubernetes/cmd/kubelet@$k" \
      "k8s.io/kubernetes/cmd/kubectl@$k"
    cp go.mod go.sum "$HERE/"
  )
  rm -rf "$tmp"/*
  (
    cd "$tmp"
    go mod init smartnic.io/hw-tests/k8s/etcd >/dev/null 2>&1
    local egm
    egm=$(go mod download -json "go.etcd.io/etcd/server/v3@$e" | jq -r '.GoMod // empty') || true
    [ -n "$egm" ] || die "the module proxy does not serve go.etcd.io/etcd/server/v3@$e"
    go mod edit -go="$(awk '$1 == "go" { print $2; exit }' "$egm")"
    go_or_die "go get go.etcd.io/etcd/server/v3@$e" go get "go.etcd.io/etcd/server/v3@$e"
    cp go.mod go.sum "$HERE/etcd/"
  )
  echo "pinned k8s.io/kubernetes $k (staging $s) and go.etcd.io/etcd/server/v3 $e"
}

FORCE=0
case "${1:-}" in
  --pin) shift; [ $# -eq 2 ] || die "usage: --pin K8S_VERSION ETCD_VERSION"; pin "$1" "$2"; exit 0;;
  --print-dir) echo "$CACHE/$(stamp)/bin"; exit 0;;
  --force) FORCE=1;;
  "") ;;
  -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
  *) die "unknown option $1 (--help)";;
esac

K=$(k8s_version) E=$(etcd_version)
[ -n "$K" ] && [ -n "$E" ] || die "go.mod does not pin k8s.io/kubernetes and etcd (run --pin)"
OUT="$CACHE/$(stamp)"
BIN="$OUT/bin"
mkdir -p "$CACHE"
# One build at a time per cache; a second caller waits and then finds the binaries built.
exec 9>"$CACHE/.lock"
flock 9
if [ "$FORCE" = 0 ] && [ -f "$OUT/done" ]; then
  echo "kubernetes $K and etcd $E: built already in $BIN"
  exit 0
fi
rm -rf "$OUT"
mkdir -p "$BIN"
start=$(date +%s)

[[ $K =~ ^v1\.([0-9]+)\.([0-9]+)$ ]]
minor=${BASH_REMATCH[1]}
# What kubernetes' hack/lib/version.sh sets, so `--version` tells the release.
ldk="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldk+=" -X $p.gitVersion=$K -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  ldk+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

echo "building etcd $E"
(cd "$HERE/etcd" && CGO_ENABLED=0 go_or_die "building etcd" go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet; do
  echo "building $cmd $K"
  cgo=0
  [ "$cmd" = kubelet ] && cgo=1 # upstream builds kubelet with cgo
  (cd "$HERE" && CGO_ENABLED=$cgo go_or_die "building $cmd" go build -trimpath -ldflags "$ldk" -o "$BIN/$cmd" "k8s.io/kubernetes/cmd/$cmd")
done
"$BIN/kube-apiserver" --version | grep -qx "Kubernetes $K" || die "kube-apiserver --version does not say $K"
echo "$K $E" >"$OUT/done"
# Builds of earlier pins are of no further use (node-* and helm-* are hw-tests/node/build.sh's and
# hw-tests/helm/build.sh's, with pins of their own).
find "$CACHE" -mindepth 1 -maxdepth 1 -type d ! -path "$OUT" ! -name 'node-*' ! -name 'helm-*' -exec rm -rf {} +
echo "kubernetes $K and etcd $E built in $(($(date +%s) - start)) s into $BIN"

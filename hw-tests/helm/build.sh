#!/usr/bin/env bash
# hw-tests/helm/build.sh: the pinned Helm release, built from its Go module, for the chart's tests
# (deploy/tests/helm.rs: `helm lint`, `helm template`) and the lab's `helm install`.
#
# usage: hw-tests/helm/build.sh [--print-dir] [--force]
#        hw-tests/helm/build.sh --pin VERSION
#
#   (no option)   build helm into the cache (below) unless it is already there for this pin; prints
#                 how long it took and the directory holding the binary
#   --print-dir   print the binary directory for the current pin and exit (nothing is built)
#   --force       rebuild even when the cache holds this pin
#   --pin V       rewrite go.mod/go.sum of the wrapper module for helm.sh/helm/v4 V (its go line and
#                 godebug settings copied from the release's go.mod, then `go get` of cmd/helm).
#                 Commit the go.mod/go.sum pair.
#
# What is built: helm, from helm.sh/helm/v4 cmd/helm, static (CGO_ENABLED=0, as upstream's Makefile),
# with the version ldflags of upstream's Makefile so `helm version` tells the release (the commit is
# left empty: the module proxy serves no commit hash).
# The wrapper module holds only go.mod and go.sum: no Helm source is copied here.
# The binary goes to $SMARTNIC_K8S_CACHE/helm-<pin>/bin (default /var/tmp/smartnic-k8s, beside the
# control plane of hw-tests/k8s/build.sh). Go's own build and module caches make a warm rebuild fast.
# A module the proxy refuses fails the build with that module named (exit 3).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${SMARTNIC_K8S_CACHE:-/var/tmp/smartnic-k8s}
export GOFLAGS=-mod=readonly GOTOOLCHAIN=local
MOD=helm.sh/helm/v4

die() { echo "hw-tests/helm/build.sh: $*" >&2; exit 3; }
# shellcheck source=../lib/go-build.sh
. "$HERE/../lib/go-build.sh"

helm_version() { awk -v m="$MOD" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$HERE/go.mod"; }

# How the binary is built (flags): bump it when that changes.
RECIPE=1
# The pin's identity: the committed go.mod/go.sum and the recipe. Any change means a rebuild.
stamp() { { cat "$HERE/go.mod" "$HERE/go.sum"; echo "recipe $RECIPE"; } | sha256sum | cut -c1-16; }

pin() {
  local v=$1 gm
  [[ $v =~ ^v4\.[0-9]+\.[0-9]+$ ]] || die "--pin: $v is not a Helm 4 release (v4.N.M)"
  gm=$(go mod download -json "$MOD@$v" 2>/dev/null | jq -r '.GoMod // empty') || true
  [ -n "$gm" ] || die "the module proxy does not serve $MOD@$v"
  local tmp
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    go mod init smartnic.io/hw-tests/helm >/dev/null 2>&1
    go mod edit -go="$(go mod edit -json "$gm" | jq -r '.Go')"
    go mod edit -json "$gm" | jq -r '.Godebug[]? | "\(.Key)=\(.Value)"' | while read -r d; do
      go mod edit -godebug="$d"
    done
    # Only the main module's replace directives count: a release that has some cannot be wrapped as is.
    [ "$(go mod edit -json "$gm" | jq '.Replace | length')" = 0 ] \
      || die "$MOD@$v has replace directives; copy them here as hw-tests/node/build.sh does"
    GOFLAGS=-mod=mod go_or_die "go get $MOD/cmd/helm@$v" go get "$MOD/cmd/helm@$v"
    cp go.mod go.sum "$HERE/"
  )
  rm -rf "$tmp"
  echo "pinned $MOD $v (commit hw-tests/helm/go.mod and go.sum)"
}

FORCE=0
case "${1:-}" in
  --pin) shift; [ $# -eq 1 ] || die "usage: --pin VERSION"; pin "$1"; exit 0;;
  --print-dir) echo "$CACHE/helm-$(stamp)/bin"; exit 0;;
  --force) FORCE=1;;
  "") ;;
  -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
  *) die "unknown option $1 (--help)";;
esac

command -v go >/dev/null || die "go is not installed (helm is built from its Go module)"
V=$(helm_version)
[ -n "$V" ] || die "go.mod does not pin $MOD (run --pin VERSION)"
OUT="$CACHE/helm-$(stamp)"
BIN="$OUT/bin"
mkdir -p "$CACHE"
# One build at a time per cache; a second caller waits and then finds the binary built.
exec 9>"$CACHE/.helm.lock"
flock 9
if [ "$FORCE" = 0 ] && [ -f "$OUT/done" ]; then
  echo "helm $V: built already in $BIN"
  exit 0
fi
rm -rf "$OUT"
mkdir -p "$BIN"
start=$(date +%s)

# What upstream's Makefile sets for a tagged release (no metadata suffix, clean tree).
vp=$MOD/internal/version
ld="-s -w -X $vp.version=$V -X $vp.metadata= -X $vp.gitTreeState=clean"
echo "building helm $V"
(cd "$HERE" && CGO_ENABLED=0 go_or_die "building helm" go build -trimpath -ldflags "$ld" -o "$BIN/helm" "$MOD/cmd/helm")
out=$("$BIN/helm" version --template '{{ .Version }}' 2>&1) || true
[ "$out" = "$V" ] || die "helm version says '$out', not $V"
echo "$V" >"$OUT/done"
# Helm builds of earlier pins are of no further use (the other directories are not ours).
find "$CACHE" -mindepth 1 -maxdepth 1 -type d -name 'helm-*' ! -path "$OUT" -exec rm -rf {} +
echo "helm $V built in $(($(date +%s) - start)) s into $BIN"

#!/usr/bin/env bash
# hw-tests/node/build.sh: what a Kubernetes node runs besides the kubelet, built from the Go modules
# of the projects pinned here, for the lab's `cluster` suite: containerd, its runc shim, ctr, runc,
# Multus's thin plugin, and the pause binary of the pinned Kubernetes release.
#
# usage: hw-tests/node/build.sh [--print-dir] [--force]
#        hw-tests/node/build.sh --pin NAME=VERSION...     (NAME: containerd, runc or multus)
#
#   (no option)   build everything below into the cache unless it is already there for this pin;
#                 prints how long it took and the directory holding the binaries
#   --print-dir   print the binary directory for the current pin and exit (nothing is built)
#   --force       rebuild even when the cache holds this pin
#   --pin N=V     rewrite NAME/go.mod and NAME/go.sum for that project's module at version V: the
#                 module's own go line, godebug settings and replace directives are copied from its
#                 go.mod (a dependency's replaces do not apply to the module that requires it), then
#                 `go get` resolves its commands. Commit the go.mod/go.sum pairs.
#
# What is built (binary: module, package; how):
#   containerd, containerd-shim-runc-v2, ctr
#                github.com/containerd/containerd/v2 cmd/...; static (CGO_ENABLED=0)
#   runc         github.com/opencontainers/runc; cgo (nsexec), linked static, tags seccomp netgo
#                osusergo: libseccomp.a from Debian's libseccomp-dev, unpacked (not installed) by
#                apt-get download, so pods with seccompProfile RuntimeDefault start
#   multus       gopkg.in/k8snetworkplumbingwg/multus-cni.v4 cmd/multus: the thin plugin; static
#   pause        gcc -Os -static from build/pause/linux/pause.c of the k8s.io/kubernetes module that
#                hw-tests/k8s/go.mod pins
# One wrapper module per project (containerd/, runc/, multus/), so each builds against exactly the
# dependency versions its own go.mod names; they hold only go.mod and go.sum, no upstream source.
# Binaries and versions.txt go to $SMARTNIC_K8S_CACHE/node-<pin>/bin (default
# /var/tmp/smartnic-k8s, beside the control plane of hw-tests/k8s/build.sh); hw-tests/node/images.sh
# writes the image tarballs beside them. Go's own build and module caches make a warm rebuild fast.
# A module the proxy refuses fails the build with that module named (exit 3).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${SMARTNIC_K8S_CACHE:-/var/tmp/smartnic-k8s}
export GOFLAGS=-mod=readonly GOTOOLCHAIN=local

die() { echo "hw-tests/node/build.sh: $*" >&2; exit 3; }
# shellcheck source=../lib/go-build.sh
. "$HERE/../lib/go-build.sh"

# name|module|packages (relative to the module; "." is its root)
PROJECTS=(
  "containerd|github.com/containerd/containerd/v2|cmd/containerd cmd/containerd-shim-runc-v2 cmd/ctr"
  "runc|github.com/opencontainers/runc|."
  "multus|gopkg.in/k8snetworkplumbingwg/multus-cni.v4|cmd/multus"
)
RUNC_TAGS="urfave_cli_no_docs seccomp netgo osusergo"

# How the binaries are built (flags, the list of commands): bump it when that changes.
RECIPE=2

# The version NAME/go.mod requires for MODULE (empty when none).
pinned() {
  [ -f "$HERE/$1/go.mod" ] || return 0
  awk -v m="$2" '($1 == m || ($1 == "require" && $2 == m)) { v = ($1 == m) ? $2 : $3; if (v ~ /^v/) { print v; exit } }' "$HERE/$1/go.mod"
}
k8s_version() { awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$HERE/../k8s/go.mod"; }

# The pin's identity: the wrapper modules, the Kubernetes release (pause.c) and the recipe.
stamp() {
  { for p in "${PROJECTS[@]}"; do cat "$HERE/${p%%|*}/go.mod" "$HERE/${p%%|*}/go.sum" 2>/dev/null || true; done
    echo "kubernetes $(k8s_version)"; echo "recipe $RECIPE"; } | sha256sum | cut -c1-16
}

pin_one() {
  local name=$1 v=$2 row mod pkgs
  row=$(printf '%s\n' "${PROJECTS[@]}" | awk -F'|' -v n="$name" '$1 == n')
  [ -n "$row" ] || die "--pin: no project $name (containerd, runc, multus)"
  IFS='|' read -r _ mod pkgs <<<"$row"
  local gm
  gm=$(go mod download -json "$mod@$v" 2>/dev/null | jq -r '.GoMod // empty') || true
  [ -n "$gm" ] || die "the module proxy does not serve $mod@$v"

  local tmp
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    go mod init "smartnic.io/hw-tests/node/$name" >/dev/null 2>&1
    go mod edit -go="$(go mod edit -json "$gm" | jq -r '.Go')"
    go mod edit -json "$gm" | jq -r '.Godebug[]? | "\(.Key)=\(.Value)"' | while read -r d; do
      go mod edit -godebug="$d"
    done
    # The module's replace directives, copied as they are: only the main module's count.
    go mod edit -json "$gm" | jq -r '.Replace[]? | "\(.Old.Path)\(if .Old.Version then "@" + .Old.Version else "" end)=\(.New.Path)\(if .New.Version then "@" + .New.Version else "" end)"' \
      | while read -r r; do
        case ${r#*=} in
          .*|/*) die "$mod@$v replaces ${r%%=*} by a local path (${r#*=}); a wrapper module cannot copy that";;
        esac
        go mod edit -replace="$r"
      done
    local gets=() p tags=""
    for p in $pkgs; do
      if [ "$p" = . ]; then gets+=("$mod@$v"); else gets+=("$mod/$p@$v"); fi
    done
    [ "$name" = runc ] && tags=$RUNC_TAGS
    GOFLAGS=-mod=mod go_or_die "go get ${gets[*]}" go get -tags "$tags" "${gets[@]}"
    mkdir -p "$HERE/$name"
    cp go.mod go.sum "$HERE/$name/"
  )
  rm -rf "$tmp"
  echo "pinned $name: $mod $v (commit hw-tests/node/$name/go.mod and go.sum)"
}

FORCE=0
case "${1:-}" in
  --pin)
    shift
    [ $# -gt 0 ] || die "usage: --pin NAME=VERSION... (NAME: containerd, runc, multus)"
    for a in "$@"; do
      [[ $a == ?*=v?* ]] || die "--pin: $a is not NAME=VERSION"
      pin_one "${a%%=*}" "${a#*=}"
    done
    exit 0;;
  --print-dir) echo "$CACHE/node-$(stamp)/bin"; exit 0;;
  --force) FORCE=1;;
  "") ;;
  -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
  *) die "unknown option $1 (--help)";;
esac

command -v go >/dev/null || die "go is not installed (the node's programs are built from their Go modules)"
command -v gcc >/dev/null || die "gcc is not installed (runc's nsexec and the pause binary are C)"
command -v pkg-config >/dev/null || die "pkg-config is not installed (runc finds libseccomp through it)"
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -n "$(gcc -print-file-name=libc.a | grep /)" ] \
  || die "no static libc (libc6-dev) for the static runc and pause"
for p in "${PROJECTS[@]}"; do
  IFS='|' read -r name mod _ <<<"$p"
  [ -n "$(pinned "$name" "$mod")" ] || die "$name/go.mod does not pin $mod (run --pin $name=VERSION)"
done
K=$(k8s_version)
[ -n "$K" ] || die "hw-tests/k8s/go.mod pins no k8s.io/kubernetes (the pause binary comes from it)"

OUT="$CACHE/node-$(stamp)"
BIN="$OUT/bin"
mkdir -p "$CACHE"
# One build at a time per cache; a second caller waits and then finds the binaries built.
exec 9>"$CACHE/.node.lock"
flock 9
if [ "$FORCE" = 0 ] && [ -f "$OUT/done" ]; then
  echo "node: built already in $BIN ($(awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $3 }' "$BIN/versions.txt"))"
  exit 0
fi
rm -rf "$OUT"
mkdir -p "$BIN"
: >"$BIN/versions.txt"
start=$(date +%s)

# containerd: what its Makefile does for a static release (version ldflags, no docs, shim without grpc).
CD=$(pinned containerd github.com/containerd/containerd/v2)
cdpkg=github.com/containerd/containerd/v2
cdld="-s -w -X $cdpkg/version.Version=$CD -X $cdpkg/version.Package=$cdpkg"
for cmd in containerd ctr containerd-shim-runc-v2; do
  echo "building $cmd $CD"
  tags="urfave_cli_no_docs osusergo netgo static_build"
  [ "$cmd" = containerd-shim-runc-v2 ] && tags+=" no_grpc"
  (cd "$HERE/containerd" && CGO_ENABLED=0 go_or_die "building $cmd" \
    go build -trimpath -tags "$tags" -ldflags "$cdld" -o "$BIN/$cmd" "$cdpkg/cmd/$cmd")
  echo "$cmd $cdpkg $CD" >>"$BIN/versions.txt"
done

# runc: nsexec is C, so cgo; linked static so the guest needs no library of a given version.
# Its seccomp support links libseccomp, found through pkg-config in the unpacked package. The
# package is unpacked at one fixed place (under the lock): Go's build cache keeps the -L that
# pkg-config gave without keying on it, so a temporary directory would be gone at the next link.
# CGO_CFLAGS/CGO_LDFLAGS name the same directories, and those Go does key on.
RV=$(pinned runc github.com/opencontainers/runc)
sdeb="$CACHE/node-libseccomp-dev" # removed with the old pins below
rm -rf "$sdeb"
mkdir -p "$sdeb"
deb_download libseccomp-dev "$sdeb"
dpkg-deb -x "$sdeb"/libseccomp-dev_*.deb "$sdeb/root"
spc=$(find "$sdeb/root" -name libseccomp.pc | head -n 1)
sa=$(find "$sdeb/root" -name libseccomp.a | head -n 1)
[ -n "$spc" ] && [ -n "$sa" ] || die "libseccomp-dev holds no libseccomp.pc and libseccomp.a"
sver=$(dpkg-deb -f "$sdeb"/libseccomp-dev_*.deb Version)
echo "building runc $RV (libseccomp $sver)"
(cd "$HERE/runc" && CGO_ENABLED=1 PKG_CONFIG_LIBDIR=$(dirname "$spc") PKG_CONFIG_SYSROOT_DIR="$sdeb/root" \
  CGO_CFLAGS="-O2 -g -I$sdeb/root/usr/include" CGO_LDFLAGS="-O2 -g -L$(dirname "$sa")" \
  go_or_die "building runc" go build -trimpath -tags "$RUNC_TAGS" -ldflags "-s -w -extldflags -static" \
  -o "$BIN/runc" github.com/opencontainers/runc)
echo "runc github.com/opencontainers/runc $RV libseccomp-dev $sver" >>"$BIN/versions.txt"

# Multus's thin plugin (cmd/multus), with the version its hack/build-go.sh stamps.
MV=$(pinned multus gopkg.in/k8snetworkplumbingwg/multus-cni.v4)
mpkg=gopkg.in/k8snetworkplumbingwg/multus-cni.v4
echo "building multus $MV"
(cd "$HERE/multus" && CGO_ENABLED=0 go_or_die "building multus" \
  go build -trimpath -ldflags "-s -w -X $mpkg/pkg/multus.version=$MV -X $mpkg/pkg/multus.gitTreeState=clean -X $mpkg/pkg/multus.releaseStatus=,released" \
  -o "$BIN/multus" "$mpkg/cmd/multus")
echo "multus $mpkg $MV" >>"$BIN/versions.txt"

# pause: the C file of the pinned release, built as its build/pause/Makefile does.
kdir=$(cd "$HERE/../k8s" && go mod download -json "k8s.io/kubernetes@$K" 2>/dev/null | jq -r '.Dir // empty') || true
[ -n "$kdir" ] && [ -f "$kdir/build/pause/linux/pause.c" ] \
  || die "k8s.io/kubernetes@$K: build/pause/linux/pause.c not found (module k8s.io/kubernetes@$K)"
ptag=$(awk '$1 == "TAG" && $2 == "?=" { print $3; exit }' "$kdir/build/pause/Makefile")
[ -n "$ptag" ] || die "k8s.io/kubernetes@$K: build/pause/Makefile names no TAG"
echo "building pause $ptag"
gcc -Os -Wall -Werror -static -DVERSION="v$ptag-$K" -o "$BIN/pause" "$kdir/build/pause/linux/pause.c" \
  || die "building pause from k8s.io/kubernetes@$K build/pause/linux/pause.c failed"
strip "$BIN/pause"
echo "pause k8s.io/kubernetes/build/pause $ptag $K" >>"$BIN/versions.txt"

# Each binary says the version it was built from (output captured first: `| grep -q` under pipefail
# fails when grep stops reading before the program has written everything).
says() { local out; out=$("$BIN/$1" "$2" 2>&1) || true; grep -qE "$3" <<<"$out" || die "$1 $2 does not say $4: $out"; }
says containerd --version " $CD( |$)" "$CD"
says runc --version "^runc version ${RV#v}$" "$RV"
says runc --version "^libseccomp: " "libseccomp (built without seccomp)"
says multus --version "version:$MV\\(" "$MV"
says pause -v "^pause\\.c v$ptag-" "$ptag"
touch "$OUT/done"
# Node builds of earlier pins, and the unpacked libseccomp-dev, are of no further use (the control
# plane's directories are not ours).
find "$CACHE" -mindepth 1 -maxdepth 1 -type d -name 'node-*' ! -path "$OUT" -exec rm -rf {} +
echo "node built in $(($(date +%s) - start)) s into $BIN:"
sed 's/^/  /' "$BIN/versions.txt"

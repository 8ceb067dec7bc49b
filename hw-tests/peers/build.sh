#!/usr/bin/env bash
# hw-tests/peers/build.sh: the plugins users run today, built from their Go modules for the lab's
# `peers` suite (hw-tests/suites/peers.sh), which measures ours against them on the same VFs.
#
# usage: hw-tests/peers/build.sh [--print-dir] [--force]
#        hw-tests/peers/build.sh --pin
#
#   (no option)   build every peer that go.mod pins into the cache (below) unless it is already
#                 there for this pin; prints how long it took and the directory holding the binaries
#   --print-dir   print the binary directory for the current pin and exit (nothing is built)
#   --force       rebuild even when the cache holds this pin
#   --pin         ask the module proxy for each peer's newest release (`go list -m -versions`) and
#                 rewrite go.mod/go.sum. A module the proxy refuses is named, and the nearest served
#                 plugin that does the same job is pinned in its place. Commit go.mod and go.sum.
#
# The peers (binary: Go package; the stand-in when the proxy refuses the module):
#   sriov        github.com/k8snetworkplumbingwg/sriov-cni/cmd/sriov
#                stand-in: host-device of github.com/containernetworking/plugins (moves a VF,
#                named by PCI address, into the pod; sets no VF options through the PF)
#   sriovdp      github.com/k8snetworkplumbingwg/sriov-network-device-plugin/cmd/sriovdp
#                stand-in: none (no served module is an SR-IOV VF device plugin)
#   host-local   not built: Debian's containernetworking-plugins /usr/lib/cni/host-local, the IPAM
#                the CNI peers are deployed with (from the installed package, else apt-get download)
#
# The wrapper module holds only go.mod and go.sum: no upstream source is copied here. Binaries
# (static, CGO_ENABLED=0) and versions.txt (what was built, from which module version) go to
# $SMARTNIC_PEERS_CACHE/<pin>/bin (default /var/tmp/smartnic-peers), outside the repo. Go's own
# build and module caches make a rebuild after a pin change fast.
# A module the proxy refuses fails the build with that module named (exit 3).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${SMARTNIC_PEERS_CACHE:-/var/tmp/smartnic-peers}
export GOFLAGS=-mod=readonly GOTOOLCHAIN=local CGO_ENABLED=0

die() { echo "hw-tests/peers/build.sh: $*" >&2; exit 3; }
# shellcheck source=../lib/go-build.sh
. "$HERE/../lib/go-build.sh"

# binary|module|package|stand-in module|stand-in package ("-": none)
PEERS=(
  "sriov|github.com/k8snetworkplumbingwg/sriov-cni|github.com/k8snetworkplumbingwg/sriov-cni/cmd/sriov|github.com/containernetworking/plugins|github.com/containernetworking/plugins/plugins/main/host-device"
  "sriovdp|github.com/k8snetworkplumbingwg/sriov-network-device-plugin|github.com/k8snetworkplumbingwg/sriov-network-device-plugin/cmd/sriovdp|-|-"
)

# The version go.mod requires for MODULE (empty when it requires none).
pinned() { awk -v m="$1" '($1 == m || ($1 == "require" && $2 == m)) { v = ($1 == m) ? $2 : $3; if (v ~ /^v/) { print v; exit } }' "$HERE/go.mod"; }

# The pin's identity: the committed files and this script. Any change means a rebuild.
stamp() { cat "$HERE/go.mod" "$HERE/go.sum" "$0" | sha256sum | cut -c1-16; }

# newest MODULE: its newest release the proxy lists (no pre-releases); fails with go's reason.
newest() {
  local out
  out=$(go list -m -versions "$1" 2>&1) || { echo "$out" | tr '\n' ' '; return 1; }
  tr ' ' '\n' <<<"$out" | tail -n +2 | grep -E '^v[0-9]+\.[0-9]+\.[0-9]+(\+incompatible)?$' | tail -n 1
}

pin() {
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  local gets=() row bin mod pkg smod spkg v why
  for row in "${PEERS[@]}"; do
    IFS='|' read -r bin mod pkg smod spkg <<<"$row"
    if v=$(cd "$tmp" && newest "$mod") && [ -n "$v" ]; then
      echo "$bin: $mod $v"
      gets+=("$pkg@$v")
      continue
    fi
    why=$(cd "$tmp" && newest "$mod" 2>&1 | grep -oE '[0-9]{3} [A-Za-z]+( [A-Za-z]+)*' | head -n 1 || true)
    echo "$bin: $mod is refused by the module proxy (${why:-no release listed})"
    if [ "$smod" = - ]; then
      echo "$bin: no stand-in; not built"
      continue
    fi
    v=$(cd "$tmp" && newest "$smod") && [ -n "$v" ] || die "the stand-in $smod is not served either"
    echo "$bin: stand-in ${spkg##*/} from $smod $v"
    gets+=("$spkg@$v")
  done
  [ ${#gets[@]} -gt 0 ] || die "nothing to pin"
  (
    cd "$tmp"
    go mod init smartnic.io/hw-tests/peers >/dev/null 2>&1
    GOFLAGS=-mod=mod go_or_die "go get ${gets[*]}" go get "${gets[@]}"
    cp go.mod go.sum "$HERE/"
  )
  echo "pinned: ${gets[*]} (commit hw-tests/peers/go.mod and go.sum)"
}

# Debian's host-local into $1: from the installed package, else the package's .deb.
debian_host_local() {
  local to=$1 ver
  if ver=$(dpkg-query -W -f '${Status} ${Version}' containernetworking-plugins 2>/dev/null) \
    && [[ $ver == "install ok installed "* ]] && [ -x /usr/lib/cni/host-local ]; then
    cp /usr/lib/cni/host-local "$to/host-local"
    echo "host-local debian containernetworking-plugins ${ver##* }" >>"$to/versions.txt"
    return
  fi
  local d
  d=$(mktemp -d)
  deb_download containernetworking-plugins "$d"
  dpkg-deb -x "$d"/containernetworking-plugins_*.deb "$d/root"
  cp "$d/root/usr/lib/cni/host-local" "$to/host-local"
  ver=$(dpkg-deb -f "$d"/containernetworking-plugins_*.deb Version)
  echo "host-local debian containernetworking-plugins $ver" >>"$to/versions.txt"
  rm -rf "$d"
}

FORCE=0
case "${1:-}" in
  --pin) pin; exit 0;;
  --print-dir) echo "$CACHE/$(stamp)/bin"; exit 0;;
  --force) FORCE=1;;
  "") ;;
  -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
  *) die "unknown option $1 (--help)";;
esac

command -v go >/dev/null || die "go is not installed (the peers are built from their Go modules)"
OUT="$CACHE/$(stamp)"
BIN="$OUT/bin"
if [ "$FORCE" = 0 ] && [ -f "$OUT/done" ]; then
  echo "peers: built already in $BIN ($(awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $NF }' "$BIN/versions.txt"))"
  exit 0
fi
rm -rf "$OUT"
mkdir -p "$BIN"
: >"$BIN/versions.txt"
start=$(date +%s)
built=0
for row in "${PEERS[@]}"; do
  IFS='|' read -r bin mod pkg smod spkg <<<"$row"
  v=$(pinned "$mod")
  if [ -z "$v" ] && [ "$smod" != - ]; then mod=$smod pkg=$spkg v=$(pinned "$smod"); fi
  if [ -z "$v" ]; then
    echo "$bin: not pinned (its module is refused by the module proxy; see --pin)"
    continue
  fi
  name=${pkg##*/}
  echo "building $name from $mod $v"
  ld="-s -w"
  [ "$mod" = github.com/containernetworking/plugins ] \
    && ld+=" -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$v"
  (cd "$HERE" && go_or_die "building $name" go build -trimpath -ldflags "$ld" -o "$BIN/$name" "$pkg")
  echo "$name $mod $v" >>"$BIN/versions.txt"
  built=$((built + 1))
done
[ "$built" -gt 0 ] || die "go.mod pins no peer (run --pin)"
debian_host_local "$BIN"
touch "$OUT/done"
echo "peers built in $(($(date +%s) - start)) s into $BIN:"
sed 's/^/  /' "$BIN/versions.txt"

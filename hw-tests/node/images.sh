#!/usr/bin/env bash
# hw-tests/node/images.sh: the two container images the lab's node runs, written as OCI image
# tarballs without a registry or a container engine, for `ctr -n k8s.io images import`.
#
# usage: hw-tests/node/images.sh [--print-dir | --out DIR]
#
#   smartnic.local/pause:3.10     the static pause binary of hw-tests/node/build.sh (entrypoint /pause):
#                                 containerd's sandbox image
#   smartnic.local/busybox:1.35   /bin/busybox of Debian's busybox-static package with a link for each
#                                 of its applets (sh, ping, ip, wget, nslookup, ...); command `sleep 3600`
# (each tag is the upstream major.minor: pause.c's TAG in the pinned Kubernetes release, busybox's
# Debian version.) The tarballs (oci-layout, index.json, blobs/sha256/...) go to images/ beside the
# binaries of hw-tests/node/build.sh, which runs first (it does nothing when they are built), with
# images.txt naming each file's image and manifest digest. Every file, layer and tarball has fixed
# times, owners and order, so the same inputs give the same digests; the index carries the
# io.containerd.image.name annotation, so the import names the image in full.
#   --print-dir   print the images directory and exit (nothing is written)
#   --out DIR     write the tarballs into DIR instead (the self-test compares two writes)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "hw-tests/node/images.sh: $*" >&2; exit 3; }
# shellcheck source=../lib/go-build.sh
. "$HERE/../lib/go-build.sh"

NODE=$(dirname "$("$HERE/build.sh" --print-dir)")
IMAGES="$NODE/images"
case "${1:-}" in
  --print-dir) echo "$IMAGES"; exit 0;;
  --out) [ -n "${2:-}" ] || die "--out needs a directory"; IMAGES=$2;;
  "") ;;
  -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
  *) die "unknown option $1 (--help)";;
esac
for t in jq tar gzip sha256sum dpkg-deb apt-get; do
  command -v "$t" >/dev/null || die "$t is not installed"
done
"$HERE/build.sh"
# One writer at a time (build.sh's lock); the tarballs are written beside and then swapped in, so a
# reader never finds the directory half written.
exec 9>"$(dirname "$NODE")/.node.lock"
flock 9
BIN="$NODE/bin"

# shellcheck source=../../scripts/lib/oci.sh
. "$HERE/../../scripts/lib/oci.sh"

# image NAME TAG ROOTFS CONFIG_JSON OUT.tar: one linux/amd64 image of one layer.
image() {
  local name=$1 tag=$2 root=$3 cfg=$4 out=$5
  oci_image "$name" "$tag" "$cfg" hw-tests/node/images.sh "$out" "$root"
  echo "$(basename "$out") $name:$tag sha256:$OCI_MANIFEST" >>"$IMAGES/images.txt"
  printf '%-12s %-30s %8d bytes  manifest sha256:%s\n' "$(basename "$out")" "$name:$tag" "$(stat -c %s "$out")" "$OCI_MANIFEST"
}

FINAL=$IMAGES
IMAGES="$FINAL.new"
rm -rf "$IMAGES"
mkdir -p "$IMAGES"
: >"$IMAGES/images.txt"
work=$(mktemp -d)
trap 'rm -rf "$work" "$IMAGES"' EXIT
umask 022

# pause: the tag is the major.minor of pause.c's TAG (versions.txt: "pause <pkg> <TAG> <k8s>").
ptag=$(awk '$1 == "pause" { print $3 }' "$BIN/versions.txt")
[[ $ptag =~ ^([0-9]+\.[0-9]+) ]] || die "versions.txt names no pause version"
mkdir -p "$work/pause"
cp "$BIN/pause" "$work/pause/pause"
chmod 0755 "$work/pause/pause"
image smartnic.local/pause "${BASH_REMATCH[1]}" "$work/pause" \
  '{"Entrypoint":["/pause"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}' \
  "$IMAGES/pause.tar"

# busybox: Debian's static build; the .deb is kept beside the images so a rewrite needs no network.
debs="$NODE/debs"
mkdir -p "$debs"
ls "$debs"/busybox-static_*.deb >/dev/null 2>&1 || deb_download busybox-static "$debs"
deb=$(ls "$debs"/busybox-static_*.deb | head -n 1)
bver=$(dpkg-deb -f "$deb" Version)
[[ $bver =~ ^([0-9]+:)?([0-9]+\.[0-9]+) ]] || die "busybox-static version $bver is not N.M..."
btag=${BASH_REMATCH[2]}
dpkg-deb -x "$deb" "$work/deb"
bb="$work/busybox"
mkdir -p "$bb/bin" "$bb/etc" "$bb/root" "$bb/tmp" "$bb/proc" "$bb/sys" "$bb/dev" "$bb/var" \
  "$bb/sbin" "$bb/usr/bin" "$bb/usr/sbin"
cp "$work/deb/bin/busybox" "$bb/bin/busybox"
chmod 0755 "$bb/bin/busybox"
chmod 1777 "$bb/tmp"
chmod 0700 "$bb/root"
"$bb/bin/busybox" --list-full >"$work/applets" || die "$deb: bin/busybox --list-full failed"
for a in sh ping ip sleep cat ls ifconfig hostname nslookup wget ps grep; do
  grep -qE "(^|/)$a\$" "$work/applets" || die "busybox-static $bver has no $a applet"
done
while read -r p; do
  [ "$p" = bin/busybox ] || [ -e "$bb/$p" ] || { mkdir -p "$(dirname "$bb/$p")" && ln -s /bin/busybox "$bb/$p"; }
done <"$work/applets"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$bb/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$bb/etc/group"
image smartnic.local/busybox "$btag" "$bb" \
  '{"Cmd":["sleep","3600"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}' \
  "$IMAGES/busybox.tar"
echo "busybox $(basename "$deb") $bver" >"$IMAGES/sources.txt"
rm -rf "$FINAL"
mv "$IMAGES" "$FINAL"
echo "images in $FINAL"

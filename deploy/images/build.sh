#!/usr/bin/env bash
# deploy/images/build.sh: the container images of deploy/ as OCI image tarballs, without a registry
# or a container engine, for `ctr -n k8s.io images import` (or `skopeo copy oci-archive:...`).
#
# usage: deploy/images/build.sh [--out DIR] [--tag TAG] [--registry PREFIX] [--only NAME]...
#                               [--refresh-root] [--print-dir]
#
# The images are the lines of deploy/images/images.txt. Each binary is built static (musl) with
# cargo, profile `image` (the CNI: profile `cni`, as it runs on the host); the root is either empty
# (the binary, /etc/passwd, /etc/group, /tmp) or, for the agent, a Debian bookworm root made with
# `debootstrap --variant=minbase` plus exactly the packages of deploy/images/agent-packages.txt
# (no recommends; updated from bookworm-updates and bookworm-security; apt lists, caches, docs and
# logs removed) as its own layer, the binary in a second one. Entrypoint /usr/local/bin/BINARY and
# User as images.txt says (what the manifests' pod specs run). Each tarball is NAME-TAG.tar; the
# index names the image REGISTRY/NAME:TAG (default docker.io/library/NAME:TAG: the name the CRI
# resolves the manifests' bare `NAME:TAG` to), and images.txt in the output directory lists
# "file image manifest-digest bytes unpacked-bytes". Sizes are printed.
#
#   --out DIR        write into DIR (default: /var/tmp/smartnic-images/images-KEY, KEY a hash of
#                    the sources, the tag, the registry and the Rust toolchain: a rerun on the same
#                    sources does nothing; the three newest are kept)
#   --tag TAG        the tag of every image (default: each image's newTag in deploy/kustomization.yaml)
#   --registry P     the name prefix (default docker.io/library)
#   --only NAME      only this image (repeatable; NAME as in images.txt, or without `smartnic-`)
#   --refresh-root   rebuild the agent's Debian root (cached by the package list's hash) to pick up
#                    Debian's updates
#   --print-dir      print the default output directory for these sources and exit
# Needs: cargo with the x86_64-unknown-linux-musl target and musl-gcc (musl-tools: ring's C code),
# jq, tar, gzip; for the agent root: root and debootstrap (installed with apt-get when missing) and
# the Debian mirror of /etc/apt (else deb.debian.org). Cache: $SMARTNIC_IMAGES_CACHE
# (default /var/tmp/smartnic-images).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${SMARTNIC_IMAGES_CACHE:-/var/tmp/smartnic-images}
TARGET=x86_64-unknown-linux-musl
SUITE=bookworm
# How the images are made (layout, files, config): bump it when that changes.
RECIPE=1
# How the Debian root is made: bump it when that changes (the root is cached by it and the list).
ROOT_RECIPE=2

die() { echo "deploy/images/build.sh: $*" >&2; exit 3; }
# shellcheck source=../../scripts/lib/oci.sh
. "$REPO/scripts/lib/oci.sh"

OUT="" TAG="" REGISTRY=docker.io/library ONLY=() REFRESH=0 PRINT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ -n "${2:-}" ] || die "--out needs a directory"; OUT=$2; shift;;
    --tag) [[ ${2:-} =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "--tag needs a tag ([A-Za-z0-9_.-])"; TAG=$2; shift;;
    --registry) [ -n "${2:-}" ] || die "--registry needs a prefix"; REGISTRY=${2%/}; shift;;
    --only) [ -n "${2:-}" ] || die "--only needs an image name"; ONLY+=("$2"); shift;;
    --refresh-root) REFRESH=1;;
    --print-dir) PRINT=1;;
    -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) die "unknown option $1 (--help)";;
  esac
  shift
done

# The lines of images.txt: "name crate binary profile root user".
images() { sed 's/#.*//' "$HERE/images.txt" | awk 'NF == 6'; }
# The agent's packages, sorted, once each.
packages() { sed 's/#.*//' "$HERE/agent-packages.txt" | awk 'NF >= 2 && $2 != "-" { print $2 }' | LC_ALL=C sort -u; }

SELECTED=()
while read -r name crate bin profile root user; do
  if [ ${#ONLY[@]} -gt 0 ]; then
    keep=0
    for o in "${ONLY[@]}"; do [ "$o" = "$name" ] || [ "smartnic-$o" = "$name" ] && keep=1; done
    [ $keep = 1 ] || continue
  fi
  SELECTED+=("$name $crate $bin $profile $root $user")
done < <(images)
for o in "${ONLY[@]}"; do
  images | awk -v o="$o" '$1 == o || $1 == "smartnic-" o { f = 1 } END { exit !f }' \
    || die "--only $o: no such image in deploy/images/images.txt ($(images | awk '{ printf "%s ", $1 }'))"
done

# The tag of image $1: --tag, else its newTag in deploy/kustomization.yaml.
tag_of() {
  if [ -n "$TAG" ]; then echo "$TAG"; return; fi
  local t
  t=$(awk -v n="$1" '$1 == "-" && $2 == "name:" { cur = $3; next }
    $1 == "newTag:" && cur == n { print $2; exit }' "$REPO/deploy/kustomization.yaml")
  [ -n "$t" ] || die "deploy/kustomization.yaml has no images: entry with a newTag for $1 (or pass --tag)"
  echo "$t"
}

# The sources' state: every file cargo or this script reads (not docs, the lab, the manifests).
sources_key() {
  {
    echo "recipe $RECIPE root $ROOT_RECIPE registry $REGISTRY tag ${TAG:-kustomization}"
    rustc -V 2>/dev/null || echo "no rustc"
    cat "$REPO/deploy/kustomization.yaml"
    cd "$REPO"
    if git rev-parse --git-dir >/dev/null 2>&1; then
      { git ls-files -co --exclude-standard -z -- . ':(exclude)*.md' ':(exclude)hw-tests' \
          ':(exclude)examples' ':(exclude)firmware-notes' ':(exclude).ci' ':(exclude)deploy'
        git ls-files -co --exclude-standard -z -- deploy/images scripts/lib/oci.sh; } \
        | LC_ALL=C sort -zu | xargs -0 -r sha256sum 2>/dev/null || true
    else
      find . -path ./target -prune -o -type f -not -name '*.md' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
    fi
  } | sha256sum | cut -c1-16
}

DEFAULT_OUT="$CACHE/images-$(sources_key)"
if [ $PRINT = 1 ]; then echo "$DEFAULT_OUT"; exit 0; fi
: "${OUT:=$DEFAULT_OUT}"
mkdir -p "$CACHE" "$OUT"
OUT=$(cd "$OUT" && pwd)
exec 9>"$CACHE/.lock"
flock 9
umask 022

# What is already written (a rerun on the same sources): nothing to do.
todo=()
for l in "${SELECTED[@]}"; do
  read -r name _ _ _ _ _ <<<"$l"
  [ -f "$OUT/$name-$(tag_of "$name").tar" ] && grep -q "^$name-$(tag_of "$name").tar " "$OUT/images.txt" 2>/dev/null \
    && [ $REFRESH = 0 ] || todo+=("$l")
done

for t in jq tar gzip sha256sum cargo readelf; do
  command -v "$t" >/dev/null || die "$t is not installed"
done
start=$(date +%s)

# --- the binaries: one cargo command per profile, static musl
if [ ${#todo[@]} -gt 0 ]; then
  command -v musl-gcc >/dev/null || die "musl-gcc is not installed (apt-get install musl-tools: ring's C code for the musl target)"
  rustup target list --installed 2>/dev/null | grep -qx "$TARGET" \
    || rustup target add "$TARGET" >/dev/null 2>&1 || die "the $TARGET target is not installed (rustup target add $TARGET)"
  export CARGO_INCREMENTAL=0
  for profile in $(printf '%s\n' "${todo[@]}" | awk '{ print $4 }' | LC_ALL=C sort -u); do
    args=()
    while read -r _ crate bin p _ _; do
      [ "$p" = "$profile" ] && args+=(-p "$crate" --bin "$bin")
    done < <(printf '%s\n' "${todo[@]}")
    echo "cargo build --profile $profile --target $TARGET ${args[*]}"
    (cd "$REPO" && cargo build --locked --profile "$profile" --target "$TARGET" "${args[@]}") \
      || die "cargo build --profile $profile failed"
  done
fi
TDIR=${CARGO_TARGET_DIR:-$REPO/target}
build_secs=$(($(date +%s) - start))

# --- the agent's Debian root: cached by the package list, suite, mirror and recipe
debian_uri() {
  local uri=""
  if [ -f "$REPO/hw-tests/lab/image.sh" ]; then
    # shellcheck source=../../hw-tests/lab/image.sh
    uri=$(LAB_RELEASE=$SUITE; . "$REPO/hw-tests/lab/image.sh"; LAB_RELEASE=$SUITE lab_debian_uri 2>/dev/null) || true
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# Prints the path of the root's tar (numeric owners kept, names sorted, mtimes 0).
debian_root() {
  local mirror key tarf r pkgs
  mirror=$(debian_uri)
  pkgs=$(packages | paste -sd, -)
  key=$( { echo "root $ROOT_RECIPE $SUITE $mirror"; packages; } | sha256sum | cut -c1-16)
  tarf="$CACHE/debian-root-$key.tar"
  if [ -f "$tarf" ] && [ $REFRESH = 0 ]; then echo "$tarf"; return; fi
  [ "$(id -u)" = 0 ] || die "the agent's Debian root needs root (debootstrap); run as root or --only others"
  if ! command -v debootstrap >/dev/null; then
    echo "installing debootstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1; } \
      || die "debootstrap is not installed and apt-get install debootstrap failed"
  fi
  r=$(mktemp -d "$CACHE/root.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$r'" EXIT
  echo "debootstrap --variant=minbase --include=$pkgs $SUITE $mirror" >&2
  debootstrap --variant=minbase --include="$pkgs" --components=main "$SUITE" "$r/root" "$mirror" \
    >"$r/debootstrap.log" 2>&1 || { tail -n 20 "$r/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  # Debian's fixes since the release: bookworm-updates and bookworm-security.
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' "$mirror" "$SUITE" \
    "$mirror" "$SUITE" "${mirror%/debian}/debian-security" "$SUITE" >"$r/root/etc/apt/sources.list"
  { chroot "$r/root" apt-get update -qq && DEBIAN_FRONTEND=noninteractive chroot "$r/root" \
      apt-get -y -qq -o APT::Install-Recommends=false upgrade; } >"$r/upgrade.log" 2>&1 \
    || { tail -n 20 "$r/upgrade.log" >&2; die "apt-get upgrade in the root failed (log above)"; }
  printf 'deb http://deb.debian.org/debian %s main\ndeb http://deb.debian.org/debian %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
    "$SUITE" "$SUITE" "$SUITE" >"$r/root/etc/apt/sources.list"
  # What the image must not carry: package lists and caches, docs and translations, logs, the
  # host's name and resolver (debootstrap copies them; the runtime provides its own), device nodes
  # and mount points' contents (the runtime mounts them), byte code written at install time.
  (
    cd "$r/root"
    rm -rf var/lib/apt/lists/* var/cache/apt/* var/cache/debconf/*-old var/lib/dpkg/*-old \
      var/cache/ldconfig/aux-cache usr/share/doc/* usr/share/man/* usr/share/info/* \
      usr/share/lintian usr/share/locale/*/ etc/hostname etc/resolv.conf dev/* proc/* sys/* run/* tmp/* var/tmp/*
    find var/log -type f -delete
    find . -xdev -name __pycache__ -type d -prune -exec rm -rf {} +
    # the day each system account was made (pwconv): the same root on another day is the same
    sed -i -E 's/^([^:]*:[^:]*:)[0-9]+:/\1:/' etc/shadow
    rm -f etc/shadow- etc/gshadow- etc/passwd- etc/group-
  )
  oci_tar "$r/root" "$tarf.new" keep-owners
  mv "$tarf.new" "$tarf"
  # one root is kept: the one of the current list
  find "$CACHE" -maxdepth 1 -name 'debian-root-*.tar' ! -path "$tarf" -delete
  rm -rf "$r"
  trap - EXIT
  echo "$tarf"
}

# --- the images
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
touch "$OUT/images.txt"
for l in "${todo[@]}"; do
  read -r name crate bin profile root user <<<"$l"
  tag=$(tag_of "$name")
  exe="$TDIR/$TARGET/$profile/$bin"
  [ -x "$exe" ] || die "$exe was not built"
  hdr=$(readelf -l "$exe" 2>&1)
  ! grep -q 'program interpreter' <<<"$hdr" || die "$exe is not static ($(grep 'program interpreter' <<<"$hdr"))"
  w="$tmp/$name"
  mkdir -p "$w/bin/usr/local/bin"
  install -m 0755 "$exe" "$w/bin/usr/local/bin/$bin"
  layers=()
  case "$root" in
    empty)
      mkdir -p "$w/bin/etc" "$w/bin/tmp"
      chmod 1777 "$w/bin/tmp"
      printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$w/bin/etc/passwd"
      printf 'root:x:0:\nnonroot:x:65532:\nnogroup:x:65534:\n' >"$w/bin/etc/group"
      layers=("$w/bin");;
    debian)
      droot=$(debian_root)
      layers=("$droot" "$w/bin");;
    *) die "images.txt: $name has root $root (empty or debian)";;
  esac
  cfg=$(jq -cn --arg e "/usr/local/bin/$bin" --arg u "$user" --arg n "$name" --arg t "$tag" '{
    User: $u, Entrypoint: [$e], WorkingDir: "/",
    Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    Labels: { "org.opencontainers.image.title": $n, "org.opencontainers.image.version": $t } }')
  file="$name-$tag.tar"
  oci_image "$REGISTRY/$name" "$tag" "$cfg" deploy/images/build.sh "$tmp/$file" "${layers[@]}"
  mv "$tmp/$file" "$OUT/$file"
  grep -v "^$file " "$OUT/images.txt" >"$tmp/list" || true
  echo "$file $REGISTRY/$name:$tag sha256:$OCI_MANIFEST $(stat -c %s "$OUT/$file") $OCI_UNPACKED" >>"$tmp/list"
  LC_ALL=C sort "$tmp/list" >"$OUT/images.txt"
  rm -rf "$w"
done

# The cache keeps the three newest source states' images (each some 70 MB).
if [ "$OUT" = "$DEFAULT_OUT" ]; then
  find "$CACHE" -maxdepth 1 -type d -name 'images-*' -printf '%T@ %p\n' | sort -rn | tail -n +4 \
    | cut -d' ' -f2- | while read -r d; do [ "$d" = "$OUT" ] || rm -rf "$d"; done
fi

echo "images in $OUT ($(( $(date +%s) - start )) s, of which cargo ${build_secs} s):"
for l in "${SELECTED[@]}"; do
  read -r name _ <<<"$l"
  awk -v f="$name-$(tag_of "$name").tar" '$1 == f {
    printf "  %-34s %-48s %7.1f MB (unpacked %6.1f MB)\n", $1, $2, $4 / 1e6, $5 / 1e6 }' "$OUT/images.txt"
done

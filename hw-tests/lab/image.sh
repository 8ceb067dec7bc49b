# shellcheck shell=bash
# The lab's guest image, sourced by hw-tests/run.
#
# What it builds, once, into $LAB_CACHE (never into the repository):
#   - a stock Debian kernel from bookworm-backports (6.12 series), unpacked;
#   - netdevsim.ko, compiled out of tree from the matching linux-source package
#     against the matching linux-headers (Debian ships "# CONFIG_NETDEVSIM is not set");
#   - an initramfs: busybox + bash + dash + iproute2 (backports) + ethtool + kmod +
#     pciutils + jq + Open vSwitch + socat (the cluster suites forward two ports with it), their
#     shared libraries, the kernel modules the suites need, and hw-tests/lab/init as /init.
#
# Everything is keyed so that a second call costs a few file reads: the kernel
# version is pinned in $LAB_CACHE/kernel.pin on first use, and the initramfs
# carries a stamp of its inputs. Builds take an exclusive flock on the cache.

LAB_CACHE=${SMARTNIC_LAB_CACHE:-/var/tmp/smartnic-lab}
LAB_RELEASE=bookworm
LAB_BPO=$LAB_RELEASE-backports

# Userland of the guest. Shared libraries are not listed: lab_rootfs follows the
# ELF DT_NEEDED entries of what it unpacks and adds the packages that provide them.
LAB_PKGS="busybox-static bash dash kmod ethtool pciutils pci.ids jq gojq openvswitch-switch openvswitch-common socat
 ${SMARTNIC_LAB_EXTRA_PKGS:-}"
# Taken from backports: an iproute2 (ip/tc/devlink) that knows the 6.12 kernel's attributes.
LAB_BPO_PKGS="iproute2"
# Kernel modules shipped in the initramfs; their dependencies (and softdeps) are added.
LAB_MODULES="igb igbvf vfio-pci 9p 9pnet_virtio veth dummy bridge 8021q macvlan ipvlan geneve vxlan tun
 openvswitch psample sch_ingress cls_flower cls_matchall act_mirred act_gact act_vlan act_tunnel_key
 act_pedit act_csum act_skbedit act_ct act_police act_sample nfnetlink nf_conntrack_netlink
 crc32c_generic crc32c-intel rdma_rxe crc32_generic overlay virtio_net"

lab_log() { echo "lab: $*" >&2; }
lab_die() { echo "lab: error: $*" >&2; exit 3; }

# ------------------------------------------------------------------ host side

# Refreshes the apt lists when they are missing (a fresh container has none).
lab_apt_ready() {
  [ -n "${LAB_APT_READY:-}" ] && return 0
  local pol
  pol=$(apt-cache policy busybox-static 2>/dev/null || true)
  if [[ "$pol" != *"Candidate: "[0-9]* ]]; then
    lab_log "apt lists are empty; running apt-get update"
    apt-get update -qq >/dev/null || lab_die "apt-get update failed"
  fi
  LAB_APT_READY=1
}

lab_apt_install() {
  [ "$(id -u)" = 0 ] || lab_die "need root to install: $*"
  lab_apt_ready
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || lab_die "apt-get install $* failed"
}

# Prints the first Debian archive URI configured for $LAB_RELEASE (not the
# security archive), from deb822 .sources files or one-line .list files.
lab_debian_uri() {
  local f out etc=${LAB_APT_ETC:-/etc/apt}
  for f in "$etc"/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: stanzas separated by blank lines; keep the first enabled "deb"
    # stanza whose Suites contain the release itself.
    out=$(awk -v rel="$LAB_RELEASE" '
      function done_stanza() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " rel " ") && tolower(enabled) != "no" && uri != "") {
          print uri; found = 1
        }
        types = suites = uri = enabled = ""
      }
      found { next }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { done_stanza(); next }
      { key = tolower($1); $1 = ""; sub(/^ +/, "") }
      key == "types:" { types = $0 } key == "suites:" { suites = $0 }
      key == "uris:" { uri = $1 } key == "enabled:" { enabled = $0 }
      END { if (!found) done_stanza() }' "$f")
    [ -n "$out" ] && { echo "${out%%$'\n'*}"; return 0; }
  done
  for f in "$etc"/sources.list "$etc"/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # deb [options] URI SUITE COMPONENT...
    out=$(awk -v rel="$LAB_RELEASE" '
      $1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == rel) { print $i; exit } }' "$f")
    [ -n "$out" ] && { echo "$out"; return 0; }
  done
  return 1
}

# The kernel, iproute2 and QEMU >= 8 (needed for -device igb; bookworm itself
# has 7.2) come from bookworm-backports. Configure it from the Debian archive
# this machine already uses when it is missing.
lab_ensure_backports() {
  local pol uri
  pol=$(apt-cache policy 2>/dev/null || true)
  [[ "$pol" == *" $LAB_BPO/main "* ]] && return 0
  [ "$(id -u)" = 0 ] || lab_die "apt source $LAB_BPO is not configured (and adding it needs root)"
  . /etc/os-release 2>/dev/null || true
  [ "${VERSION_CODENAME:-}" = "$LAB_RELEASE" ] \
    || lab_die "the lab image is built from Debian $LAB_RELEASE packages; this host is ${PRETTY_NAME:-unknown} (run it in a $LAB_RELEASE container)"
  uri=$(lab_debian_uri) || lab_die "no Debian $LAB_RELEASE apt source found to derive $LAB_BPO from"
  lab_log "adding apt source $LAB_BPO ($uri)"
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uri" "$LAB_BPO" >"/etc/apt/sources.list.d/$LAB_BPO.sources"
  apt-get update -qq >/dev/null || lab_die "apt-get update failed after adding $LAB_BPO"
  LAB_APT_READY=1
}

lab_qemu_ok() {
  command -v qemu-system-x86_64 >/dev/null || return 1
  local devs
  devs=$(qemu-system-x86_64 -device help 2>/dev/null) || return 1
  [[ "$devs" == *'name "igb"'* ]]
}

# QEMU with the igb device model (QEMU >= 8.0).
lab_ensure_qemu() {
  lab_qemu_ok && return 0
  lab_ensure_backports
  lab_log "installing qemu-system-x86 from $LAB_BPO"
  lab_apt_install -t "$LAB_BPO" qemu-system-x86
  lab_qemu_ok || lab_die "qemu-system-x86_64 has no igb device (needs QEMU >= 8.0, from $LAB_BPO)"
}

# Tools that building the image needs (not booting it).
lab_ensure_build_tools() {
  local pkgs=() e
  for e in cpio:cpio xz:xz-utils make:make x86_64-linux-gnu-gcc-12:gcc-12 strip:binutils \
           readelf:binutils depmod:kmod modprobe:kmod dpkg-deb:dpkg sha256sum:coreutils zstd:zstd; do
    command -v "${e%%:*}" >/dev/null || pkgs+=("${e#*:}")
  done
  [ ${#pkgs[@]} = 0 ] && return 0
  lab_log "installing build tools: ${pkgs[*]}"
  lab_apt_install "${pkgs[@]}"
}

# ------------------------------------------------------------------ packages

# lab_deb NAME [VERSION] -> path of the cached .deb (newest first), or failure.
lab_deb() {
  local pat=$LAB_CACHE/debs/${1}_ f
  if [ -n "${2:-}" ]; then pat+="${2//:/%3a}_"; fi
  f=$(ls -t "$pat"*.deb 2>/dev/null) || return 1
  [ -n "$f" ] && echo "${f%%$'\n'*}"
}

# lab_fetch SPEC... where SPEC is NAME, NAME=VERSION or NAME/RELEASE: downloads
# what the cache lacks, in one apt-get call.
lab_fetch() {
  local spec name ver missing=()
  for spec in "$@"; do
    name=${spec%%[=/]*}; ver=""
    [[ "$spec" == *=* ]] && ver=${spec#*=}
    lab_deb "$name" "$ver" >/dev/null || missing+=("$spec")
  done
  [ ${#missing[@]} = 0 ] && return 0
  lab_ensure_backports
  lab_apt_ready
  lab_log "downloading ${#missing[@]} package(s)"
  (cd "$LAB_CACHE/debs" && apt-get download -q=2 -o APT::Sandbox::User=root "${missing[@]}") >&2 \
    || lab_die "apt-get download failed: ${missing[*]}"
  for spec in "${missing[@]}"; do
    name=${spec%%[=/]*}; ver=""
    [[ "$spec" == *=* ]] && ver=${spec#*=}
    lab_deb "$name" "$ver" >/dev/null || lab_die "apt-get download $spec left no .deb"
  done
}

# ------------------------------------------------------------------ kernel

# Sets LAB_KVER (6.12.95+deb12-amd64) and LAB_KPKGVER (6.12.95-1~bpo12+1): from
# SMARTNIC_LAB_KVER/SMARTNIC_LAB_KPKGVER, else from the cache's pin, else from
# what the backports kernel meta-package points at today (then pinned).
lab_kernel_pin() {
  local pin=$LAB_CACHE/kernel.pin show dep
  if [ -n "${SMARTNIC_LAB_KVER:-}" ]; then
    LAB_KVER=$SMARTNIC_LAB_KVER
    LAB_KPKGVER=${SMARTNIC_LAB_KPKGVER:?SMARTNIC_LAB_KPKGVER must be set with SMARTNIC_LAB_KVER}
  elif [ -s "$pin" ]; then
    read -r LAB_KVER LAB_KPKGVER <"$pin"
  else
    lab_ensure_backports
    lab_apt_ready
    show=$(apt-cache show "linux-image-amd64/$LAB_BPO" 2>/dev/null) \
      || lab_die "apt-cache show linux-image-amd64/$LAB_BPO failed"
    dep=$(sed -n 's/^Depends: linux-image-\([^ ,]*\) (= \([^)]*\)).*/\1 \2/p' <<<"$show")
    read -r LAB_KVER LAB_KPKGVER <<<"$dep"
    [ -n "${LAB_KPKGVER:-}" ] || lab_die "cannot tell the kernel version from linux-image-amd64/$LAB_BPO"
    [[ "$LAB_KVER" == 6.12.* ]] || lab_log "note: $LAB_BPO now carries kernel $LAB_KVER (the lab was written for 6.12)"
    echo "$LAB_KVER $LAB_KPKGVER" >"$pin"
    lab_log "kernel pinned: $LAB_KVER ($LAB_KPKGVER)"
  fi
  LAB_KDIR=$LAB_CACHE/kernel/$LAB_KVER
}

lab_kernel() {
  if [ -f "$LAB_KDIR/modules.ok" ]; then
    [ -e "$LAB_KDIR/vmlinux" ] || [ -e "$LAB_KDIR/vmlinux.none" ] || lab_vmlinux
    return 0
  fi
  lab_fetch "linux-image-$LAB_KVER=$LAB_KPKGVER"
  lab_log "unpacking kernel $LAB_KVER"
  rm -rf "$LAB_KDIR"; mkdir -p "$LAB_KDIR"
  dpkg-deb -x "$(lab_deb "linux-image-$LAB_KVER" "$LAB_KPKGVER")" "$LAB_KDIR"
  depmod -b "$LAB_KDIR" "$LAB_KVER" || lab_die "depmod of the unpacked kernel failed"
  lab_vmlinux
  touch "$LAB_KDIR/modules.ok"
}

# The uncompressed kernel (ELF with a PVH entry note), which QEMU boots directly:
# unpacking the zstd bzImage in the emulated CPU costs more than a second per boot.
# Without it (another compression, no PVH note) the bzImage is booted instead.
lab_vmlinux() {
  local z=$LAB_KDIR/boot/vmlinuz-$LAB_KVER out=$LAB_KDIR/vmlinux off magic notes
  rm -f "$out" "$out.none"
  touch "$out.none"
  command -v zstd >/dev/null || return 0
  for off in $(LC_ALL=C grep -obUaP '\x28\xb5\x2f\xfd' "$z" | cut -d: -f1); do
    # zstd complains about the bytes after the frame; the ELF header decides.
    { tail -c +$((off + 1)) "$z" | zstd -dcq >"$out.tmp" 2>/dev/null; } || true
    magic=$(head -c 4 "$out.tmp" | od -An -tx1 | tr -d ' \n')
    notes=$(readelf -n "$out.tmp" 2>/dev/null || true)
    # 0x12 = XEN_ELFNOTE_PHYS32_ENTRY, the PVH entry point QEMU needs.
    if [ "$magic" = 7f454c46 ] && [[ "$notes" == *"Unknown note type: (0x00000012)"* ]]; then
      mv "$out.tmp" "$out"
      rm -f "$out.none"
      break
    fi
  done
  rm -f "$out.tmp"
}

# netdevsim.ko from the kernel's own source, built against its own headers.
lab_netdevsim() {
  local ko=$LAB_KDIR/netdevsim.ko
  [ -f "$ko" ] && return 0
  local series common srcpkg w hdr d
  series=$(cut -d. -f1,2 <<<"$LAB_KVER")      # 6.12
  common=${LAB_KVER%-amd64}                    # 6.12.95+deb12
  srcpkg=linux-source-$series
  lab_fetch "linux-headers-$LAB_KVER=$LAB_KPKGVER" "linux-headers-$common-common=$LAB_KPKGVER" \
            "linux-kbuild-$common=$LAB_KPKGVER" "$srcpkg=$LAB_KPKGVER"
  w=$LAB_CACHE/tmp/netdevsim; rm -rf "$w"; mkdir -p "$w/root" "$w/src" "$w/build"
  for d in "linux-headers-$LAB_KVER" "linux-headers-$common-common" "linux-kbuild-$common"; do
    dpkg-deb -x "$(lab_deb "$d" "$LAB_KPKGVER")" "$w/root"
  done
  hdr=$w/root/usr/src/linux-headers-$LAB_KVER
  # The arch Makefile includes the -common one by its installed absolute path.
  sed -i "s#^include /usr/src/#include $w/root/usr/src/#" "$hdr/Makefile"
  lab_log "unpacking drivers/net/netdevsim from $srcpkg"
  dpkg-deb --fsys-tarfile "$(lab_deb "$srcpkg" "$LAB_KPKGVER")" \
    | tar -xO "./usr/src/$srcpkg.tar.xz" | xz -dc -T0 \
    | tar -x -C "$w/src" --wildcards "$srcpkg/drivers/net/netdevsim/*" \
    || lab_die "cannot unpack netdevsim from $srcpkg"
  cp "$w/src/$srcpkg/drivers/net/netdevsim/"* "$w/build/"
  lab_log "building netdevsim.ko"
  # No pahole here, so no BTF for the module.
  if ! make -s -C "$hdr" M="$w/build" CONFIG_NETDEVSIM=m CONFIG_DEBUG_INFO_BTF_MODULES= \
         -j"$(nproc)" modules >"$w/build.log" 2>&1; then
    tail -n 30 "$w/build.log" >&2
    lab_die "netdevsim build failed (log: $w/build.log)"
  fi
  strip --strip-debug -o "$ko.tmp" "$w/build/netdevsim.ko" && mv "$ko.tmp" "$ko"
  rm -rf "$w"
}

# ------------------------------------------------------------------ initramfs

# lab_soname_index -> "SONAME DEBFILE" lines for every cached library package.
lab_soname_index() {
  local f
  for f in "$LAB_CACHE"/debs/lib*.deb "$LAB_CACHE"/debs/zlib1g_*.deb; do
    [ -f "$f" ] || continue
    dpkg-deb -c "$f" | awk -v deb="$f" '{ n = split($6, p, "/"); if (p[n] ~ /\.so(\.[0-9]+)*$/) print p[n], deb }'
  done
}

# Unpacks the userland into $1, then adds library packages until every ELF
# file's DT_NEEDED resolves inside it.
lab_rootfs() {
  local r=$1 p deps names=() specs=() f index so debs_new missing
  for p in $LAB_BPO_PKGS; do specs+=("$p/$LAB_BPO"); done
  specs+=($LAB_PKGS libc6 libgcc-s1)
  # Candidate library packages: the lib* part of the dependency closure.
  lab_ensure_backports
  lab_apt_ready
  deps=$(apt-cache depends --recurse --important "${specs[@]}" 2>/dev/null) || lab_die "apt-cache depends failed"
  names=($(grep -E '^(lib|zlib1g)' <<<"$deps" | grep -vE -- '-(perl|dev|common|data|bin)$|^libpython|^libperl' | sort -u))
  lab_fetch "${specs[@]}" "${names[@]}"
  for p in $LAB_BPO_PKGS $LAB_PKGS libc6 libgcc-s1; do
    dpkg-deb --fsys-tarfile "$(lab_deb "$p")" | tar -x --keep-directory-symlink -C "$r"
  done
  # Character-set converters for iconv: not needed, and they need each other.
  rm -rf "$r"/usr/lib/x86_64-linux-gnu/gconv
  index=$(lab_soname_index)
  local done_debs=" "
  while :; do
    missing=$(lab_missing_sonames "$r")
    [ -z "$missing" ] && break
    debs_new=""
    for so in $missing; do
      f=$(awk -v so="$so" '$1 == so { print $2; exit }' <<<"$index")
      [ -n "$f" ] || lab_die "no package provides $so (needed in the guest)"
      [[ "$done_debs" == *" $f "* ]] && lab_die "$so is still missing after unpacking ${f##*/}"
      [[ " $debs_new " == *" $f "* ]] || debs_new+=" $f"
    done
    for f in $debs_new; do
      done_debs+="$f "
      dpkg-deb --fsys-tarfile "$f" | tar -x --keep-directory-symlink -C "$r"
    done
  done
}

# Prints the sonames that ELF files under $1 need and $1 does not have.
lab_missing_sonames() {
  local r=$1 f line have=" "
  for f in "$r"/usr/lib/x86_64-linux-gnu/*.so* "$r"/usr/lib64/*.so*; do
    [ -e "$f" ] && have+="${f##*/} "
  done
  find "$r/usr/bin" "$r/usr/sbin" "$r/usr/lib" -type f \( -perm -u+x -o -name '*.so*' \) -print0 \
    | { xargs -0 readelf -d 2>/dev/null || true; } \
    | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u \
    | while read -r line; do [[ "$have" == *" $line "* ]] || echo "$line"; done
}

lab_initramfs_stamp() {
  { cat "$LAB_HW/lab/image.sh" "$LAB_HW/lab/init" "$LAB_KDIR/netdevsim.ko"
    echo "$LAB_KVER $LAB_KPKGVER ${SMARTNIC_LAB_EXTRA_PKGS:-}"; } | sha256sum | cut -c1-16
}

lab_initramfs() {
  LAB_INITRD=$LAB_CACHE/initramfs-$LAB_KVER.cpio
  local stamp r mods m
  stamp=$(lab_initramfs_stamp)
  if [ "${LAB_REBUILD:-0}" = 0 ] && [ -f "$LAB_INITRD" ] && [ "$(cat "$LAB_INITRD.stamp" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  lab_log "building the initramfs"
  r=$LAB_CACHE/tmp/rootfs; rm -rf "$r"
  mkdir -p "$r"/usr/{bin,sbin,lib,lib64} "$r"/{proc,sys,dev,run,tmp,root,etc,var/tmp,mnt}
  # Debian's merged-/usr layout, so packages that still ship /bin or /lib land in /usr.
  for d in bin sbin lib lib64; do ln -s "usr/$d" "$r/$d"; done
  lab_rootfs "$r"
  rm -rf "$r"/usr/share/{doc,man,info,locale,lintian,bug,bash-completion,zsh,python3} \
         "$r"/usr/lib/python3* "$r"/usr/share/openvswitch/python "$r"/etc/init.d "$r"/usr/lib/systemd
  # busybox provides whatever the Debian packages did not (mount, sleep, free, ...).
  local a bb=$r/usr/bin/busybox
  for a in $("$bb" --list-full); do
    a=usr/${a#usr/}
    [ -e "$r/$a" ] || [ -L "$r/$a" ] || ln -s /usr/bin/busybox "$r/$a"
  done
  # Inside busybox sh the Debian busybox-static build prefers its own applets
  # (a script's "ip" would be busybox ip); /bin/sh is dash, suites run under bash.
  ln -sf dash "$r/usr/bin/sh"
  # ovs-vswitchd is an alternatives link that the maintainer script would create.
  [ -e "$r/usr/sbin/ovs-vswitchd" ] || ln -s ../lib/openvswitch-switch/ovs-vswitchd "$r/usr/sbin/ovs-vswitchd"
  mkdir -p "$r"/etc/openvswitch "$r"/var/{lib,log,run}/openvswitch
  echo "root:x:0:0:root:/root:/bin/bash" >"$r/etc/passwd"
  echo "root:x:0:" >"$r/etc/group"
  echo "127.0.0.1 localhost smartnic-lab" >"$r/etc/hosts"
  # Kernel modules with their dependencies and softdeps.
  mods=$(modprobe -d "$LAB_KDIR" -S "$LAB_KVER" --show-depends -a $LAB_MODULES) \
    || lab_die "a module in LAB_MODULES is missing from kernel $LAB_KVER"
  for m in $(awk '$1 == "insmod" { print $2 }' <<<"$mods" | sort -u); do
    m=${m#"$LAB_KDIR"/}
    mkdir -p "$r/usr/${m%/*}"
    # Stored uncompressed: xz in the guest costs seconds of emulated CPU at boot.
    case "$m" in
      *.xz) xz -dc "$LAB_KDIR/$m" >"$r/usr/${m%.xz}";;
      *) cp "$LAB_KDIR/$m" "$r/usr/$m";;
    esac
  done
  m=$r/usr/lib/modules/$LAB_KVER
  cp "$LAB_KDIR/lib/modules/$LAB_KVER"/modules.{builtin,builtin.modinfo,order} "$m/"
  mkdir -p "$m/extra"; cp "$LAB_KDIR/netdevsim.ko" "$m/extra/"
  depmod -b "$r" "$LAB_KVER" || lab_die "depmod in the initramfs failed"
  install -m 0755 "$LAB_HW/lab/init" "$r/init"
  # Module autoloading without udev: "busybox uevent" runs this per kernel uevent.
  printf '%s\n' '#!/bin/dash' '# runs for each kernel uevent: load the driver for a new device' \
    '[ "$ACTION" = add ] && [ -n "$MODALIAS" ] && exec /usr/sbin/modprobe -q -b "$MODALIAS"' 'exit 0' \
    >"$r/usr/sbin/lab-uevent"
  chmod 0755 "$r/usr/sbin/lab-uevent"
  # Uncompressed: inflating 24 MB in the emulated CPU delays every boot by ~2 s.
  (cd "$r" && find . -print0 | cpio --null -o -H newc --quiet) >"$LAB_INITRD.tmp" \
    || lab_die "cpio of the initramfs failed"
  mv "$LAB_INITRD.tmp" "$LAB_INITRD"
  echo "$stamp" >"$LAB_INITRD.stamp"
  lab_log "initramfs: $(du -h "$LAB_INITRD" | cut -f1), $(find "$m" -name '*.ko*' | wc -l) modules"
  rm -rf "$r"
}

# lab_image: makes sure kernel, netdevsim.ko and initramfs are built; sets
# LAB_VMLINUZ and LAB_INITRD. Safe to call from parallel runs.
lab_image() {
  mkdir -p "$LAB_CACHE"/{debs,kernel,tmp,runs}
  exec {LAB_LOCK_FD}>"$LAB_CACHE/.lock"
  flock "$LAB_LOCK_FD"
  lab_kernel_pin
  if [ ! -f "$LAB_KDIR/modules.ok" ] || [ ! -f "$LAB_KDIR/netdevsim.ko" ] || [ "${LAB_REBUILD:-0}" = 1 ] \
     || [ "$(cat "$LAB_CACHE/initramfs-$LAB_KVER.cpio.stamp" 2>/dev/null)" != "$(lab_initramfs_stamp 2>/dev/null)" ]; then
    lab_ensure_build_tools
  fi
  lab_kernel
  lab_netdevsim
  lab_initramfs
  LAB_VMLINUZ=$LAB_KDIR/vmlinux
  [ -f "$LAB_VMLINUZ" ] || LAB_VMLINUZ=$LAB_KDIR/boot/vmlinuz-$LAB_KVER
  flock -u "$LAB_LOCK_FD"
  exec {LAB_LOCK_FD}>&-
}

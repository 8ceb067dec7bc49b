# hw-tests/lib/go-build.sh: what the pinned builds (k8s/, peers/, node/) share. Sourced by their
# scripts, which define die().

# go_or_die WHAT CMD...: runs CMD, printing its output less go's download chatter. When it fails,
# prints its last lines and dies naming the module the proxy refused, where go named one (buried in
# a long line).
go_or_die() {
  local what=$1; shift
  local out
  if ! out=$("$@" 2>&1); then
    echo "$out" | tail -n 20 >&2
    local mod
    mod=$(echo "$out" | grep -oE '[a-z0-9.-]+\.[a-z]+/[^ :@]+@v[^ :]+' | head -n 1 || true)
    die "$what failed${mod:+ (module $mod)}"
  fi
  [ -z "$out" ] || echo "$out" | grep -v '^go: downloading' || true
}

# deb_download PACKAGE DIR: Debian's .deb of PACKAGE into DIR (`apt-get download`: nothing is
# installed); when the package lists are missing or stale, root refreshes them once and retries.
deb_download() {
  (cd "$2" && apt-get download "$1" >/dev/null 2>&1) && return 0
  [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 || true
  (cd "$2" && apt-get download "$1" >/dev/null 2>&1) || die "apt-get download $1 failed"
}

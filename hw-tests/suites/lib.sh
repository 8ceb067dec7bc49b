# shellcheck shell=bash
# Helpers for the hw-tests suites (sourced). TAP-like output:
#   ok N - what             passed
#   not ok N - what         failed; "#" lines under it say why
#   ok N - what # SKIP why  not run, with the reason
# and a last line "N passed, N failed[, N skipped]". `summary` ends the suite
# with exit status 1 if anything failed.

T_N=0 T_PASS=0 T_FAIL=0 T_SKIP=0
T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/hw-tests.XXXXXX")
T_CLEANUPS=()

# on_exit CMD: run CMD (a string) when the suite ends, newest first.
on_exit() { T_CLEANUPS=("$1" "${T_CLEANUPS[@]}"); }
t_exit() {
  local c
  for c in "${T_CLEANUPS[@]}"; do eval "$c" >/dev/null 2>&1; done
  rm -rf "$T_TMP"
}
trap t_exit EXIT

section() { echo "# --- $*"; }
note() { echo "# $*"; }
# diag TEXT: indented "#" lines (multi-line text allowed, long output cut).
diag() { [ -n "$1" ] && printf '%s\n' "$1" | head -n 20 | sed 's/^/#   /'; return 0; }

ok() { T_N=$((T_N + 1)); T_PASS=$((T_PASS + 1)); echo "ok $T_N - $1"; }
fail() {
  T_N=$((T_N + 1)); T_FAIL=$((T_FAIL + 1)); echo "not ok $T_N - $1"
  [ $# -gt 1 ] && diag "$2"
  return 0
}
skip() { T_N=$((T_N + 1)); T_SKIP=$((T_SKIP + 1)); echo "ok $T_N - $1 # SKIP $2"; }

# check WHAT CMD...: ok if CMD exits 0.
check() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$what"; else fail "$what" "\$ $*"$'\n'"$out"; fi
}

# expect_eq WHAT GOT WANT
expect_eq() {
  if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "got:  '$2'"$'\n'"want: '$3'"; fi
}

# expect_match WHAT TEXT REGEX (bash ERE, case-insensitive)
expect_match() {
  local rc
  shopt -s nocasematch
  [[ "$2" =~ $3 ]]; rc=$?
  shopt -u nocasematch
  if [ $rc = 0 ]; then ok "$1"; else fail "$1" "text:  '$2'"$'\n'"wants: /$3/"; fi
}

# wait_for SECS CMD...: runs CMD every 0.2 s until it succeeds or SECS seconds of wall time have
# passed (counted by the clock, not by tries: a try that runs kubectl takes about a second in the
# emulated guest); CMD runs at least once.
wait_for() {
  local deadline=$(( $(now_ms) + $1 * 1000 ))
  shift
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# JSON queries: gojq when installed (jq 1.6 needs ~0.3 s to start under
# emulation, gojq ~0.05 s; the suites make a hundred queries), else jq.
if command -v gojq >/dev/null; then
  jq() { gojq "$@"; }
fi
have_jq() { command -v gojq >/dev/null || command -v jq >/dev/null; }

# lab_bin NAME: a workspace binary: the one on PATH (the lab's /lab/bin), else the
# workspace's target/debug or target/release build; nothing when neither exists.
lab_bin() {
  local p
  p=$(command -v "$1") && { echo "$p"; return; }
  for p in debug release; do
    [ -x "$(dirname "${BASH_SOURCE[0]}")/../../target/$p/$1" ] \
      && { echo "$(cd "$(dirname "${BASH_SOURCE[0]}")/../../target/$p" && pwd)/$1"; return; }
  done
  return 0
}

# milliseconds since the epoch (busybox date has no %N; bash 5 has EPOCHREALTIME)
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# The smartnicctl under test: $SMARTNICCTL, else lab_bin's.
SMARTNICCTL=${SMARTNICCTL:-$(lab_bin smartnicctl)}

# cni CMD ID NETNS IFNAME CONF: the smartnic CNI plugin ($SMARTNIC, which the suite sets) as a
# runtime invokes it: CNI_* environment (CNI_ARGS and SMARTNIC_CNI_STATE_DIR as exported or set
# for the call), the configuration on stdin. Sets CNI_RC and CNI_OUT; cni_diag says what happened.
cni() {
  CNI_OUT=$(CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=$3 CNI_IFNAME=$4 CNI_PATH=/lab/bin:/usr/lib/cni \
    timeout 60 "$SMARTNIC" <<<"$5" 2>"$T_TMP/cni.err")
  CNI_RC=$?
}
cni_diag() { printf 'exit %s\n%s\n%s' "$CNI_RC" "$CNI_OUT" "$(cat "$T_TMP/cni.err")"; }

# A private Open vSwitch in DIR (exported as its run, log, db and config directory), stopped
# when the suite ends. ovs_db_start first; settings read at start (hw-offload) go in between;
# then ovs_vswitchd_start.
ovs_db_start() {
  local d=$1
  export OVS_RUNDIR=$d OVS_LOGDIR=$d OVS_DBDIR=$d OVS_SYSCONFDIR=$d
  ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  ovsdb-server "$d/conf.db" --remote="punix:$d/db.sock" --pidfile="$d/ovsdb-server.pid" \
    --unixctl="$d/ovsdb-server.ctl" --log-file="$d/ovsdb-server.log" -vconsole:off --detach --no-chdir
  on_exit "ovs-appctl -t $d/ovsdb-server.ctl exit"
  ovs-vsctl --db="unix:$d/db.sock" --no-wait init
}
ovs_vswitchd_start() {
  local d=$1
  # OVS 3.1 counts CPU cores only once the monotonic clock passed 10 s; started earlier it runs
  # no upcall handlers and drops every upcall (lab notes, gotcha 10).
  while [ "$(cut -d. -f1 /proc/uptime)" -lt 11 ]; do sleep 0.5; done
  ovs-vswitchd "unix:$d/db.sock" --pidfile="$d/ovs-vswitchd.pid" --unixctl="$d/ovs-vswitchd.ctl" \
    --log-file="$d/ovs-vswitchd.log" -vconsole:off --detach --no-chdir 2>>"$d/stderr.log"
  # dpif_netlink logs "failed to offload flow: ..." at debug level only.
  ovs-appctl -t "$d/ovs-vswitchd.ctl" vlog/set dpif_netlink:file:dbg >/dev/null
}
ovs_vswitchd_stop() {
  ovs-appctl -t "$1/ovs-vswitchd.ctl" exit >/dev/null 2>&1
  wait_for 10 sh -c "! kill -0 \$(cat $1/ovs-vswitchd.pid) 2>/dev/null"
}

# ctl ARGS...: runs smartnicctl; sets CTL_RC, CTL_OUT (stdout), CTL_ERR (stderr)
# and CTL_CMD. A hung command is stopped after $SMARTNIC_TEST_CMD_TIMEOUT s.
ctl() {
  CTL_CMD="smartnicctl $*"
  if [ -z "$SMARTNICCTL" ]; then
    CTL_RC=127 CTL_OUT="" CTL_ERR="smartnicctl not found (build it or set SMARTNICCTL)"
    return 0
  fi
  timeout "${SMARTNIC_TEST_CMD_TIMEOUT:-90}" "$SMARTNICCTL" "$@" >"$T_TMP/out" 2>"$T_TMP/err"
  CTL_RC=$?
  CTL_OUT=$(cat "$T_TMP/out")
  CTL_ERR=$(cat "$T_TMP/err")
  [ "$CTL_RC" = 124 ] && CTL_ERR+=$'\n'"(timed out after ${SMARTNIC_TEST_CMD_TIMEOUT:-90}s)"
  return 0
}
ctl_diag() { printf '$ %s\nexit %s\n%s' "$CTL_CMD" "$CTL_RC" "${CTL_ERR:-$CTL_OUT}"; }

# ctl_ok WHAT ARGS...: smartnicctl ARGS must exit 0. Returns the same verdict.
ctl_ok() {
  local what=$1
  shift
  ctl "$@"
  if [ "$CTL_RC" = 0 ]; then ok "$what"; return 0; fi
  fail "$what" "$(ctl_diag)"
  return 1
}

# ctl_usage_error: the last ctl call was refused as a command line (a command or
# option that does not exist yet, a value it does not know) or is a stub.
ctl_usage_error() {
  [ "$CTL_RC" = 2 ] && return 0
  [[ "$CTL_ERR" =~ (unexpected argument|unrecognized subcommand|invalid value|required arguments were not provided|not implemented) ]]
}

# ctl_fails WHAT ARGS...: smartnicctl ARGS must fail: exit non-zero with an
# error of its own (not a crash, a timeout or a command-line rejection).
ctl_fails() {
  local what=$1
  shift
  ctl "$@"
  if [ "$CTL_RC" = 0 ]; then
    fail "$what" "$(printf '$ %s\nexpected a failure, it succeeded:\n%s' "$CTL_CMD" "$CTL_OUT")"
    return 1
  elif [ "$CTL_RC" -ge 101 ] || ctl_usage_error; then   # 101 = Rust panic, 124 = timeout, 128+ = signal
    fail "$what" "$(ctl_diag)"
    return 1
  fi
  ok "$what"
  diag "error text: $CTL_ERR"
  return 0
}

# ctl_json WHAT ARGS...: smartnicctl ARGS must exit 0 and print valid JSON,
# which is then in CTL_OUT. Returns the verdict.
ctl_json() {
  local what=$1
  shift
  ctl "$@"
  if [ "$CTL_RC" != 0 ]; then fail "$what" "$(ctl_diag)"; return 1; fi
  if ! jq -e . >/dev/null 2>&1 <<<"$CTL_OUT"; then
    fail "$what" "$(printf '$ %s\nnot JSON:\n%s' "$CTL_CMD" "$CTL_OUT")"
    return 1
  fi
  ok "$what"
}

# jv FILTER [JQ-ARGS...]: jq -r FILTER over CTL_OUT ("" on error or null).
jv() {
  local f=$1
  shift
  jq -r "$@" "($f) | select(. != null)" <<<"$CTL_OUT" 2>/dev/null
}

need_root() { [ "$(id -u)" = 0 ]; }

# lab: true inside the QEMU lab (SMARTNIC_TEST_LAB=1, set by hw-tests/lab/run-suites.sh), where
# every kernel feature and tool the suites use is present: a missing one is a failure there.
lab() { [ "${SMARTNIC_TEST_LAB:-0}" = 1 ]; }
# strict: a missing package or tool fails instead of skipping (the lab, or CI=true).
strict() { lab || [ "${CI:-}" = true ]; }

# missing WHAT WHY: WHAT cannot run because WHY (a package or tool is not installed): a failure
# in the lab or with CI=true, a skip elsewhere.
missing() {
  if strict; then fail "$1" "$2"; else skip "$1" "$2"; fi
}

# have_tool TOOL WHAT: true when TOOL is installed; otherwise WHAT is reported as missing
# (skipped, or failed when strict), so a check is never dropped silently.
have_tool() {
  command -v "$1" >/dev/null && return 0
  missing "$2" "$1 is not installed"
  return 1
}

# summary: the last line, and the suite's exit status.
summary() {
  local s="$T_PASS passed, $T_FAIL failed"
  [ "$T_SKIP" -gt 0 ] && s+=", $T_SKIP skipped"
  echo "$s"
  [ "$T_FAIL" = 0 ]
  exit $?
}

#!/bin/bash
# Runs hw-tests suites one after the other and sums them up. Called inside the
# lab guest (by the start script hw-tests/run writes) and on a real host
# (hw-tests/run --host).
#
# usage: run-suites.sh OUTDIR SUITE...
# Each suite's output goes to the console and to OUTDIR/SUITE.log; the summary to
# OUTDIR/summary.txt. Exit status 0 only if every suite passed.
#
# In the guest (SMARTNIC_LAB_GUEST=1) every suite starts from the same state:
# no VFs on any PF, no netdevsim devices. SMARTNIC_TEST_PF defaults to the
# first igb PF and SMARTNIC_TEST_LAB=1 turns on the expectations that hold for
# the emulated hardware (see hw-tests/README.md).
set -u
HW=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$1
shift
mkdir -p "$OUT"

uptime_s() { cut -d' ' -f1 /proc/uptime; }
in_guest() { [ "${SMARTNIC_LAB_GUEST:-0}" = 1 ]; }

# Puts the guest back to "no VFs, no netdevsim devices".
guest_reset() {
  local d
  for d in /sys/bus/pci/devices/*; do
    [ -f "$d/sriov_numvfs" ] && [ "$(cat "$d/sriov_numvfs")" != 0 ] && echo 0 >"$d/sriov_numvfs"
  done
  for d in /sys/bus/netdevsim/devices/netdevsim*; do
    [ -e "$d" ] && echo "${d##*/netdevsim}" >/sys/bus/netdevsim/del_device
  done
  return 0
}

if in_guest; then
  export SMARTNIC_TEST_LAB=${SMARTNIC_TEST_LAB:-1}
  if [ -z "${SMARTNIC_TEST_PF:-}" ]; then
    for d in /sys/bus/pci/drivers/igb/0000:*/net/*; do
      [ -e "$d" ] && { SMARTNIC_TEST_PF=${d##*/}; break; }
    done
    [ -n "${SMARTNIC_TEST_PF:-}" ] && export SMARTNIC_TEST_PF
  fi
  echo "# lab: $(uname -r), $(ip -V 2>/dev/null), $(grep -c '^processor' /proc/cpuinfo) vCPU, PF ${SMARTNIC_TEST_PF:-none}"
fi

declare -a ROWS=()
nfail=0 tpass=0 tfail=0 tskip=0
for s in "$@"; do
  in_guest && guest_reset
  echo "=== suite $s"
  t0=$(uptime_s)
  SUITE_OUT=$OUT bash "$HW/suites/$s.sh" 2>&1 | tee "$OUT/$s.log"
  rc=${PIPESTATUS[0]}
  t1=$(uptime_s)
  last=$(tail -n 1 "$OUT/$s.log")
  if [[ ! "$last" =~ ^[0-9]+\ passed,\ [0-9]+\ failed(,\ [0-9]+\ skipped)?$ ]]; then
    echo "not ok - suite $s ended without its summary line (exit $rc)"
    last="no summary (exit $rc)"
    [ "$rc" = 0 ] && rc=1
  fi
  if [[ "$last" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
    tpass=$((tpass + BASH_REMATCH[1])) tfail=$((tfail + BASH_REMATCH[2])) tskip=$((tskip + ${BASH_REMATCH[4]:-0}))
  fi
  status=ok
  [ "$rc" = 0 ] || { status=FAILED; nfail=$((nfail + 1)); }
  ROWS+=("$(printf '%-14s %-7s %s (%ss)' "$s" "$status" "$last" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')")")
done
in_guest && guest_reset

{
  echo "=== summary"
  printf '%s\n' "${ROWS[@]}"
  echo "$(($# - nfail)) of $# suites passed"
  echo "lab: $tpass passed, $tfail failed, $tskip skipped"
} | tee "$OUT/summary.txt"

if in_guest; then
  dmesg >"$OUT/dmesg.txt" 2>&1
  # What the guest used, for sizing CI runners (MemAvailable includes the
  # reclaimable caches; the initramfs itself counts as Shmem).
  awk '/^(MemTotal|MemFree|MemAvailable|Shmem|Cached):/ { m[$1] = int($2 / 1024) }
       END { printf "# guest memory: total %d MiB, used %d MiB (total - available), free %d MiB, shmem %d MiB, cached %d MiB\n",
             m["MemTotal:"], m["MemTotal:"] - m["MemAvailable:"], m["MemFree:"], m["Shmem:"], m["Cached:"] }' /proc/meminfo \
    | tee -a "$OUT/summary.txt"
fi
[ "$nfail" = 0 ]

#!/usr/bin/env bash
# hw-tests/node/selftest.sh: proves on this machine (as root) that what hw-tests/node/build.sh and
# images.sh make works together: the binaries say their pinned versions and are static; the image
# tarballs are reproducible; a private containerd (its own root, state and socket under a temporary
# directory; the built runc and shim; the sandbox image set to the pause image; no NRI) loads its
# CRI plugins, imports both tarballs with `ctr -n k8s.io images import` under their full names, runs
# the busybox image to completion and the pause image until a SIGTERM stops it; Multus's thin plugin
# answers --version and the CNI VERSION command. Everything it started is stopped and removed.
#
# usage: hw-tests/node/selftest.sh      (builds first what is not built: build.sh, images.sh)
# Prints "ok N - ..." / "not ok N - ..." lines and "N passed, M failed"; exit 1 when one failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../suites/lib.sh
. "$HERE/../suites/lib.sh"

section "node build (hw-tests/node/build.sh, images.sh)"
if ! need_root; then
  skip "node self-test" "needs root (containerd, mounts)"
  summary
fi
if ! out=$("$HERE/build.sh" 2>&1); then
  fail "hw-tests/node/build.sh" "$out"
  summary
fi
ok "hw-tests/node/build.sh ($(grep -m1 -oE 'built (already|in [0-9]+ s)' <<<"$out"))"
if ! out=$("$HERE/images.sh" 2>&1); then
  fail "hw-tests/node/images.sh" "$out"
  summary
fi
ok "hw-tests/node/images.sh"
BIN=$("$HERE/build.sh" --print-dir)
IMAGES=$("$HERE/images.sh" --print-dir)
diag "$(cat "$BIN/versions.txt" "$IMAGES/images.txt")"

# The version each binary says is the one versions.txt (from the go.mod pins) names.
ver() { awk -v b="$1" '$1 == b { print $3 }' "$BIN/versions.txt"; }
for c in "containerd --version|containerd" "ctr --version|ctr" "containerd-shim-runc-v2 -v|containerd-shim-runc-v2" \
  "runc --version|runc" "multus --version|multus" "pause -v|pause"; do
  cmd=${c%|*} b=${c#*|} v=$(ver "${c#*|}")
  got=$("$BIN/${cmd%% *}" "${cmd#* }" 2>&1 | head -n 3 | tr '\n' ' ')
  case "$b" in runc|pause) want=${v#v};; *) want=$v;; esac
  if [ -n "$v" ] && [[ $got == *"$want"* ]]; then ok "$cmd says $v"; else fail "$cmd says ${v:-(no version in versions.txt)}" "$got"; fi
done
out=$("$BIN/runc" --version 2>&1)
expect_match "runc is built with seccomp (runc --version names libseccomp)" "$out" $'\nlibseccomp: [0-9]'
for b in containerd containerd-shim-runc-v2 ctr runc multus pause; do
  # (captured first: a `| grep -q` under pipefail fails when the writer is cut off)
  hdr=$(readelf -l "$BIN/$b" 2>&1)
  if [ -z "$hdr" ] || grep -q 'program interpreter' <<<"$hdr"; then
    fail "$b is linked static" "$(grep 'program interpreter' <<<"${hdr:-readelf printed nothing}")"
  else
    ok "$b is linked static"
  fi
done

section "multus (thin plugin)"
out=$(CNI_COMMAND=VERSION "$BIN/multus" <<<'{"cniVersion":"1.0.0"}' 2>&1)
if jq -e '.supportedVersions | index("1.0.0")' >/dev/null 2>&1 <<<"$out"; then
  ok "multus answers the CNI VERSION command (supports 1.0.0)"
else
  fail "multus answers the CNI VERSION command" "$out"
fi

section "images are reproducible"
if out=$("$HERE/images.sh" --out "$T_TMP/images2" 2>&1) \
  && cmp -s "$IMAGES/images.txt" "$T_TMP/images2/images.txt" \
  && cmp -s "$IMAGES/busybox.tar" "$T_TMP/images2/busybox.tar" && cmp -s "$IMAGES/pause.tar" "$T_TMP/images2/pause.tar"; then
  ok "a second write gives the same tarballs and digests"
else
  fail "a second write gives the same tarballs and digests" "$out"$'\n'"$(diff "$IMAGES/images.txt" "$T_TMP/images2/images.txt" 2>&1)"
fi
rm -rf "$T_TMP/images2"

section "containerd with the built runc and shim"
C="$T_TMP/c"
PAUSE=$(awk '$1 == "pause.tar" { print $2 }' "$IMAGES/images.txt")
BUSYBOX=$(awk '$1 == "busybox.tar" { print $2 }' "$IMAGES/images.txt")
# shellcheck source=private-containerd.sh
. "$HERE/private-containerd.sh"
if private_containerd "$C" "$BIN" "$PAUSE"; then
  ok "containerd starts on a private socket"
else
  fail "containerd starts on a private socket" "$(tail -n 20 "$C/containerd.log")"
  summary
fi
out=$("${CTR[@]}" plugins ls 2>&1)
bad=$(awk '($1 == "io.containerd.cri.v1" || ($1 == "io.containerd.grpc.v1" && $2 == "cri")) && $NF != "ok"' <<<"$out")
if grep -qE 'io\.containerd\.grpc\.v1 +cri +.* ok' <<<"$out" && [ -z "$bad" ]; then
  ok "its CRI plugins load (sandbox image $PAUSE, runc $BIN/runc)"
else
  fail "its CRI plugins load" "$(grep -i cri <<<"$out")"$'\n'"$(grep -iE 'error|level=warn' "$C/containerd.log" | tail -n 5)"
fi

for img in "$IMAGES/pause.tar|$PAUSE" "$IMAGES/busybox.tar|$BUSYBOX"; do
  f=${img%|*} name=${img#*|}
  if out=$(timeout 120 "${CTR[@]}" images import --snapshotter "$SNAP" "$f" 2>&1) \
    && grep -qx "$name" <<<"$("${CTR[@]}" images ls -q 2>/dev/null)"; then
    ok "ctr images import $(basename "$f") names it $name"
  else
    fail "ctr images import $(basename "$f") names it $name" "$out"$'\n'"$("${CTR[@]}" images ls -q 2>&1)"
  fi
done

# ctr_out WHAT WANT ARGS...: ctr ARGS must print WANT on stdout (its warnings, such as cgroup v1's
# deprecation, go to stderr and are shown only on a failure).
ctr_out() {
  local what=$1 want=$2 out
  shift 2
  out=$(timeout 120 "${CTR[@]}" "$@" 2>"$C/ctr.err")
  if [ "$out" = "$want" ]; then ok "$what"; else fail "$what" "got:  '$out'"$'\n'"want: '$want'"$'\n'"$(cat "$C/ctr.err")"; fi
}
ctr_out "busybox runs under the built runc (ctr run --rm ... echo ok)" ok \
  run --rm --snapshotter "$SNAP" --runc-binary "$BIN/runc" "$BUSYBOX" t1 /bin/busybox echo ok
ctr_out "busybox runs under runc's default seccomp profile (ctr run --seccomp)" ok \
  run --rm --seccomp --snapshotter "$SNAP" --runc-binary "$BIN/runc" "$BUSYBOX" t3 /bin/busybox echo ok
ctr_out "busybox has its applets on PATH (sh ping ip ... grep)" done \
  run --rm --snapshotter "$SNAP" --runc-binary "$BIN/runc" "$BUSYBOX" t2 \
  sh -c 'for a in sh ping ip sleep cat ls ifconfig hostname nslookup wget ps grep; do command -v $a >/dev/null || echo "no $a"; done; echo done'


if out=$(timeout 60 "${CTR[@]}" run -d --snapshotter "$SNAP" --runc-binary "$BIN/runc" "$PAUSE" p1 2>&1) \
  && wait_for 10 sh -c "'$BIN/ctr' --address '$C/containerd.sock' -n k8s.io tasks ls | grep -qE '^p1 +[0-9]+ +RUNNING'"; then
  ok "pause runs (ctr run -d)"
  "${CTR[@]}" tasks kill -s SIGTERM p1 >/dev/null 2>&1
  if wait_for 10 sh -c "'$BIN/ctr' --address '$C/containerd.sock' -n k8s.io tasks ls | grep -qE '^p1 +[0-9]+ +STOPPED'"; then
    ok "pause stops on SIGTERM"
  else
    fail "pause stops on SIGTERM" "$("${CTR[@]}" tasks ls 2>&1)"
  fi
else
  fail "pause runs (ctr run -d)" "$out"$'\n'"$("${CTR[@]}" tasks ls 2>&1)"
fi
"${CTR[@]}" tasks delete -f p1 >/dev/null 2>&1
"${CTR[@]}" containers delete p1 >/dev/null 2>&1
ctr_out "no container is left" "" containers ls -q

kill "$CPID"
if wait_for 20 sh -c "! kill -0 $CPID 2>/dev/null"; then ok "containerd stops on SIGTERM"; else fail "containerd stops on SIGTERM" ""; fi
shims=$(pgrep -f -- "$C/containerd.sock" | tr '\n' ' ')
expect_eq "no shim of it is left" "$shims" ""
mounts=$(grep -c " $C/" /proc/self/mounts)
expect_eq "no mount below its directories is left" "$mounts" "0"
summary

#!/bin/bash
# suite: agent - the node agent's plan and executor on real PFs: smartnicctl plan --apply
# needs: smartnicctl smartnic-agent
#
#   igb     on SMARTNIC_TEST_PF: 0 -> 7 VFs with stable MACs set through the PF and back to 0,
#           planned and applied by `smartnicctl plan --apply` (the agent's planner + executor);
#           a second plan reports "in sync".
#   2 PFs   SMARTNIC_TEST_PF and the next igb PF configured in one plan, one thread per PF; the
#           per-PF and whole-node times are printed.
#   wholePf the next igb PF offered whole: bound to vfio-pci (device-plugin hand-off lists it by
#           address), back to igb when the policy goes, then netdevice with MTU 9000.
#   agent   `smartnic-agent --spec-file` (the standalone mode: start-up and one pass, no
#           cluster) applies the spec `smartnicctl plan -o json` printed: 0 -> 7 VFs, in sync,
#           then an empty spec resets the PF to 0.
#   crash   `smartnic-agent --spec-file` on two igb PFs (7 netdevice VFs on one, 4 vfio-pci VFs
#           and MTU 9000 on the other) stopped at a step boundary of each step kind of the plan
#           (SMARTNIC_AGENT_FAILPOINT=before:KIND / after:KIND, see agent/src/failpoint.rs) and
#           killed with `kill -9`, then started again: each restart ends in sync with the VF
#           counts, VF MACs, drivers, MTU, state file and device-plugin hand-off of an
#           uninterrupted run (agent/tests/crash_binary.rs does 200+ kills on fixture trees).
#   netdevsim  a netdevsim device (not PCI: its identity is its devlink handle) legacy -> 4 VFs
#           -> switchdev with its 4 representors, by `smartnicctl plan --apply` and by the agent;
#           in sync afterwards, and an empty policy resets it to 0 VFs and legacy.
#
# Environment: SMARTNIC_TEST_PF (the lab sets its first igb); unset: skipped.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! need_root; then
  skip "agent suite" "needs root (it changes SR-IOV state)"
  summary
fi
if [ -z "${SMARTNIC_TEST_PF:-}" ]; then
  skip "agent suite" "SMARTNIC_TEST_PF is not set (no SR-IOV PF to configure)"
  summary
fi
if ! have_jq; then
  fail "jq (or gojq) is installed"
  summary
fi

PF=$SMARTNIC_TEST_PF
PFDEV=/sys/class/net/$PF/device
STATE=$T_TMP/agent-state.json
DP=$T_TMP/device-plugin.json
on_exit "echo 0 > $PFDEV/sriov_numvfs"

# policy_with NAME SELECTOR SPEC: one NicPolicy document; SELECTOR is its nicSelector line,
# SPEC more lines of its spec
policy_with() {
  cat <<YAML
apiVersion: smartnic.io/v1alpha1
kind: NicPolicy
metadata:
  name: $1
spec:
  nodeSelector:
    matchLabels:
      lab: "true"
  nicSelector:
    $2
$3
  resourceName: $1
---
YAML
}
# policy NAME PFNAME NUMVFS: NUMVFS VFs on PF PFNAME
policy() { policy_with "$1" "pfNames: [\"$2\"]" "  numVfs: $3"; }
apply() { ctl plan -f "$1" --apply --allow-disruption --state-file "$STATE" --device-plugin-file "$DP"; }
vf_macs() { ip -j link show "$1" | jq -r '[.[0].vfinfo_list[]?.address] | join(" ")'; }
numvfs() { cat "/sys/class/net/$1/device/sriov_numvfs"; }

section "igb $PF: 0 -> 7 VFs with MACs, back to 0"
policy "lab_vf" "$PF" 7 >"$T_TMP/seven.yaml"
# no policy at all: an explicit empty List (an empty file is refused as a mistake)
printf 'apiVersion: v1\nkind: List\nitems: []\n' >"$T_TMP/none.yaml"
if ctl_json "plan -o json ($PF, 7 VFs)" plan -f "$T_TMP/seven.yaml" -o json --state-file "$STATE"; then
  expect_eq "plan: vendor igb" "$(jv '.plan.pfs[0].vendor')" igb
  expect_eq "plan: disruption" "$(jv '.plan.class')" non-disruptive
  want_macs=$(jv '[.plan.pfs[0].steps[] | select(.step == "setVfMac") | .mac] | join(" ")')
  expect_eq "plan: a MAC step per VF" "$(wc -w <<<"$want_macs")" 7
fi
apply "$T_TMP/seven.yaml"
if [ "$CTL_RC" = 0 ]; then
  ok "plan --apply ($PF, 7 VFs)"
  diag "$CTL_OUT"
  expect_eq "sriov_numvfs" "$(numvfs "$PF")" 7
  expect_eq "VF MACs through the PF" "$(vf_macs "$PF")" "$want_macs"
  expect_match "the apply ends in sync" "$CTL_OUT" "in sync"
  check "device-plugin hand-off lists the PF" jq -e --arg p "$(basename "$(readlink -f "$PFDEV")")" \
    '[.resourceList[].selectors[].pfs[].pciAddress] | index($p)' "$DP"
else
  fail "plan --apply ($PF, 7 VFs)" "$(ctl_diag)"
fi
ctl plan -f "$T_TMP/seven.yaml" --state-file "$STATE"
expect_match "plan after apply: nothing to do" "$CTL_OUT" "in sync: nothing to do"
apply "$T_TMP/none.yaml"
if [ "$CTL_RC" = 0 ]; then ok "plan --apply with no policy resets the PF"; else fail "plan --apply with no policy resets the PF" "$(ctl_diag)"; fi
expect_eq "sriov_numvfs back to 0" "$(numvfs "$PF")" 0
check "device-plugin hand-off is empty" jq -e '.resourceList == []' "$DP"
# (VF VLANs are per network: the CNI sets them at ADD, see the cni and cluster suites; a policy carries none.)

section "two PFs in parallel"
PF2=""
for d in /sys/bus/pci/drivers/igb/0000:*/net/*; do
  [ -e "$d" ] && [ "${d##*/}" != "$PF" ] && { PF2=${d##*/}; break; }
done
if [ -z "$PF2" ]; then
  skip "two PFs in parallel" "only one igb PF (boot the lab with --nics 2)"
else
  on_exit "echo 0 > /sys/class/net/$PF2/device/sriov_numvfs"
  { policy "lab_a" "$PF" 7; policy "lab_b" "$PF2" 7; } >"$T_TMP/two.yaml"
  apply "$T_TMP/two.yaml"
  if [ "$CTL_RC" = 0 ]; then
    ok "plan --apply on $PF and $PF2"
    grep '^applied' <<<"$CTL_OUT" | while read -r l; do note "$l"; done
    expect_eq "$PF VFs" "$(numvfs "$PF")" 7
    expect_eq "$PF2 VFs" "$(numvfs "$PF2")" 7
    node=$(sed -n 's/^applied node: .* in \([0-9.]*\) s$/\1/p' <<<"$CTL_OUT")
    sum=$(sed -n 's/^applied PF .* in \([0-9.]*\) s$/\1/p' <<<"$CTL_OUT" | awk '{s += $1} END {print s}')
    note "node ${node} s, sum of PFs ${sum:-?} s"
  else
    fail "plan --apply on $PF and $PF2" "$(ctl_diag)"
  fi
  apply "$T_TMP/none.yaml"
  expect_eq "both back to 0" "$(numvfs "$PF") $(numvfs "$PF2")" "0 0"
fi

section "whole PF: vfio-pci, back to igb, MTU"
# whole_pf NAME ADDR DEVICETYPE [MTU]: the PF at ADDR offered whole
whole_pf() {
  policy_with "$1" "rootDevices: [\"$2\"]" "  wholePf: true
  deviceType: $3${4:+
  mtu: $4}"
}
if [ -z "$PF2" ]; then
  skip "whole PF" "only one igb PF (boot the lab with --nics 2)"
elif ! modprobe vfio-pci 2>/dev/null && [ ! -d /sys/bus/pci/drivers/vfio-pci ]; then
  skip "whole PF" "no vfio-pci module in this kernel"
else
  A2=$(basename "$(readlink -f "/sys/class/net/$PF2/device")")
  driver_of() { basename "$(readlink "/sys/bus/pci/devices/$A2/driver" 2>/dev/null)"; }
  on_exit "echo $A2 > /sys/bus/pci/devices/$A2/driver/unbind 2>/dev/null; echo > /sys/bus/pci/devices/$A2/driver_override; echo $A2 > /sys/bus/pci/drivers_probe"
  whole_pf "lab_pf" "$A2" vfio-pci >"$T_TMP/whole-vfio.yaml"
  apply "$T_TMP/whole-vfio.yaml"
  if [ "$CTL_RC" = 0 ]; then ok "plan --apply binds $PF2 ($A2) whole to vfio-pci"; diag "$CTL_OUT"; else fail "plan --apply binds $PF2 ($A2) whole to vfio-pci" "$(ctl_diag)"; fi
  expect_eq "$A2 driver" "$(driver_of)" vfio-pci
  check "device-plugin hand-off offers $A2 whole" jq -e --arg p "$A2" \
    '.resourceList[] | select(.resourceName == "lab_pf") | .selectors[].pciAddresses | index($p)' "$DP"
  ctl plan -f "$T_TMP/whole-vfio.yaml" --state-file "$STATE"
  expect_match "whole PF on vfio-pci: in sync" "$CTL_OUT" "in sync: nothing to do"
  apply "$T_TMP/none.yaml"
  if [ "$CTL_RC" = 0 ]; then ok "plan --apply with no policy gives $A2 back to igb"; else fail "plan --apply with no policy gives $A2 back to igb" "$(ctl_diag)"; fi
  expect_eq "$A2 driver after the reset" "$(driver_of)" igb
  PF2=$(ls "/sys/bus/pci/devices/$A2/net" 2>/dev/null)
  whole_pf "lab_pf" "$A2" netdevice 9000 >"$T_TMP/whole-net.yaml"
  apply "$T_TMP/whole-net.yaml"
  if [ "$CTL_RC" = 0 ]; then ok "plan --apply offers $PF2 whole with MTU 9000"; else fail "plan --apply offers $PF2 whole with MTU 9000" "$(ctl_diag)"; fi
  expect_eq "$PF2 MTU" "$(cat "/sys/class/net/$PF2/mtu" 2>&1)" 9000
  expect_eq "$PF2 has no VFs" "$(numvfs "$PF2")" 0
  ip link set "$PF2" mtu 1500
  apply "$T_TMP/none.yaml"
fi

section "smartnic-agent --spec-file (standalone, one pass)"
AGENT=${SMARTNIC_AGENT:-$(dirname "$SMARTNICCTL")/smartnic-agent}
# agent ARGS...: runs smartnic-agent; sets CTL_RC, CTL_OUT, CTL_ERR, CTL_CMD like ctl
agent() {
  CTL_CMD="smartnic-agent $*"
  timeout "${SMARTNIC_TEST_CMD_TIMEOUT:-90}" "$AGENT" "$@" >"$T_TMP/out" 2>"$T_TMP/err"
  CTL_RC=$?
  CTL_OUT=$(cat "$T_TMP/out")
  CTL_ERR=$(cat "$T_TMP/err")
}
if [ ! -x "$AGENT" ]; then
  fail "smartnic-agent is built" "$AGENT is missing"
elif ctl_json "plan -o json ($PF, 7 VFs) for the agent" plan -f "$T_TMP/seven.yaml" -o json --state-file "$STATE"; then
  jq '.spec' <<<"$CTL_OUT" >"$T_TMP/spec7.json"
  echo '{}' >"$T_TMP/spec0.json"
  agent --spec-file "$T_TMP/spec7.json" --allow-disruption --state-file "$STATE" --device-plugin-file "$DP"
  if [ "$CTL_RC" = 0 ]; then
    ok "smartnic-agent --spec-file ($PF, 7 VFs)"
    grep '^applied' <<<"$CTL_OUT" | while read -r l; do note "$l"; done
    expect_eq "the pass ends in sync" "$(tail -n 1 <<<"$CTL_OUT")" "in sync"
  else
    fail "smartnic-agent --spec-file ($PF, 7 VFs)" "$(ctl_diag)"
  fi
  expect_eq "sriov_numvfs after the agent" "$(numvfs "$PF")" 7
  expect_eq "VF MACs after the agent" "$(vf_macs "$PF")" "$want_macs"
  check "the agent recorded the spec as applied" jq -e '.applied != null and .inProgress == null' "$STATE"
  agent --spec-file "$T_TMP/spec7.json" --state-file "$STATE" --device-plugin-file "$DP"
  expect_match "a second pass: nothing to do" "$CTL_OUT" "plan: 0 step"
  agent --spec-file "$T_TMP/spec0.json" --allow-disruption --state-file "$STATE" --device-plugin-file "$DP"
  if [ "$CTL_RC" = 0 ]; then ok "smartnic-agent with an empty spec resets the PF"; else fail "smartnic-agent with an empty spec resets the PF" "$(ctl_diag)"; fi
  expect_eq "sriov_numvfs back to 0 by the agent" "$(numvfs "$PF")" 0
  check "device-plugin hand-off is empty after the reset" jq -e '.resourceList == []' "$DP"
fi

section "smartnic-agent killed (kill -9) at a boundary of each step kind, then restarted"
# host_state: what tells one end state of the two PFs from another
host_state() {
  local p a v
  for p in "$PF" ${PF2:+"$PF2"}; do
    a=$(basename "$(readlink -f "/sys/class/net/$p/device")")
    printf '%s numvfs=%s mtu=%s macs=[%s]\n' "$p" "$(numvfs "$p")" "$(cat "/sys/class/net/$p/mtu")" "$(vf_macs "$p")"
    for v in /sys/bus/pci/devices/"$a"/virtfn*; do
      [ -e "$v" ] && printf '  %s %s\n' "${v##*/}" "$(basename "$(readlink "$v/driver" 2>/dev/null)")"
    done
  done
  jq -c '{applied: (.applied != null), inProgress}' "$STATE"
  jq -c . "$DP"
}
# agent_killed_at POINT SPEC: the agent armed at POINT; once it stopped there, kill -9
agent_killed_at() {
  SMARTNIC_AGENT_FAILPOINT=$1 "$AGENT" --spec-file "$2" --allow-disruption --state-file "$STATE" \
    --device-plugin-file "$DP" >"$T_TMP/killed.out" 2>"$T_TMP/killed.err" &
  local pid=$!
  wait_for 120 sh -c "grep -q '^failpoint ' '$T_TMP/killed.err' || ! kill -0 $pid"
  if grep -q '^failpoint ' "$T_TMP/killed.err"; then
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    KILLED_RC=$?
  else
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    KILLED_RC=none
  fi
}
# restore_links: the PF links as before the first run (MTU, up or down): a reset to 0 VFs
# leaves them as the plan set them
links0=$(for p in "$PF" ${PF2:+"$PF2"}; do printf '%s %s %s\n' "$p" "$(cat "/sys/class/net/$p/mtu")" \
  "$(ip -j link show "$p" | jq -r 'if (.[0].flags | index("UP")) then "up" else "down" end')"; done)
restore_links() {
  local p m u
  while read -r p m u; do ip link set "$p" mtu "$m" "$u"; done <<<"$links0"
}
[ -e "$T_TMP/spec0.json" ] || echo '{}' >"$T_TMP/spec0.json"
vfio_ok=0
{ modprobe vfio-pci 2>/dev/null || [ -d /sys/bus/pci/drivers/vfio-pci ]; } && vfio_ok=1
if [ ! -x "$AGENT" ]; then
  fail "smartnic-agent is built" "$AGENT is missing"
else
  on_exit "ip link set $PF mtu 1500 2>/dev/null"
  [ -n "$PF2" ] && on_exit "ip link set $PF2 mtu 1500 2>/dev/null"
  policy "lab_crash_a" "$PF" 7 >"$T_TMP/crash.yaml"
  if [ -n "$PF2" ] && [ "$vfio_ok" = 1 ]; then
    policy_with "lab_crash_b" "pfNames: [\"$PF2\"]" "  numVfs: 4
  deviceType: vfio-pci
  mtu: 9000" >>"$T_TMP/crash.yaml"
  elif [ -n "$PF2" ]; then
    policy_with "lab_crash_b" "pfNames: [\"$PF2\"]" "  numVfs: 4
  mtu: 9000" >>"$T_TMP/crash.yaml"
    note "no vfio-pci: the second PF keeps its VFs on igbvf"
  fi
  if ctl_json "plan -o json (crash spec)" plan -f "$T_TMP/crash.yaml" -o json --state-file "$STATE"; then
    jq '.spec' <<<"$CTL_OUT" >"$T_TMP/crash-spec.json"
    agent --spec-file "$T_TMP/crash-spec.json" --allow-disruption --state-file "$STATE" --device-plugin-file "$DP"
    if [ "$CTL_RC" = 0 ]; then ok "uninterrupted run"; else fail "uninterrupted run" "$(ctl_diag)"; fi
    want_state=$(host_state)
    diag "$want_state"
    agent --spec-file "$T_TMP/spec0.json" --allow-disruption --state-file "$STATE" --device-plugin-file "$DP"
    restore_links
    # the step kinds of the plan each cycle starts from, as the agent names them
    # (setNumVfs -> set-num-vfs)
    ctl_json "plan -o json (crash spec, from 0 VFs)" plan -f "$T_TMP/crash.yaml" -o json --state-file "$STATE"
    kinds=$(jv '[.plan.pfs[].steps[].step] | unique | .[]' | sed 's/\([A-Z]\)/-\1/g' | tr 'A-Z' 'a-z')
    note "step kinds: $(tr '\n' ' ' <<<"$kinds")"
    i=0
    for kind in $kinds; do
      # alternate the side of the boundary: before the step runs, after it ran
      if [ $((i % 2)) = 0 ]; then point=after:$kind; else point=before:$kind; fi
      i=$((i + 1))
      agent_killed_at "$point" "$T_TMP/crash-spec.json"
      if [ "$KILLED_RC" = 137 ]; then
        ok "killed at $point ($(jq -r '[.inProgress.pfs[]? | "\(.kind // "done")"] | join(",")' "$STATE"))"
      else
        fail "killed at $point" "exit $KILLED_RC: $(cat "$T_TMP/killed.err")"
      fi
      agent --spec-file "$T_TMP/crash-spec.json" --allow-disruption --state-file "$STATE" --device-plugin-file "$DP"
      if [ "$CTL_RC" = 0 ] && [ "$(tail -n 1 <<<"$CTL_OUT")" = "in sync" ]; then
        ok "restart after $point ends in sync"
      else
        fail "restart after $point ends in sync" "$(ctl_diag)"
      fi
      expect_eq "state after the kill at $point and the restart" "$(host_state)" "$want_state"
      agent --spec-file "$T_TMP/spec0.json" --allow-disruption --state-file "$STATE" --device-plugin-file "$DP"
      expect_eq "reset after $point" "$(numvfs "$PF") $(numvfs "${PF2:-$PF}")" "0 0"
      restore_links
    done
  fi
fi

section "netdevsim: legacy -> 4 VFs -> switchdev, representors, back"
# nsim_reps DIR: the phys_port_names of the VF representors among a netdevsim device's netdevs
nsim_reps() {
  local n
  for n in "$1"/net/*; do cat "$n/phys_port_name" 2>/dev/null; done | grep -E '^pf[0-9]+vf[0-9]+$' | sort | tr '\n' ' ' | sed 's/ $//'
}
nsim_mode() { devlink dev eswitch show "$1" 2>/dev/null | grep -o 'mode [a-z]*'; }
modprobe netdevsim 2>/dev/null
if [ ! -e /sys/bus/netdevsim/new_device ]; then
  if lab; then fail "netdevsim module loads"; else skip "netdevsim" "the netdevsim module is not available"; fi
else
  id=20
  while [ -e "/sys/bus/netdevsim/devices/netdevsim$id" ]; do id=$((id + 1)); done
  NSDEV=netdevsim/netdevsim$id NSYS=/sys/bus/netdevsim/devices/netdevsim$id nspf=""
  if ! echo "$id 1" >/sys/bus/netdevsim/new_device; then
    fail "create netdevsim$id (1 port)"
  else
    on_exit "echo $id > /sys/bus/netdevsim/del_device"
    wait_for 10 sh -c "ls $NSYS/net/ | grep -q ."
    for n in "$NSYS"/net/*; do nspf=${n##*/}; done
    expect_eq "netdevsim$id starts legacy with 0 VFs" "$(cat "$NSYS/sriov_numvfs") $(nsim_mode "$NSDEV")" "0 mode legacy"
    cat >"$T_TMP/nsim4.yaml" <<YAML
apiVersion: smartnic.io/v1alpha1
kind: NicPolicy
metadata:
  name: lab_nsim
spec:
  nodeSelector:
    matchLabels:
      lab: "true"
  nicSelector:
    pfNames: ["$nspf"]
  numVfs: 4
  eswitchMode: switchdev
  resourceName: lab_nsim
YAML
    if ctl_json "plan -o json (netdevsim $nspf, 4 VFs, switchdev)" plan -f "$T_TMP/nsim4.yaml" -o json --state-file "$STATE"; then
      expect_eq "plan: the device by its devlink handle, vendor netdevsim" \
        "$(jv '.plan.pfs[0] | "\(.pciAddress) \(.vendor)"')" "$NSDEV netdevsim"
      expect_eq "plan: the netdevsim order (no VF driver to wait for or bind)" \
        "$(jv '[.plan.pfs[0].steps[].step | select(. != "setVfMac" and . != "pfUp")] | join(" ")')" \
        "setNumVfs eswitchMode representors hwTcOffload"
      nsim_macs=$(jv '[.plan.pfs[0].steps[] | select(.step == "setVfMac") | .mac] | join(" ")')
      expect_eq "plan: a MAC step per VF" "$(wc -w <<<"$nsim_macs")" 4
      jq '.spec' <<<"$CTL_OUT" >"$T_TMP/nsim-spec4.json"
    fi
    apply "$T_TMP/nsim4.yaml"
    if [ "$CTL_RC" = 0 ]; then
      ok "plan --apply (netdevsim $nspf, 4 VFs, switchdev)"
      diag "$CTL_OUT"
      expect_match "the apply ends in sync" "$CTL_OUT" "in sync"
    else
      fail "plan --apply (netdevsim $nspf, 4 VFs, switchdev)" "$(ctl_diag)"
    fi
    expect_eq "sriov_numvfs of netdevsim$id" "$(cat "$NSYS/sriov_numvfs")" 4
    expect_eq "devlink dev eswitch show $NSDEV" "$(nsim_mode "$NSDEV")" "mode switchdev"
    expect_eq "4 representors (phys_port_name)" "$(nsim_reps "$NSYS")" "pf0vf0 pf0vf1 pf0vf2 pf0vf3"
    expect_eq "VF MACs through the port netdev" "$(vf_macs "$nspf")" "${nsim_macs:-?}"
    if ctl_json "discover -o json (netdevsim in switchdev)" discover -o json; then
      nsim_nic=$(jq -c --arg d "$NSDEV" '.nics[]? | select(.pciAddress == $d)' <<<"$CTL_OUT")
      expect_eq "discover: $NSDEV, driver netdevsim, switchdev, 4 VFs" \
        "$(jq -r '"\(.name) \(.driver) \(.eswitchMode) \(.numVfs) \(.vfs | length)"' <<<"$nsim_nic")" "$nspf netdevsim switchdev 4 4"
      want_reps=$(devlink -j port show 2>/dev/null | jq -r --arg d "$NSDEV/" \
        '[.port | to_entries[] | select((.key | startswith($d)) and .value.flavour == "pcivf") | .value.netdev] | sort | join(" ")')
      expect_eq "devlink lists 4 pcivf ports with netdevs" "$(wc -w <<<"$want_reps")" 4
      expect_eq "discover: each VF's representor is devlink's" \
        "$(jq -r '[.vfs[].representor] | sort | join(" ")' <<<"$nsim_nic")" "$want_reps"
    fi
    check "device-plugin hand-off never lists netdevsim VFs" jq -e --arg d "$NSDEV" \
      '[.resourceList[].selectors[].pfs[]?.pciAddress] | index($d) == null' "$DP"
    ctl plan -f "$T_TMP/nsim4.yaml" --state-file "$STATE"
    expect_match "plan after apply: nothing to do" "$CTL_OUT" "in sync: nothing to do"
    apply "$T_TMP/none.yaml"
    if [ "$CTL_RC" = 0 ]; then ok "plan --apply with no policy resets netdevsim$id"; else fail "plan --apply with no policy resets netdevsim$id" "$(ctl_diag)"; fi
    expect_eq "back to 0 VFs, legacy, no representors" \
      "$(cat "$NSYS/sriov_numvfs") $(nsim_mode "$NSDEV") [$(nsim_reps "$NSYS")]" "0 mode legacy []"

    # the same through the agent's standalone mode
    [ -e "$T_TMP/spec0.json" ] || echo '{}' >"$T_TMP/spec0.json"
    if [ -x "$AGENT" ] && [ -s "$T_TMP/nsim-spec4.json" ]; then
      agent --spec-file "$T_TMP/nsim-spec4.json" --allow-disruption --state-file "$STATE" --device-plugin-file "$DP"
      if [ "$CTL_RC" = 0 ]; then
        ok "smartnic-agent --spec-file (netdevsim, 4 VFs, switchdev)"
        expect_eq "  ...the pass ends in sync" "$(tail -n 1 <<<"$CTL_OUT")" "in sync"
      else
        fail "smartnic-agent --spec-file (netdevsim, 4 VFs, switchdev)" "$(ctl_diag)"
      fi
      expect_eq "  ...4 VFs, switchdev, 4 representors" \
        "$(cat "$NSYS/sriov_numvfs") $(nsim_mode "$NSDEV") $(nsim_reps "$NSYS")" "4 mode switchdev pf0vf0 pf0vf1 pf0vf2 pf0vf3"
      agent --spec-file "$T_TMP/spec0.json" --allow-disruption --state-file "$STATE" --device-plugin-file "$DP"
      expect_eq "  ...an empty spec resets it (0 VFs, legacy)" "$(cat "$NSYS/sriov_numvfs") $(nsim_mode "$NSDEV")" "0 mode legacy"
    fi
  fi
fi

summary

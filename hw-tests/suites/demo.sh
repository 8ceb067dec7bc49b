#!/bin/bash
# suite: demo - the node story on emulated hardware with the project's own binaries: discover, a NicPolicy planned and applied, the device plugin serving the pools, the CNI attaching pods (sriov, ovs), offload evidence and trace, teardown with nothing leaked
# needs: smartnicctl smartnic-device-plugin dp-kubelet-stub smartnic
#
# Six steps, each a table of what it saw and its time; a summary table at the end. A step that
# does not hold fails the suite (non-zero exit) and the summary names it; the steps after it
# that need its result are reported as not run, and the teardown always runs.
#   1 discover     two igb PFs and a netdevsim device, nothing configured
#   2 plan, apply  a NicPolicy file: `smartnicctl plan` prints the steps and the disruption
#                  class, `--apply` creates the VFs with their MACs and writes the device-plugin
#                  file; the netdevsim device (in the same policy file) goes to switchdev and its
#                  representors appear
#   3 device plugin  smartnic-device-plugin serves the pool from the file the apply wrote to a
#                  kubelet stand-in: ListAndWatch lists the VFs healthy, Allocate gives one VF
#                  to each of two pods
#   4 CNI          the two VFs go into two pods (network namespaces) in mode sriov, VLAN set
#                  through the PF, IPAM host-local, the pods ping; two more pods in mode ovs on
#                  an integration bridge with hw-offload=true ping (the CNI picks a veth and says
#                  why: no emulated VF is switchdev with a netdev), and the netdevsim VF
#                  representor joins the bridge
#   5 offload      `smartnicctl offload` and `smartnicctl trace`: where each attachment's flows
#                  are (tc software / datapath) and why not hardware. No emulated device takes a
#                  flow in hardware: the report says so, the demo never expects in_hw.
#   6 teardown     CNI DEL, the VF table back to what the apply made, the plan back to zero
#                  VFs, the netdevsim device gone; the summary says whether anything leaked
# Environment: SMARTNIC_TEST_PF (the lab sets its first igb PF; the second one is found).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! need_root; then skip "demo" "needs root (it changes SR-IOV state)"; summary; fi
if [ -z "${SMARTNIC_TEST_PF:-}" ]; then skip "demo" "SMARTNIC_TEST_PF is not set (no igb PF)"; summary; fi
have_jq || { fail "jq (or gojq) is installed"; summary; }
DPBIN=$(lab_bin smartnic-device-plugin) STUB=$(lab_bin dp-kubelet-stub) SMARTNIC=$(lab_bin smartnic)
for b in DPBIN STUB SMARTNIC SMARTNICCTL; do
  [ -n "${!b}" ] || { fail "binary found: $b" "build it (hw-tests/run builds what '# needs:' names)"; summary; }
done

PF1=$SMARTNIC_TEST_PF PF2=""
for d in /sys/bus/pci/drivers/igb/0000:*/net/*; do
  [ -e "$d" ] && [ "${d##*/}" != "$PF1" ] && { PF2=${d##*/}; break; }
done
pci_of() { local l; l=$(readlink -f "/sys/class/net/$1/device") && echo "${l##*/}"; }
numvfs() { cat "/sys/class/net/$1/device/sriov_numvfs"; }
vf_table() { ip -j link show "$1" | jq -c '[.[0].vfinfo_list[]? | {vf, address, vlan_list, spoofchk, trust, link_state}]'; }

W=$T_TMP/demo
mkdir -p "$W"
STATE=$W/agent-state.json DPFILE=$W/device-plugin.json
export SMARTNIC_CNI_STATE_DIR=$W/cni-state
# The administrator's allow-list on this node: the lab's IPAM directories and bridge.
printf '{"bridges":[{"name":"br-int"}],"ipamDataDirs":["%s/ipam","%s/ipam-ovs"]}' "$W" "$W" >"$W/allow.json"
export SMARTNIC_CNI_ALLOW_LIST=$W/allow.json
# The node's pools, as the agent writes them: the CNI takes only VFs listed there.
export SMARTNIC_CNI_READY_FILE=$DPFILE

# ------------------------------------------------------------------ steps and their table
STEP_ROWS=() FAILED_STEP="" STEP_NO=0
step() { # NAME: starts a step
  STEP_NO=$((STEP_NO + 1)) STEP_NAME=$1 STEP_T0=$(now_ms) STEP_F0=$T_FAIL STEP_N0=$T_N
  echo "# ===== step $STEP_NO: $1"
}
step_end() { # closes the step; returns 1 if it failed
  local ms=$(($(now_ms) - STEP_T0)) status=ok
  [ "$T_FAIL" != "$STEP_F0" ] && status=FAILED
  [ "$status" = FAILED ] && [ -z "$FAILED_STEP" ] && FAILED_STEP="$STEP_NO ($STEP_NAME)"
  STEP_ROWS+=("$(printf '%-2s %-34s %-7s %6s %8s' "$STEP_NO" "$STEP_NAME" "$status" "$((T_N - STEP_N0))" "$(awk -v m="$ms" 'BEGIN { printf "%.1f s", m / 1000 }')")")
  [ "$status" = ok ]
}
not_run() { # NAME WHY: a step that cannot run because an earlier one failed
  STEP_NO=$((STEP_NO + 1))
  skip "step $STEP_NO ($1)" "$2"
  STEP_ROWS+=("$(printf '%-2s %-34s %-7s %6s %8s' "$STEP_NO" "$1" "not run" 0 "-")")
}
# table TITLE TEXT: a table the demo shows (as "#" lines, so the suite stays TAP)
table() { echo "#   $1"; sed 's/^/#     /' <<<"$2"; }

# ------------------------------------------------------------------ 1 discover
discover_step() {
  step "discover"
  ctl_ok "smartnicctl discover" discover && table "smartnicctl discover" "$CTL_OUT"
  if ctl_json "discover -o json" discover -o json; then
    local igb
    igb=$(jv '[.nics[] | select(.driver == "igb" and .totalVfs > 0)] | length')
    check "two igb PFs with SR-IOV" test "${igb:-0}" -ge 2
    expect_eq "nothing configured: no VFs" "$(jv '[.nics[].numVfs] | add')" 0
  fi
  [ -n "$PF2" ] || fail "a second igb PF" "boot the lab with --nics 2"
  NSIM_ID=30
  if [ ! -d /sys/bus/netdevsim ] && ! modprobe netdevsim 2>/dev/null; then
    fail "the netdevsim module loads"
  else
    while [ -e "/sys/bus/netdevsim/devices/netdevsim$NSIM_ID" ]; do NSIM_ID=$((NSIM_ID + 1)); done
    NSYS=/sys/bus/netdevsim/devices/netdevsim$NSIM_ID NSIM=netdevsim/netdevsim$NSIM_ID
    echo "$NSIM_ID 1" >/sys/bus/netdevsim/new_device
    on_exit "echo $NSIM_ID > /sys/bus/netdevsim/del_device"
    wait_for 10 sh -c "ls $NSYS/net/ | grep -q ." || fail "$NSIM has a port netdev"
    NSIM_PF=$(ls "$NSYS/net/" | head -1)
    if ctl_ok "smartnicctl devlink eswitch show $NSIM" devlink eswitch show "$NSIM"; then
      table "smartnicctl devlink eswitch show $NSIM" "$CTL_OUT"
      expect_match "$NSIM starts in legacy mode" "$CTL_OUT" "legacy"
    fi
  fi
  step_end
}

# ------------------------------------------------------------------ 2 plan and apply
policy_file() {
  cat <<YAML
apiVersion: smartnic.io/v1alpha1
kind: NicPolicy
metadata:
  name: demo-vfs
spec:
  nodeSelector:
    matchLabels:
      lab: "true"
  nicSelector:
    pfNames: ["$PF1", "$PF2"]
  numVfs: 4
  resourceName: demo_vf
YAML
  [ -n "${NSIM_PF:-}" ] || return 0
  cat <<YAML
---
apiVersion: smartnic.io/v1alpha1
kind: NicPolicy
metadata:
  name: demo-switchdev
spec:
  nodeSelector:
    matchLabels:
      lab: "true"
  nicSelector:
    pfNames: ["$NSIM_PF"]
  numVfs: 2
  eswitchMode: switchdev
  resourceName: demo_switchdev
YAML
}
plan_step() {
  step "plan and apply a NicPolicy"
  policy_file >"$W/policy.yaml"
  printf 'apiVersion: v1\nkind: List\nitems: []\n' >"$W/none.yaml"  # no policy: an explicit empty List
  table "policy.yaml" "$(cat "$W/policy.yaml")"
  if ctl_ok "smartnicctl plan -f policy.yaml" plan -f "$W/policy.yaml" --state-file "$STATE"; then
    table "the plan" "$CTL_OUT"
  fi
  if ctl_json "plan -o json" plan -f "$W/policy.yaml" -o json --state-file "$STATE"; then
    expect_eq "disruption class" "$(jv .plan.class)" non-disruptive
    expect_eq "one plan per PF" "$(jv '[.plan.pfs[].vendor] | sort | join(" ")')" "igb igb${NSIM_PF:+ netdevsim}"
  fi
  ctl plan -f "$W/policy.yaml" --apply --state-file "$STATE" --device-plugin-file "$DPFILE"
  if [ "$CTL_RC" = 0 ]; then
    ok "smartnicctl plan --apply"
    table "apply" "$CTL_OUT"
  else
    fail "smartnicctl plan --apply" "$(ctl_diag)"
  fi
  expect_eq "VFs on $PF1 and $PF2" "$(numvfs "$PF1") $(numvfs "$PF2")" "4 4"
  # The lab boots its PFs down; the plan brings a PF with VFs up (its VFs have no link otherwise).
  on_exit "ip link set $PF1 down; ip link set $PF2 down"
  check "the apply brought both PFs up" sh -c "ip link show $PF1 | grep -q '[<,]UP[,>]' && ip link show $PF2 | grep -q '[<,]UP[,>]'"
  check "every VF has a MAC set through the PF" sh -c "! ip -j link show $PF1 | jq -e '.[0].vfinfo_list[] | select(.address == \"00:00:00:00:00:00\")'"
  check "the device-plugin file lists both PFs" jq -e --arg a "$(pci_of "$PF1")" --arg b "$(pci_of "$PF2")" \
    '[.resourceList[].selectors[].pfs[].pciAddress] | (index($a) != null and index($b) != null)' "$DPFILE"
  table "device-plugin file" "$(jq -c '.resourceList[] | {resourceName, pfs: [.selectors[].pfs[] | "\(.name) \(.vfs | map("\(.first)-\(.last)") | join(","))"]}' "$DPFILE" 2>&1)"
  ctl plan -f "$W/policy.yaml" --state-file "$STATE"
  expect_match "planned again: in sync" "$CTL_OUT" "in sync"
  if [ -n "${NSIM:-}" ]; then
    # netdevsim is not on PCI: the plan knows it by its devlink handle
    expect_eq "$NSIM: 2 VFs, switchdev, by the plan" "$(cat "$NSYS/sriov_numvfs") $(devlink dev eswitch show "$NSIM" | grep -o 'mode [a-z]*')" "2 mode switchdev"
    if ctl_ok "smartnicctl devlink port $NSIM" devlink port "$NSIM"; then
      table "ports of $NSIM" "$CTL_OUT"
      expect_match "representors of VF 0 and VF 1" "$CTL_OUT" "pf0vf0.*pf0vf1|pcivf.*pcivf"
    fi
    local sid pfn n
    pfn=$(ls "$NSYS/net/" | head -1)
    sid=$(cat "/sys/class/net/$pfn/phys_switch_id" 2>/dev/null)
    NSIM_REP=""
    for n in /sys/class/net/*; do
      [ "$(cat "$n/phys_port_name" 2>/dev/null)" = pf0vf0 ] && [ "$(cat "$n/phys_switch_id" 2>/dev/null)" = "$sid" ] && NSIM_REP=${n##*/}
    done
    check "representor netdev of VF 0" test -n "$NSIM_REP"
  fi
  VF_TABLE_APPLIED=$(vf_table "$PF1")
  step_end
}

# ------------------------------------------------------------------ 3 device plugin
dp_step() {
  step "device plugin serves the pool"
  local D=$W/dp
  mkdir -p "$D/plugins"
  KLOG=$D/kubelet.log
  "$STUB" --plugin-dir "$D/plugins" kubelet >>"$KLOG" 2>&1 &
  STUB_PID=$!
  on_exit "kill $STUB_PID"
  wait_for 10 test -S "$D/plugins/kubelet.sock" || fail "kubelet stand-in serves kubelet.sock" "$(cat "$KLOG")"
  "$DPBIN" --config "$DPFILE" --plugin-dir "$D/plugins" --devinfo-dir "$D/devinfo" --log-format json 2>"$D/dp.log" &
  DP_PID=$!
  on_exit "kill $DP_PID"
  local listed
  lister() { jq -c 'select(.event == "list" and .resource == "smartnic.io/demo_vf")' "$KLOG" 2>/dev/null | tail -n 1; }
  eight() { [ "$(lister | jq '[.devices[] | select(.health == "Healthy")] | length')" = 8 ]; }
  if wait_for 60 eight; then
    ok "ListAndWatch: smartnic.io/demo_vf lists 8 healthy VFs"
  else
    fail "ListAndWatch: smartnic.io/demo_vf lists 8 healthy VFs" "$(tail -n 5 "$KLOG")"$'\n'"$(tail -n 10 "$D/dp.log")"
    step_end
    return 1
  fi
  listed=$(lister)
  table "ListAndWatch smartnic.io/demo_vf" "$(jq -r '.devices[] | "\(.id)  \(.health)  numa \(.numa // "-")"' <<<"$listed")"
  local ids out
  ids=$(jq -r '[.devices[].id] | sort | .[]' <<<"$listed")
  ALLOC=()
  for want in $(head -n 2 <<<"$ids"); do
    if out=$("$STUB" --plugin-dir "$D/plugins" allocate --endpoint smartnic.io_demo_vf.sock "$want" 2>&1); then
      ALLOC+=("$(jq -r '.containers[0].envs.PCIDEVICE_SMARTNIC_IO_DEMO_VF' <<<"$out")")
    else
      fail "Allocate $want" "$out"
    fi
  done
  expect_eq "Allocate gives one VF to each of two pods" "${#ALLOC[@]}" 2
  table "Allocate" "pod-a  PCIDEVICE_SMARTNIC_IO_DEMO_VF=${ALLOC[0]:-}"$'\n'"pod-b  PCIDEVICE_SMARTNIC_IO_DEMO_VF=${ALLOC[1]:-}"
  step_end
}

# ------------------------------------------------------------------ 4 CNI
sriov_conf() { # DEVICE-ID
  printf '{"cniVersion":"1.1.0","name":"demo-sriov","type":"smartnic","mode":"sriov","deviceID":"%s","vlan":100,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.60.0.0/24"}]],"dataDir":"%s/ipam"}}' "$1" "$W"
}
CNI_ROWS=()
cni_step() {
  step "CNI attaches pods"
  local p i
  for p in a b; do ip netns add "demo-$p" && on_exit "ip netns del demo-$p"; done
  for i in 0 1; do
    p=$([ $i = 0 ] && echo a || echo b)
    local t0 t1
    t0=$(now_ms)
    cni ADD "demo-$p" "/run/netns/demo-$p" net1 "$(sriov_conf "${ALLOC[$i]}")"
    t1=$(now_ms)
    if [ "$CNI_RC" = 0 ]; then
      ok "ADD pod-$p (sriov, ${ALLOC[$i]})"
      IP[$i]=$(jq -r '.ips[0].address' <<<"$CNI_OUT" | cut -d/ -f1)
      CNI_ROWS+=("$(printf 'pod-%s  sriov  %-13s net1  %-12s %4s ms' "$p" "${ALLOC[$i]}" "${IP[$i]}" "$((t1 - t0))")")
    else
      fail "ADD pod-$p (sriov, ${ALLOC[$i]})" "$(cni_diag)"
    fi
  done
  if wait_for 20 ip netns exec demo-a ping -c 1 -W 1 "${IP[1]:-0.0.0.0}"; then
    ok "pod-a pings pod-b over the VFs (VLAN 100)"
  else
    fail "pod-a pings pod-b over the VFs (VLAN 100)" "$(ip -n demo-a addr show net1 2>&1)"
  fi
  local row
  row=$(ip -j link show "$PF1" | jq -c '[.[0].vfinfo_list[] | select(.vlan_list[0].vlan == 100) | .vf]')
  expect_eq "VLAN 100 on both VFs, through the PF" "$(jq length <<<"$row")" 2
  ovs_part
  table "attachments" "$(printf '%s\n' "${CNI_ROWS[@]}")"
  step_end
}

# The OVS part of step 4: a private ovsdb-server and ovs-vswitchd (kernel datapath).
OVS_UP=0
ovs_part() {
  local b
  for b in ovsdb-server ovs-vswitchd ovsdb-tool ovs-vsctl ovs-appctl; do
    command -v "$b" >/dev/null || { fail "Open vSwitch is in the lab image" "$b missing"; return; }
  done
  modprobe openvswitch 2>/dev/null
  for b in cls_flower act_mirred act_gact sch_ingress; do modprobe "$b" 2>/dev/null; done
  OD=$W/ovs
  mkdir -p "$OD"
  OV=(--rundir "$OD" --bridge br-int --log "$OD/ovs-vswitchd.log")
  ovs_db_start "$OD"
  # hw-offload is read at start: set it before ovs-vswitchd starts.
  ovs-vsctl --db="unix:$OD/db.sock" --no-wait set Open_vSwitch . other_config:hw-offload=true
  ovs_vswitchd_start "$OD"
  on_exit "ovs-appctl -t $OD/ovs-vswitchd.ctl exit --cleanup"
  OVS_UP=1
  ctl_json "smartnicctl ovs setup --hw-offload true" ovs "${OV[@]}" setup -o json --datapath system --hw-offload true || return
  for p in c d; do ip netns add "demo-$p" && on_exit "ip netns del demo-$p"; done
  for p in c d; do ovs_add "$p"; done
  if wait_for 20 ip netns exec demo-c ping -c 1 -W 1 "${OVS_IP[d]:-0.0.0.0}"; then
    ok "pod-c pings pod-d through br-int (mode ovs)"
  else
    fail "pod-c pings pod-d through br-int (mode ovs)" "$(ovs-vsctl --db="unix:$OD/db.sock" show 2>&1)"
  fi
  if [ -n "${NSIM_REP:-}" ]; then
    if ctl_json "the netdevsim representor $NSIM_REP joins br-int" ovs "${OV[@]}" attach --representor "$NSIM_REP" \
        --vf "netdevsim$NSIM_ID/vf0" --network demo-ovs --vni 100 --pod default/pod-vf --ifname net1 -o json; then
      NSIM_REP_ATTACHED=1
      CNI_ROWS+=("$(printf 'pod-vf ovs   %-13s net1  %-12s (representor %s, hw-offload=true)' "netdevsim vf0" "-" "$NSIM_REP")")
      check "$NSIM_REP: hw-tc-offload on" sh -c "ethtool -k $NSIM_REP | grep -q 'hw-tc-offload: on'"
    fi
  fi
}
# ovs_conf: network demo-ovs (VNI 100) in mode ovs, addresses from host-local
ovs_conf() {
  printf '{"cniVersion":"1.1.0","name":"demo-ovs","type":"smartnic","mode":"ovs","bridge":"br-int","mtu":1400,"geneve":{"vni":100},"ipam":{"type":"host-local","ranges":[[{"subnet":"10.61.0.0/24"}]],"dataDir":"%s/ipam-ovs"}}' "$W"
}
# ovs_add POD: one pod on the OVS network through the CNI (OVS_RUNDIR points it at this OVS)
ovs_add() {
  local t0 t1
  t0=$(now_ms)
  CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-$1" cni ADD "demo-$1" "/run/netns/demo-$1" net1 "$(ovs_conf)"
  t1=$(now_ms)
  if [ "$CNI_RC" = 0 ]; then
    ok "ADD pod-$1 (mode ovs)"
    OVS_PORT[$1]=$(jq -r '."smartnic.io/ovs".port' <<<"$CNI_OUT")
    OVS_IP[$1]=$(jq -r '.ips[0].address' <<<"$CNI_OUT" | cut -d/ -f1)
    CNI_ROWS+=("$(printf 'pod-%s  ovs    %-13s net1  %-12s %4s ms  %s: %s' "$1" "${OVS_PORT[$1]}" "${OVS_IP[$1]}" "$((t1 - t0))" \
      "$(jq -r '."smartnic.io/ovs".attachment' <<<"$CNI_OUT")" "$(jq -r '."smartnic.io/ovs".reason' <<<"$CNI_OUT")")")
  else
    fail "ADD pod-$1 (mode ovs)" "$(cni_diag)"
  fi
}
declare -A OVS_PORT OVS_IP

# ------------------------------------------------------------------ 5 offload and trace
offload_step() {
  step "offload evidence and trace"
  ip netns exec demo-c ping -c 3 -i 0.3 -W 2 "${OVS_IP[d]:-0.0.0.0}" >/dev/null 2>&1
  if ctl_ok "smartnicctl offload" offload "${OV[@]}"; then
    table "smartnicctl offload" "$CTL_OUT"
  fi
  if ctl_json "offload -o json" offload "${OV[@]}" -o json; then
    expect_eq "nothing in hardware (no emulated device takes a flow)" "$(jv .counts.hardware)" 0
    check "flows of the pods in tc software (dp:tc)" test "$(jv .counts.tc)" -gt 0
    # The netdevsim eswitch is switchdev, so the CNI's reason for a veth is that the pod got no
    # VF; on a node without one it is "no offload-capable device".
    expect_match "each fallback names its cause" "$(jv '[.attachments[].fallbacks[]] | unique | join(" | ")')" "no VF allocated|no offload-capable device"
  fi
  if ctl_ok "smartnicctl trace --pod default/pod-c" trace "${OV[@]}" --pod default/pod-c; then
    table "smartnicctl trace --pod default/pod-c" "$CTL_OUT"
    expect_match "trace: the veth hop is software" "$CTL_OUT" "veth +software"
  fi
  if [ -n "${NSIM_REP:-}" ] && ctl_ok "smartnicctl trace --port $NSIM_REP --probe" trace "${OV[@]}" --port "$NSIM_REP" --probe; then
    table "smartnicctl trace --port $NSIM_REP --probe" "$CTL_OUT"
    expect_match "trace: the kernel's answer for the representor" "$CTL_OUT" "representor +software .*skip_sw probe refused by the kernel"
  fi
  step_end
}

# ------------------------------------------------------------------ 6 teardown
teardown_step() {
  step "teardown"
  local i p leaks=()
  for i in 0 1; do
    p=$([ $i = 0 ] && echo a || echo b)
    [ -n "${ALLOC[$i]:-}" ] || continue
    cni DEL "demo-$p" "/run/netns/demo-$p" net1 "$(sriov_conf "${ALLOC[$i]}")"
    if [ "$CNI_RC" = 0 ]; then ok "DEL pod-$p (sriov)"; else fail "DEL pod-$p (sriov)" "$(cni_diag)"; fi
  done
  for p in c d; do
    [ -n "${OVS_PORT[$p]:-}" ] || continue
    cni DEL "demo-$p" "/run/netns/demo-$p" net1 "$(ovs_conf)"
    if [ "$CNI_RC" = 0 ]; then ok "DEL pod-$p (mode ovs)"; else fail "DEL pod-$p (mode ovs)" "$(cni_diag)"; fi
  done
  if [ -n "${NSIM_REP_ATTACHED:-}" ]; then
    ctl_ok "detach the representor $NSIM_REP" ovs "${OV[@]}" detach "$NSIM_REP"
  fi
  if [ -n "${VF_TABLE_APPLIED:-}" ]; then
    expect_eq "the VF table of $PF1 is what the apply made" "$(vf_table "$PF1")" "$VF_TABLE_APPLIED"
  fi
  # Leaks are looked for before the demo removes things itself: after DEL nothing the CNI
  # added may be left in a pod's namespace (a VF not given back, a veth end), which deleting
  # the namespace would hide.
  local left
  for p in a b c d; do
    [ -e "/run/netns/demo-$p" ] || continue
    left=$(ip -n "demo-$p" -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); if ($2 != "lo") print $2 }' | tr '\n' ' ')
    [ -z "$left" ] || leaks+=("demo-$p still holds after DEL: $left")
  done
  for p in a b c d; do ip netns del "demo-$p" 2>/dev/null; done
  ctl plan -f "$W/none.yaml" --apply --state-file "$STATE" --device-plugin-file "$DPFILE"
  if [ "$CTL_RC" = 0 ]; then ok "the plan back to zero VFs"; table "apply (no policy)" "$CTL_OUT"; else fail "the plan back to zero VFs" "$(ctl_diag)"; fi
  [ -n "${DP_PID:-}" ] && kill "$DP_PID" 2>/dev/null
  [ -n "${STUB_PID:-}" ] && kill "$STUB_PID" 2>/dev/null
  if [ -n "${NSIM_PF:-}" ]; then
    expect_eq "$NSIM back to 0 VFs and legacy, by the plan" "$(cat "$NSYS/sriov_numvfs") $(devlink dev eswitch show "$NSIM" | grep -o 'mode [a-z]*')" "0 mode legacy"
  fi
  if [ -n "${NSIM_ID:-}" ] && [ -e "/sys/bus/netdevsim/devices/netdevsim$NSIM_ID" ]; then
    # the plan, not the device's removal, must have taken its VFs away
    [ "$(cat "/sys/bus/netdevsim/devices/netdevsim$NSIM_ID/sriov_numvfs" 2>/dev/null || echo 0)" = 0 ] \
      || leaks+=("netdevsim$NSIM_ID has VFs after the plan back to zero")
    echo "$NSIM_ID" >/sys/bus/netdevsim/del_device
  fi
  # What must be gone.
  [ "$(numvfs "$PF1")" = 0 ] || leaks+=("$PF1 has $(numvfs "$PF1") VFs")
  [ -z "$PF2" ] || [ "$(numvfs "$PF2")" = 0 ] || leaks+=("$PF2 has $(numvfs "$PF2") VFs")
  [ "$(jq -c '.resourceList' "$DPFILE" 2>/dev/null)" = "[]" ] || leaks+=("device-plugin file still lists pools")
  local owners
  owners=$(find "$SMARTNIC_CNI_STATE_DIR" -type f ! -name '*.lock' 2>/dev/null | head -n 5)
  [ -z "$owners" ] || leaks+=("CNI state left: $owners")
  local leases
  leases=$(find "$W/ipam" "$W/ipam-ovs" -type f ! -name lock ! -name 'last_reserved_ip*' 2>/dev/null | head -n 5)
  [ -z "$leases" ] || leaks+=("IPAM leases left: $leases")
  if [ "$OVS_UP" = 1 ]; then
    local ports
    ports=$(ovs-vsctl --db="unix:$OD/db.sock" list-ports br-int 2>/dev/null | grep -v '^gnv' || true)
    [ -z "$ports" ] || leaks+=("OVS ports left: $ports")
  fi
  if [ ${#leaks[@]} = 0 ]; then
    ok "nothing leaked: no VF (igb, netdevsim), no pool, no CNI state, no lease, no OVS port, nothing left in a pod after DEL"
    LEAKS="none"
  else
    fail "nothing leaked" "$(printf '%s\n' "${leaks[@]}")"
    LEAKS=$(printf '%s; ' "${leaks[@]}")
  fi
  step_end
}

# run_step FUNCTION NAME: the step, unless an earlier one failed
run_step() { if [ -z "$FAILED_STEP" ]; then "$1"; else not_run "$2" "step $FAILED_STEP failed"; fi; }
T_START=$(now_ms)
run_step discover_step "discover"
run_step plan_step "plan and apply a NicPolicy"
run_step dp_step "device plugin serves the pool"
run_step cni_step "CNI attaches pods"
run_step offload_step "offload evidence and trace"
teardown_step

echo "# ===== demo summary"
printf '#   %-2s %-34s %-7s %6s %8s\n' "" step result checks time
printf '#   %s\n' "${STEP_ROWS[@]}"
echo "#   total $(awk -v m="$(($(now_ms) - T_START))" 'BEGIN { printf "%.1f s", m / 1000 }'); leaks: ${LEAKS:-not checked}"
if [ -n "$FAILED_STEP" ]; then
  echo "#   DEMO FAILED at step $FAILED_STEP"
else
  echo "#   demo passed"
fi
summary

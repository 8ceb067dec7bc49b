#!/bin/bash
# suite: offload - OVS kernel datapath with hw-offload through smartnicctl ovs/offload/trace:
#   flows in tc (dp:tc, not_in_hw), skip_sw refused by the kernel (dp:ovs with its reason),
#   a netdevsim VF representor on the bridge, the trace of a pod, pods attached by the smartnic
#   CNI in mode ovs (the decision and its reason probed from the real kernel).
# needs: smartnicctl smartnic
#
# No device here takes a flower rule in hardware (veth, igb and netdevsim all refuse skip_sw),
# so the suite checks that the report says so and why; it never expects in_hw.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! need_root; then skip "offload suite" "needs root"; summary; fi
# a missing tool fails in the lab and with CI=true (its image and .ci/run install them all);
# only the kernel feature may skip, and only outside the lab
for b in ovsdb-server ovs-vswitchd ovsdb-tool ovs-vsctl ovs-appctl ovs-ofctl tc ethtool; do
  command -v "$b" >/dev/null || { missing "offload suite" "$b is not installed"; summary; }
done
have_jq || { missing "offload suite" "jq is not installed"; summary; }
if ! modprobe openvswitch 2>/dev/null && [ ! -d /sys/module/openvswitch ]; then
  if lab; then fail "openvswitch kernel module loads"; else
    skip "offload suite" "kernel feature: no openvswitch module (the kernel datapath is needed)"
  fi
  summary
fi
for m in nf_conntrack_netlink nfnetlink cls_flower act_mirred act_gact sch_ingress; do modprobe "$m" 2>/dev/null; done

SMARTNIC=${SMARTNIC:-$(lab_bin smartnic)}
# The administrator's allow-list on this node: the integration bridge.
printf '{"bridges":[{"name":"br-int"}]}' >"$T_TMP/allow.json"
export SMARTNIC_CNI_ALLOW_LIST=$T_TMP/allow.json
# pod_cni CMD POD CONF: the smartnic CNI for pod POD (netns ofl-POD, eth0); OVS_RUNDIR
# (exported below) points it at this suite's OVS. Sets CNI_RC and CNI_OUT.
pod_cni() {
  CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-$2" SMARTNIC_CNI_STATE_DIR="$T_TMP/cni-state" \
    cni "$1" "ctr-$2" "/run/netns/ofl-$2" eth0 "$3"
}
ovs_conf() { # NETWORK VNI IP
  printf '{"cniVersion":"1.1.0","name":"%s","type":"smartnic","mode":"ovs","bridge":"br-int","mtu":1400,"geneve":{"vni":%s},"ipam":{"type":"static","addresses":[{"address":"%s/24"}]}}' "$1" "$2" "$3"
}

D=$T_TMP/ovs
mkdir -p "$D"
OV=(--rundir "$D" --bridge br-int --log "$D/ovs-vswitchd.log")
start_vswitchd() { ovs_vswitchd_start "$D"; }
stop_vswitchd() { ovs_vswitchd_stop "$D"; }

ovs_db_start "$D"
start_vswitchd
on_exit "ovs-appctl -t $D/ovs-vswitchd.ctl exit --cleanup"

# ===================================================================== setup
section "node setup: hw-offload, br-int (kernel datapath)"
ctl_json "ovs setup --hw-offload true" ovs "${OV[@]}" setup -o json --datapath system --hw-offload true
expect_eq "other_config:hw-offload" "$(ovs-vsctl --db="unix:$D/db.sock" get Open_vSwitch . other_config:hw-offload)" '"true"'
expect_eq "br-int fail_mode secure" "$(ovs-vsctl --db="unix:$D/db.sock" get bridge br-int fail_mode)" secure
# OVS reads hw-offload at start: restart it, then re-sync our flows (as the agent does).
stop_vswitchd
start_vswitchd
ctl_ok "ovs setup again after the restart (flows re-synced)" ovs "${OV[@]}" setup --datapath system --hw-offload true

section "pods by veth: red (VNI 100) x2, blue (VNI 200)"
declare -A PORT
for p in a b c; do
  ip netns add "ofl-$p"
  on_exit "ip netns del ofl-$p"
done
attach() { # NAME NETWORK VNI IP
  if ctl_json "ovs attach pod-$1 ($2, VNI $3)" ovs "${OV[@]}" attach --network "$2" --vni "$3" \
      --netns "/run/netns/ofl-$1" --pod "default/pod-$1" --container-id "ctr-$1" --mtu 1400 -o json; then
    PORT[$1]=$(jv .port)
    expect_match "pod-$1: veth because there is no offload-capable device" "$(jv .reason)" "no offload-capable device"
    ip -n "ofl-$1" addr add "$4/24" dev eth0
  fi
}
attach a default/red 100 10.1.0.1
attach b default/red 100 10.1.0.2
attach c default/blue 200 10.1.0.3
check "pod-a: tx checksum offload off" sh -c "ip netns exec ofl-a ethtool -k eth0 | grep -q 'tx-checksumming: off'"
check "ping red pod-a -> red pod-b through br-int" ip netns exec ofl-a ping -c 3 -i 0.3 -W 2 10.1.0.2
if ip netns exec ofl-a ping -c 2 -i 0.3 -W 1 10.1.0.3 >/dev/null 2>&1; then
  fail "red pod-a must not reach blue pod-c"
else
  ok "red pod-a does not reach blue pod-c (other VNI)"
fi

section "a pod by the smartnic CNI (mode ovs): red (VNI 100), veth"
CNI_D=""
if [ -z "$SMARTNIC" ]; then
  fail "the smartnic binary is built" "not on PATH and not in target/"
else
  ip netns add ofl-d
  on_exit "ip netns del ofl-d"
  pod_cni ADD d "$(ovs_conf red 100 10.1.0.4)"
  if [ "$CNI_RC" = 0 ]; then
    ok "CNI ADD pod-d (mode ovs)"
    CNI_D=$(jq -r '."smartnic.io/ovs".port' <<<"$CNI_OUT")
    expect_eq "pod-d: the decision is a veth" "$(jq -r '."smartnic.io/ovs".attachment' <<<"$CNI_OUT")" veth
    expect_eq "pod-d: because there is no offload-capable device" "$(jq -r '."smartnic.io/ovs".reason' <<<"$CNI_OUT")" "no offload-capable device"
    expect_eq "pod-d: result interfaces (pod eth0, host port)" "$(jq -r '[.interfaces[].name] | join(" ")' <<<"$CNI_OUT")" "eth0 $CNI_D"
    check "pod-d: $CNI_D is a br-int port tagged with VNI 100" sh -c "ovs-vsctl --db=unix:$D/db.sock get interface $CNI_D external_ids:smartnic.io/vni | grep -qx '\"100\"'"
    check "ping red pod-d (CNI) -> red pod-a" ip netns exec ofl-d ping -c 3 -i 0.3 -W 2 10.1.0.1
    if ip netns exec ofl-d ping -c 2 -i 0.3 -W 1 10.1.0.3 >/dev/null 2>&1; then
      fail "red pod-d must not reach blue pod-c"
    else
      ok "red pod-d does not reach blue pod-c (other VNI)"
    fi
    check_conf=$(jq -c --argjson prev "$CNI_OUT" '. + {prevResult: $prev}' <<<"$(ovs_conf red 100 10.1.0.4)")
    pod_cni CHECK d "$check_conf"
    if [ "$CNI_RC" = 0 ]; then ok "CNI CHECK pod-d"; else fail "CNI CHECK pod-d" "$(cni_diag)"; fi
  else
    fail "CNI ADD pod-d (mode ovs)" "$(cni_diag)"
  fi
fi

ctl_ok "ovs peers: node-x at 192.0.2.20 (a Geneve tunnel port, key=flow)" ovs "${OV[@]}" peers --peer node-x=192.0.2.20
expect_eq "tunnel port type" "$(ovs-vsctl --db="unix:$D/db.sock" get interface gnvc0000214 type 2>&1)" geneve
expect_eq "tunnel port key=flow" "$(ovs-vsctl --db="unix:$D/db.sock" get interface gnvc0000214 options:key 2>&1)" flow

# ===================================================================== tc-policy none
section "hw-offload=true, tc-policy none: flows in tc software (dp:tc, not_in_hw)"
ip netns exec ofl-a ping -c 3 -i 0.3 -W 2 10.1.0.2 >/dev/null 2>&1
if ctl_json "offload -o json" offload "${OV[@]}" -o json; then
  note "counts: $(jv .counts -c)"
  expect_eq "report: tc-policy none" "$(jv .tcPolicy)" none
  check "report: flows in tc software (dp:tc)" test "$(jv .counts.tc)" -gt 0
  expect_eq "report: nothing in hardware" "$(jv .counts.hardware)" 0
  expect_eq "report: offload ratio 0" "$(jv .ratio)" 0
  a=$(jv ".attachments[] | select(.port == \"${PORT[a]}\")" -c)
  expect_match "pod-a: dp:tc flows" "$(jq -r '[.flows[].dp] | unique | join(",")' <<<"$a")" "tc"
  expect_match "pod-a: the fallback names the cause" "$(jq -r '.fallbacks | join(" | ")' <<<"$a")" "no offload-capable device"
  expect_match "pod-a: tc rules not_in_hw" "$(jq -r '[.tcFilters[] | .inHw] | unique | join(",")' <<<"$a")" "^false$"
fi
check "tc itself shows not_in_hw on ${PORT[a]}" sh -c "tc filter show dev ${PORT[a]} ingress | grep -q not_in_hw"
check "dpctl type=tc lists pod-a's flows" sh -c "ovs-appctl -t $D/ovs-vswitchd.ctl dpctl/dump-flows -m type=tc | grep -q 'in_port(${PORT[a]})'"
ctl_ok "offload (table) says dp:tc" offload "${OV[@]}" && expect_match "table: flows in tc software" "$CTL_OUT" "[1-9][0-9]* in tc software"
ctl_ok "offload -o prom" offload "${OV[@]}" -o prom \
  && expect_match "prom: per-network ratio" "$CTL_OUT" 'smartnic_offload_ratio\{node="[^"]*",network="default/red",vni="100"\} 0'
ctl_ok "offload --pod default/pod-a" offload "${OV[@]}" --pod default/pod-a \
  && expect_match "one pod: its dp:tc flows" "$CTL_OUT" "dp:tc"
if [ -n "$CNI_D" ]; then
  ip netns exec ofl-d ping -c 2 -i 0.3 -W 2 10.1.0.1 >/dev/null 2>&1
  if ctl_json "offload --pod default/pod-d -o json (the CNI's pod)" offload "${OV[@]}" --pod default/pod-d -o json; then
    d=$(jv ".attachments[] | select(.port == \"$CNI_D\")" -c)
    expect_match "pod-d: dp:tc flows" "$(jq -r '[.flows[].dp] | unique | join(",")' <<<"$d")" "tc"
    expect_match "pod-d: the fallback is the CNI's decision" "$(jq -r '.fallbacks | join(" | ")' <<<"$d")" "no offload-capable device"
  fi
fi

section "trace of pod-a"
if ctl_ok "trace --pod default/pod-a" trace "${OV[@]}" --pod default/pod-a; then
  diag "$CTL_OUT"
  for hop in veth ovs-port openflow datapath tunnel remote-node; do
    expect_match "trace: hop $hop" "$CTL_OUT" "[0-9]+\. $hop "
  done
  expect_match "trace: remote node named" "$CTL_OUT" "node-x \(192.0.2.20\)"
fi
ctl_json "trace -o json" trace "${OV[@]}" --pod default/pod-a -o json \
  && expect_eq "trace json: first hop is the veth, software" "$(jv '.[0].hop + " " + .[0].where')" "veth software"

# ===================================================================== netdevsim
section "netdevsim VF representor on br-int"
REP=""
if [ ! -d /sys/bus/netdevsim ] && ! modprobe netdevsim 2>/dev/null; then
  skip "netdevsim representor" "the netdevsim module is not available"
else
  id=20
  while [ -e "/sys/bus/netdevsim/devices/netdevsim$id" ]; do id=$((id + 1)); done
  NSYS=/sys/bus/netdevsim/devices/netdevsim$id
  echo "$id 1" >/sys/bus/netdevsim/new_device
  on_exit "echo $id > /sys/bus/netdevsim/del_device"
  wait_for 10 sh -c "ls $NSYS/net/ | grep -q ."
  echo 2 >"$NSYS/sriov_numvfs"
  devlink dev eswitch set "netdevsim/netdevsim$id" mode switchdev
  PFN=$(ls "$NSYS/net/" | head -1)
  sid=$(cat "/sys/class/net/$PFN/phys_switch_id" 2>/dev/null)
  for n in /sys/class/net/*; do
    [ "$(cat "$n/phys_port_name" 2>/dev/null)" = pf0vf0 ] && [ "$(cat "$n/phys_switch_id" 2>/dev/null)" = "$sid" ] && REP=$(basename "$n")
  done
  if [ -z "$REP" ]; then
    fail "netdevsim$id: representor pf0vf0 found"
  else
    ok "netdevsim$id: representor of VF 0 is $REP"
    if ctl_json "ovs attach --representor $REP" ovs "${OV[@]}" attach --representor "$REP" \
        --vf "netdevsim$id/vf0" --network default/red --vni 100 --pod default/pod-vf --ifname net1 -o json; then
      expect_eq "attachment kind" "$(jv .attachment.kind)" representor
      check "$REP is a br-int port" sh -c "ovs-vsctl --db=unix:$D/db.sock list-ports br-int | grep -qx $REP"
      check "$REP: hw-tc-offload on" sh -c "ethtool -k $REP | grep -q 'hw-tc-offload: on'"
    fi
    if ctl_json "offload --port $REP --probe -o json" offload "${OV[@]}" --port "$REP" --probe -o json; then
      expect_match "the kernel refuses skip_sw on the netdevsim representor, in its words" \
        "$(jv '.attachments[0].probe')" "netdevsim: only offload of BPF classifiers supported"
    fi
    if ctl_ok "trace --port $REP --probe" trace "${OV[@]}" --port "$REP" --probe; then
      diag "$CTL_OUT"
      expect_match "trace: VF hop in hardware" "$CTL_OUT" "1\. vf +HARDWARE"
      expect_match "trace: representor hop in software, with the kernel's answer" "$CTL_OUT" "representor +software +eth[0-9]+.*skip_sw probe refused by the kernel: .*netdevsim"
    fi
    # netdevsim VFs have no PCI function or netdev to move into a pod, so the CNI cannot take
    # one; with a switchdev eswitch on the node, a pod without a VF gets a veth and the probe
    # (devlink, real kernel) says why.
    if [ -n "$SMARTNIC" ]; then
      ip netns add ofl-e
      on_exit "ip netns del ofl-e"
      pod_cni ADD e "$(ovs_conf red 100 10.1.0.5)"
      if [ "$CNI_RC" = 0 ]; then
        ok "CNI ADD pod-e with a switchdev eswitch on the node"
        expect_match "pod-e: veth, the switchdev pool gave it no VF" "$(jq -r '."smartnic.io/ovs" | .attachment + ": " + .reason' <<<"$CNI_OUT")" "^veth: no VF allocated"
        pod_cni DEL e "$(ovs_conf red 100 10.1.0.5)"
        if [ "$CNI_RC" = 0 ]; then ok "CNI DEL pod-e"; else fail "CNI DEL pod-e" "$(cni_diag)"; fi
      else
        fail "CNI ADD pod-e with a switchdev eswitch on the node" "$(cni_diag)"
      fi
    fi
  fi
fi

# ===================================================================== skip_sw
section "tc-policy=skip_sw: the kernel refuses, flows fall back to dp:ovs"
ctl_json "ovs setup --tc-policy skip-sw" ovs "${OV[@]}" setup -o json --datapath system --hw-offload true --tc-policy skip-sw \
  && expect_eq "setup says a restart is needed" "$(jv .restartRequired)" true
stop_vswitchd
start_vswitchd
ctl_ok "ovs setup after the restart (flows re-synced)" ovs "${OV[@]}" setup --datapath system --hw-offload true --tc-policy skip-sw
check "ping pod-a -> pod-b still works (software fallback)" ip netns exec ofl-a ping -c 3 -i 0.3 -W 2 10.1.0.2
if ctl_json "offload --probe -o json (skip_sw)" offload "${OV[@]}" --probe -o json; then
  note "counts: $(jv .counts -c)"
  expect_eq "report: tc-policy skip_sw" "$(jv .tcPolicy)" skip_sw
  check "report: flows in the OVS datapath (dp:ovs)" test "$(jv .counts.ovs)" -gt 0
  expect_eq "report: no flow in tc" "$(jv .counts.tc)" 0
  a=$(jv ".attachments[] | select(.port == \"${PORT[a]}\")" -c)
  expect_match "pod-a: dp:ovs flows" "$(jq -r '[.flows[].dp] | unique | join(",")' <<<"$a")" "^ovs$"
  expect_match "pod-a: the kernel's reason" "$(jq -r '.fallbacks | join(" | ")' <<<"$a")" "tc refused the rule on ${PORT[a]} with skip_sw: .*(Operation not supported|not supported)"
fi
check "no flower rule left on ${PORT[a]}" sh -c "! tc filter show dev ${PORT[a]} ingress | grep -q flower"
check "dpctl type=ovs lists pod-a's flows" sh -c "ovs-appctl -t $D/ovs-vswitchd.ctl dpctl/dump-flows -m type=ovs | grep -q 'in_port(${PORT[a]})'"
diag "$(grep 'failed to offload flow' "$D/ovs-vswitchd.log" | tail -2)"

section "detach"
ctl_ok "ovs detach ${PORT[b]}" ovs "${OV[@]}" detach "${PORT[b]}"
check "${PORT[b]} is gone from br-int and the host" sh -c "! ovs-vsctl --db=unix:$D/db.sock list-ports br-int | grep -qx ${PORT[b]} && ! ip link show ${PORT[b]} 2>/dev/null"
if [ -n "$CNI_D" ]; then
  for i in 1 2; do
    pod_cni DEL d "$(ovs_conf red 100 10.1.0.4)"
    if [ "$CNI_RC" = 0 ]; then ok "CNI DEL pod-d (#$i)"; else fail "CNI DEL pod-d (#$i)" "$(cni_diag)"; fi
  done
  check "$CNI_D is gone from br-int and the host" sh -c "! ovs-vsctl --db=unix:$D/db.sock list-ports br-int | grep -qx $CNI_D && ! ip link show $CNI_D 2>/dev/null"
fi
summary

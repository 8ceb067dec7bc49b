#!/bin/bash
# suite: cni - the smartnic CNI plugin on real VFs: sriov mode into pod netns with MAC/VLAN/trust through the PF, VF-to-VF ping, DEL restores the VF table; whole igb PFs into pods and back; ipvlan l2 and l3s
# needs: smartnic
# features: cni/failpoints
#
# The plugin is invoked as a runtime invokes it: CNI_* environment, configuration on stdin.
#   sriov   two VFs of SMARTNIC_TEST_PF go into two pod namespaces (VLAN, trust, MAC set through
#           the PF), the pods ping each other over the VFs, CHECK passes, DEL puts every VF back
#           and the PF's VF table is exactly what it was before.
#   wholepf both igb PFs, offered whole by the node's device-plugin configuration, go into two
#           pods (host-device form), ping each other over the cable, and come back on DEL under
#           their names, MACs and MTUs (one after its netns is gone); a PF the configuration
#           does not offer is refused.
#   abort   a `mode: sriov` ADD of a VF of SMARTNIC_TEST_PF (VLAN, MAC, host-local IPAM) aborted
#           at each step it journals (SMARTNIC_CNI_FAILPOINT, the binary built with the
#           `failpoints` feature: hw-tests/run does), then DEL, then a new ADD and its DEL: after
#           each DEL the VF is back in the host under its name, the PF's VF table (MAC, VLAN,
#           trust, spoofchk) is what it was, the pod has no net1 and no lease is left.
#   ipvlan  two pods with ipvlan children of the PF in mode l2, then l3s, ping each other.
# Environment: SMARTNIC_TEST_PF (the lab sets its first igb PF), SMARTNIC (the binary; default:
# smartnic on PATH, then target/).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SMARTNIC=${SMARTNIC:-$(lab_bin smartnic)}
if ! need_root; then
  skip "cni suite" "needs root (it moves VFs into network namespaces)"
  summary
fi
if [ -z "$SMARTNIC" ]; then
  fail "the smartnic binary is built" "not on PATH and not in target/"
  summary
fi
if ! have_jq; then
  fail "jq (or gojq) is installed"
  summary
fi

STATE=$T_TMP/state
export SMARTNIC_CNI_STATE_DIR=$STATE

pod() { ip netns add "$1" && on_exit "ip netns del $1"; }
vf_table() { ip -j link show "$1" | jq -c '[.[0].vfinfo_list[]? | {vf, address, vlan_list, spoofchk, trust, link_state, rate}]'; }

PF=${SMARTNIC_TEST_PF:-}
sriov_part() {
  section "sriov mode on $PF"
  local dev=/sys/class/net/$PF/device
  if [ ! -e "$dev/sriov_totalvfs" ]; then
    skip "sriov mode" "$PF has no SR-IOV"
    return
  fi
  on_exit "echo 0 > $dev/sriov_numvfs"
  echo 2 >"$dev/sriov_numvfs"
  ip link set "$PF" up
  wait_for 20 test -e "$dev/virtfn1/net" || { fail "2 VFs with netdevs on $PF" "$(ls "$dev/virtfn1/" 2>&1)"; return; }
  local vf0 vf1 n0 n1 before after
  vf0=$(readlink -f "$dev/virtfn0"); vf0=${vf0##*/}
  vf1=$(readlink -f "$dev/virtfn1"); vf1=${vf1##*/}
  n0=$(ls "$dev/virtfn0/net"); n1=$(ls "$dev/virtfn1/net")
  note "VFs $vf0 ($n0, $(readlink "$dev/virtfn0/driver" | sed 's#.*/##')) and $vf1 ($n1)"
  before=$(vf_table "$PF")
  # The node's pools (what the agent writes for the device plugin): the PF's VFs, so that the
  # plugin takes only a VF the device plugin could have allocated.
  printf '{"resourceList":[{"resourceName":"lab","resourcePrefix":"smartnic.io","deviceType":"netdevice","selectors":[{"pfs":[{"pciAddress":"%s"}]}]}]}' \
    "$(basename "$(readlink -f "$dev")")" >"$T_TMP/device-plugin.json"
  export SMARTNIC_CNI_READY_FILE=$T_TMP/device-plugin.json
  pod cnia; pod cnib
  local conf
  conf() { # $1 = deviceID, $2 = MAC, $3 = address
    printf '{"cniVersion":"1.1.0","name":"labvf","type":"smartnic","mode":"sriov","deviceID":"%s","vlan":100,"trust":true,"spoofChk":true,"runtimeConfig":{"mac":"%s"},"ipam":{"type":"static","addresses":[{"address":"%s"}]}}' "$1" "$2" "$3"
  }
  cni ADD poda /run/netns/cnia net1 "$(conf "$vf0" 02:00:00:00:55:0a 10.55.0.10/24)"
  if [ "$CNI_RC" = 0 ]; then ok "ADD moves $vf0 into pod a"; else fail "ADD moves $vf0 into pod a" "$(cni_diag)"; return; fi
  local res_a=$CNI_OUT
  expect_eq "result interface" "$(jq -r '.interfaces[0].name + " " + .interfaces[0].pciID + " " + .interfaces[0].sandbox' <<<"$res_a")" "net1 $vf0 /run/netns/cnia"
  check "net1 is in pod a with the MAC" sh -c "ip -n cnia link show net1 | grep -q 02:00:00:00:55:0a"
  check "$n0 left the host" sh -c "! ip link show $n0"
  local row
  row=$(ip -j link show "$PF" | jq -c '.[0].vfinfo_list[] | select(.vf == 0)')
  expect_eq "VF 0 MAC through the PF" "$(jq -r .address <<<"$row")" 02:00:00:00:55:0a
  expect_eq "VF 0 VLAN through the PF" "$(jq -r '.vlan_list[0].vlan // empty' <<<"$row")" 100
  expect_eq "VF 0 trust through the PF" "$(jq -r .trust <<<"$row")" true
  cni ADD podb /run/netns/cnib net1 "$(conf "$vf1" 02:00:00:00:55:0b 10.55.0.11/24)"
  if [ "$CNI_RC" = 0 ]; then ok "ADD moves $vf1 into pod b"; else fail "ADD moves $vf1 into pod b" "$(cni_diag)"; fi
  cni ADD podc /run/netns/cnib net2 "$(conf "$vf0" 02:00:00:00:55:0c 10.55.0.12/24)"
  if [ "$CNI_RC" != 0 ] && jq -e '.code == 101' <<<"$CNI_OUT" >/dev/null; then ok "a VF held by a live pod is refused (code 101)"; else fail "a VF held by a live pod is refused" "$(cni_diag)"; fi
  if wait_for 15 ip netns exec cnia ping -c 1 -W 1 10.55.0.11; then
    ok "pod a pings pod b over the VFs (VLAN 100)"
  else
    fail "pod a pings pod b over the VFs (VLAN 100)" "$(ip -n cnia -s link show net1; ip -n cnib -s link show net1)"
  fi
  local check_conf
  check_conf=$(jq -c --argjson r "$res_a" '. + {prevResult: $r}' <<<"$(conf "$vf0" 02:00:00:00:55:0a 10.55.0.10/24)")
  cni CHECK poda /run/netns/cnia net1 "$check_conf"
  if [ "$CNI_RC" = 0 ]; then ok "CHECK passes"; else fail "CHECK passes" "$(cni_diag)"; fi
  ip link set "$PF" vf 0 vlan 200
  cni CHECK poda /run/netns/cnia net1 "$check_conf"
  if [ "$CNI_RC" != 0 ]; then ok "CHECK sees a VLAN changed behind its back"; else fail "CHECK sees a VLAN changed behind its back"; fi
  cni DEL poda /run/netns/cnia net1 "$(conf "$vf0" 02:00:00:00:55:0a 10.55.0.10/24)"
  if [ "$CNI_RC" = 0 ]; then ok "DEL pod a"; else fail "DEL pod a" "$(cni_diag)"; fi
  cni DEL poda /run/netns/cnia net1 "$(conf "$vf0" 02:00:00:00:55:0a 10.55.0.10/24)"
  if [ "$CNI_RC" = 0 ]; then ok "DEL pod a again"; else fail "DEL pod a again" "$(cni_diag)"; fi
  # Pod b's namespace goes first: the kernel returns the VF netdev under its pod name.
  ip netns del cnib
  cni DEL podb /run/netns/cnib net1 "$(conf "$vf1" 02:00:00:00:55:0b 10.55.0.11/24)"
  if [ "$CNI_RC" = 0 ]; then ok "DEL pod b after its netns is gone"; else fail "DEL pod b after its netns is gone" "$(cni_diag)"; fi
  check "$n0 is back in the host under its name" ip link show "$n0"
  check "$n1 is back in the host under its name" ip link show "$n1"
  after=$(vf_table "$PF")
  expect_eq "the VF table is exactly what it was" "$after" "$before"
}

sriov_abort_part() {
  section "sriov ADD aborted at each step on $PF, then DEL and a new ADD"
  local dev=/sys/class/net/$PF/device
  if [ ! -e "$dev/sriov_totalvfs" ]; then
    skip "sriov abort" "$PF has no SR-IOV"
    return
  fi
  on_exit "echo 0 > $dev/sriov_numvfs"
  [ "$(cat "$dev/sriov_numvfs")" -ge 1 ] || echo 2 >"$dev/sriov_numvfs"
  ip link set "$PF" up
  wait_for 20 test -e "$dev/virtfn0/net" || { fail "a VF with a netdev on $PF" "$(ls "$dev/virtfn0/" 2>&1)"; return; }
  local vf0 n0 before step conf ipam=$T_TMP/ipam-abort
  vf0=$(readlink -f "$dev/virtfn0"); vf0=${vf0##*/}
  n0=$(ls "$dev/virtfn0/net")
  before=$(vf_table "$PF")
  printf '{"resourceList":[{"resourceName":"lab","resourcePrefix":"smartnic.io","deviceType":"netdevice","selectors":[{"pfs":[{"pciAddress":"%s"}]}]}]}' \
    "$(basename "$(readlink -f "$dev")")" >"$T_TMP/device-plugin.json"
  export SMARTNIC_CNI_READY_FILE=$T_TMP/device-plugin.json
  printf '{"ipamDataDirs":["%s"]}' "$ipam" >"$T_TMP/allow-abort.json"
  export SMARTNIC_CNI_ALLOW_LIST=$T_TMP/allow-abort.json
  conf=$(printf '{"cniVersion":"1.1.0","name":"lababort","type":"smartnic","mode":"sriov","deviceID":"%s","vlan":300,"trust":true,"runtimeConfig":{"mac":"02:00:00:00:58:0a"},"ipam":{"type":"host-local","ranges":[[{"subnet":"10.58.0.0/24"}]],"dataDir":"%s"}}' "$vf0" "$ipam")
  leases() { find "$ipam" -type f -name '10.*' 2>/dev/null | wc -l; }
  pod cniab
  # restored STEP: the VF back in the host as it was, nothing in the pod, no lease
  restored() {
    check "after $1: $n0 is back in the host under its name" ip link show "$n0"
    check "after $1: no net1 in the pod" sh -c "! ip -n cniab link show net1 2>/dev/null"
    expect_eq "after $1: the VF table (MAC, VLAN, trust) is what it was" "$(vf_table "$PF")" "$before"
    expect_eq "after $1: no lease left" "$(leases)" 0
  }
  for step in begin vf-claimed vf-saved vf-configure vf-move ipam addresses done; do
    SMARTNIC_CNI_FAILPOINT=$step cni ADD "ab-$step" /run/netns/cniab net1 "$conf"
    if [ "$CNI_RC" -gt 128 ]; then
      ok "ADD aborted at $step (exit $CNI_RC)"
    elif [ "$CNI_RC" = 0 ]; then
      fail "ADD aborted at $step" "the ADD succeeded: the binary has no crash points (build it with --features cni/failpoints; hw-tests/run does)"
      cni DEL "ab-$step" /run/netns/cniab net1 "$conf"
      break
    else
      fail "ADD aborted at $step" "$(cni_diag)"
    fi
    cni DEL "ab-$step" /run/netns/cniab net1 "$conf"
    if [ "$CNI_RC" = 0 ]; then ok "DEL after the abort at $step"; else fail "DEL after the abort at $step" "$(cni_diag)"; fi
    restored "the abort at $step and DEL"
    cni ADD "ab-$step-again" /run/netns/cniab net1 "$conf"
    if [ "$CNI_RC" = 0 ]; then ok "a new ADD after the abort at $step"; else fail "a new ADD after the abort at $step" "$(cni_diag)"; fi
    local row
    row=$(ip -j link show "$PF" | jq -c '.[0].vfinfo_list[] | select(.vf == 0)')
    expect_eq "  ...VF 0 MAC and VLAN set" "$(jq -r '.address + " " + (.vlan_list[0].vlan // 0 | tostring)' <<<"$row")" "02:00:00:00:58:0a 300"
    cni DEL "ab-$step-again" /run/netns/cniab net1 "$conf"
    restored "the new ADD's DEL"
  done
  unset SMARTNIC_CNI_READY_FILE SMARTNIC_CNI_ALLOW_LIST
}

whole_pf_part() {
  section "whole PFs in mode sriov (host-device form)"
  local pfs=() d
  for d in /sys/bus/pci/drivers/igb/0000:*; do
    [ -d "$d/net" ] && pfs+=("${d##*/}")
  done
  if [ "${#pfs[@]}" -lt 2 ]; then
    skip "whole PFs" "fewer than two igb PFs with netdevs"
    return
  fi
  local a=${pfs[0]} b=${pfs[1]} na nb mac_a mtu_a mac_b
  na=$(ls "/sys/bus/pci/devices/$a/net"); nb=$(ls "/sys/bus/pci/devices/$b/net")
  mac_a=$(cat "/sys/class/net/$na/address"); mtu_a=$(cat "/sys/class/net/$na/mtu")
  mac_b=$(cat "/sys/class/net/$nb/address")
  note "PFs $a ($na) and $b ($nb), cabled to each other"
  # the node's applied device-plugin configuration, as the agent writes it for a wholePf policy
  export SMARTNIC_CNI_READY_FILE=$T_TMP/device-plugin.json
  printf '{"resourceList":[{"resourceName":"igb_pf","resourcePrefix":"smartnic.io","deviceType":"netdevice","selectors":[{"pciAddresses":["%s","%s"]}]}]}' "$a" "$b" >"$SMARTNIC_CNI_READY_FILE"
  pod cnipfa; pod cnipfb
  pfconf() { # $1 = deviceID, $2 = address, $3 = extra keys
    printf '{"cniVersion":"1.1.0","name":"labpf","type":"smartnic","mode":"sriov","resourceName":"smartnic.io/igb_pf","deviceID":"%s","ipam":{"type":"static","addresses":[{"address":"%s"}]}%s}' "$1" "$2" "$3"
  }
  local conf_a conf_b
  conf_a=$(pfconf "$a" 10.57.0.1/24 ',"runtimeConfig":{"mac":"02:00:00:00:57:01"}')
  conf_b=$(pfconf "$b" 10.57.0.2/24 '')
  cni ADD pfa /run/netns/cnipfa net1 "$conf_a"
  if [ "$CNI_RC" = 0 ]; then ok "ADD moves PF $a into pod a"; else fail "ADD moves PF $a into pod a" "$(cni_diag)"; return; fi
  expect_eq "result names the PF" "$(jq -r '.interfaces[0].name + " " + .interfaces[0].pciID' <<<"$CNI_OUT")" "net1 $a"
  check "$na left the host" sh -c "! ip link show $na"
  check "net1 in pod a has the runtime MAC" sh -c "ip -n cnipfa link show net1 | grep -q 02:00:00:00:57:01"
  cni ADD pfb /run/netns/cnipfb net1 "$conf_b"
  if [ "$CNI_RC" = 0 ]; then ok "ADD moves PF $b into pod b"; else fail "ADD moves PF $b into pod b" "$(cni_diag)"; fi
  if wait_for 20 ip netns exec cnipfa ping -c 1 -W 1 10.57.0.2; then
    ok "pod a pings pod b over the two whole PFs"
  else
    fail "pod a pings pod b over the two whole PFs" "$(ip -n cnipfa -s link show net1; ip -n cnipfb -s link show net1)"
  fi
  cni DEL pfa /run/netns/cnipfa net1 "$conf_a"
  if [ "$CNI_RC" = 0 ]; then ok "DEL pod a"; else fail "DEL pod a" "$(cni_diag)"; fi
  # pod b's namespace goes first: the kernel returns the PF netdev under its pod name
  ip netns del cnipfb
  cni DEL pfb /run/netns/cnipfb net1 "$conf_b"
  if [ "$CNI_RC" = 0 ]; then ok "DEL pod b after its netns is gone"; else fail "DEL pod b after its netns is gone" "$(cni_diag)"; fi
  check "$na is back in the host under its name" ip link show "$na"
  check "$nb is back in the host under its name" ip link show "$nb"
  expect_eq "$na MAC and MTU restored" "$(cat "/sys/class/net/$na/address" "/sys/class/net/$na/mtu" 2>&1 | tr '\n' ' ')" "$mac_a $mtu_a "
  expect_eq "$nb MAC kept" "$(cat "/sys/class/net/$nb/address" 2>&1)" "$mac_b"
  # a PF the configuration does not offer whole is refused, and stays in the host
  printf '{"resourceList":[{"resourceName":"igb_pf","resourcePrefix":"smartnic.io","deviceType":"netdevice","selectors":[{"pciAddresses":["%s"]}]}]}' "$b" >"$SMARTNIC_CNI_READY_FILE"
  cni ADD pfc /run/netns/cnipfa net1 "$conf_a"
  if [ "$CNI_RC" != 0 ] && jq -e '.code == 7' <<<"$CNI_OUT" >/dev/null; then ok "a PF not offered whole is refused (code 7)"; else fail "a PF not offered whole is refused" "$(cni_diag)"; fi
  check "$na is still in the host" ip link show "$na"
  unset SMARTNIC_CNI_READY_FILE
}

ipvlan_part() {
  section "ipvlan on ${PF:-?}"
  if ! ip link add cniprobe link "${PF:-lo}" type ipvlan mode l2 2>/dev/null; then
    skip "ipvlan l2 and l3s" "no ipvlan in this kernel or no PF"
    return
  fi
  ip link del cniprobe
  ip link set "$PF" up
  # The administrator's allow-list on this node: the PF as a master, the lab's IPAM directory.
  printf '{"masters":[{"name":"%s"}],"ipamDataDirs":["%s/ipam"]}' "$PF" "$T_TMP" >"$T_TMP/allow.json"
  export SMARTNIC_CNI_ALLOW_LIST=$T_TMP/allow.json
  # A host link bearing the pod's interface name: creation must not trip over it.
  ip link add net1 type veth peer name net1peer
  local mode
  for mode in l2 l3s; do
    pod "cniv${mode}a"; pod "cniv${mode}b"
    local c='{"cniVersion":"1.1.0","name":"labipv","type":"smartnic","mode":"ipvlan","master":"'$PF'","ipvlanMode":"'$mode'","ipam":{"type":"host-local","ranges":[[{"subnet":"10.56.0.0/24"}]],"dataDir":"'$T_TMP'/ipam"}}'
    cni ADD "i${mode}a" "/run/netns/cniv${mode}a" net1 "$c"
    local a_rc=$CNI_RC a_out=$CNI_OUT
    cni ADD "i${mode}b" "/run/netns/cniv${mode}b" net1 "$c"
    if [ "$a_rc" = 0 ] && [ "$CNI_RC" = 0 ]; then ok "ipvlan $mode: two pods attached"; else fail "ipvlan $mode: two pods attached" "$a_out"$'\n'"$(cni_diag)"; continue; fi
    local ip_b
    ip_b=$(jq -r '.ips[0].address' <<<"$CNI_OUT" | cut -d/ -f1)
    check "ipvlan $mode: link mode is $mode" sh -c "ip -d -n cniv${mode}a link show net1 | grep -q 'ipvlan.*mode $mode'"
    if wait_for 10 ip netns exec "cniv${mode}a" ping -c 1 -W 1 "$ip_b"; then ok "ipvlan $mode: pod a pings pod b"; else fail "ipvlan $mode: pod a pings pod b"; fi
    cni DEL "i${mode}a" "/run/netns/cniv${mode}a" net1 "$c"; local d1=$CNI_RC
    cni DEL "i${mode}b" "/run/netns/cniv${mode}b" net1 "$c"
    if [ "$d1" = 0 ] && [ "$CNI_RC" = 0 ]; then ok "ipvlan $mode: DEL both"; else fail "ipvlan $mode: DEL both" "$(cni_diag)"; fi
  done
  check "the host's own net1 is untouched" sh -c "ip -d link show net1 | grep -q veth"
  ip link del net1
}

cni VERSION x /x net1 '{"cniVersion":"1.1.0"}'
expect_eq "VERSION" "$(jq -c .supportedVersions <<<"$CNI_OUT")" '["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]'
whole_pf_part
if [ -n "$PF" ]; then
  sriov_part
  sriov_abort_part
  ipvlan_part
else
  skip "sriov and ipvlan" "no SMARTNIC_TEST_PF"
fi
summary

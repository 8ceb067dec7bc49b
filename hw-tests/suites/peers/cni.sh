# shellcheck shell=bash
# Part of hw-tests/suites/peers.sh (sourced): tables 2 (same config) and 3 (faults).

# ===================================================================== 2. same config
# sriov-cni's example configurations as its README and docs/configuration-reference.md give them,
# with `deviceID` added as Multus adds it; `type` becomes smartnic and `"mode": "sriov"` is added.
# EXPECT: what sriov-cni does with each on igb (its docs and code: ADD sets only the VF fields the
# configuration names, through the PF, in the order vlan/qos/proto, MAC, rates, spoofchk, trust,
# link state, and on an error resets them; a VF on vfio-pci gets the PF side only; DEL restores).
section "2. CNI, same config: sriov-cni's documented examples through smartnic"
doc_conf() { # doc_conf NAME VF: the example, as documented
  local ipam='"ipam":{"type":"host-local","subnet":"10.56.217.0/24","routes":[{"dst":"0.0.0.0/0"}],"gateway":"10.56.217.1"}'
  case "$1" in
    kernel) printf '{"type":"sriov","cniVersion":"0.3.1","name":"sriov-network",%s,"deviceID":"%s"}' "$ipam" "$2";;
    extended) printf '{"cniVersion":"0.3.1","name":"sriov-advanced","type":"sriov","vlan":1000,"spoofchk":"off","trust":"on",%s,"deviceID":"%s"}' "$ipam" "$2";;
    dpdk) printf '{"cniVersion":"0.3.1","name":"sriov-dpdk","type":"sriov","vlan":1000,"deviceID":"%s"}' "$2";;
    every-field) printf '{"cniVersion":"0.3.1","name":"sriov-dpdk","type":"sriovi-net","deviceID":"%s","mac":"CA:FE:C0:FF:EE:00","vlan":1000,"vlanQoS":4,"vlanProto":"802.1ad","min_tx_rate":100,"max_tx_rate":200,"spoofchk":"off","trust":"on","link_state":"enable","logLevel":"debug","logFile":"/tmp/sriov.log"}' "$2";;
  esac
}
# A logFile path becomes its file name, as `smartnicctl convert` does: ours writes only in its
# own log directory.
as_ours() { jq -c '.type = "smartnic" | .mode = "sriov" | if .logFile then .logFile |= (split("/") | last) else . end' <<<"$1"; }
as_theirs() { jq -c '.type = "sriov"' <<<"$1"; }
# outcome NETNS VF VFIDX: rc, the VF row and where the VF is, in one line
outcome() {
  local where drv
  drv=$(readlink "/sys/bus/pci/devices/$2/driver" | sed 's#.*/##')
  if [ "$RC" != 0 ]; then where="refused"
  elif [ "$drv" = vfio-pci ]; then where="stays on vfio-pci"
  else where="pod $(pod_state "$1" net1 | jq -r '"\(.ifname) \(.addrs | join(","))"') routes $(pod_routes "$1" net1)"
  fi
  echo "rc=$([ "$RC" = 0 ] && echo 0 || echo error) $where row $(row_of "$3")"
}
to_vfio() { # to_vfio BDF: true when it is on vfio-pci afterwards
  modprobe vfio-pci 2>/dev/null
  [ -e "/sys/bus/pci/devices/$1/iommu_group" ] || return 1
  echo vfio-pci >"/sys/bus/pci/devices/$1/driver_override"
  echo "$1" >"/sys/bus/pci/devices/$1/driver/unbind"
  echo "$1" >/sys/bus/pci/drivers_probe
  [ "$(readlink "/sys/bus/pci/devices/$1/driver" | sed 's#.*/##')" = vfio-pci ]
}
from_vfio() {
  echo "$1" >"/sys/bus/pci/devices/$1/driver/unbind" 2>/dev/null
  echo >"/sys/bus/pci/devices/$1/driver_override"
  echo "$1" >/sys/bus/pci/drivers_probe
  wait_for 30 test -e "/sys/bus/pci/devices/$1/net"
}
row_of() { vf_row "$PF" "$1" | jq -c '{mac, vlan, qos, spoofchk, trust, max_tx, min_tx}'; }
pod peers-cfg
ROW1=$(row_of 1)
row_with() { jq -c "$1" <<<"$ROW1"; }
T2=()
EXAMPLES="kernel extended dpdk every-field"
# host-local's default directory: only where no real network of that name has leases.
for d in sriov-network sriov-advanced; do
  [ -e "/var/lib/cni/networks/$d" ] && { skip "2: sriov-cni's examples" "/var/lib/cni/networks/$d exists (a real network's leases)"; EXAMPLES=""; }
done
for ex in $EXAMPLES; do
  idx=1
  if [ "$ex" = dpdk ]; then
    idx=4
    if ! to_vfio "${VF[4]}"; then skip "2: $ex" "${VF[4]} cannot go to vfio-pci (no IOMMU group or no vfio-pci)"; continue; fi
  fi
  v=${VF[$idx]}
  base=$(row_with .)
  case "$ex" in
    kernel) want="rc=0 pod net1 10.56.217.2/24 routes [\"10.56.217.0/24 -\",\"default 10.56.217.1\"] row $base";;
    extended) want="rc=0 pod net1 10.56.217.2/24 routes [\"10.56.217.0/24 -\",\"default 10.56.217.1\"] row $(row_with '.vlan = 1000 | .spoofchk = false | .trust = true')";;
    dpdk) want="rc=0 stays on vfio-pci row $(row_of 4 | jq -c '.vlan = 1000')";;
    every-field) want="rc=error refused row $base";;
  esac
  [ "$ex" = dpdk ] && base=$(row_of 4)
  c=$(as_ours "$(doc_conf "$ex" "$v")")
  call "$SMARTNIC" ADD "cfg-$ex" /run/netns/peers-cfg net1 "$c"
  err=$(jq -r '.msg // empty' <<<"$OUT" 2>/dev/null)
  got=$(outcome peers-cfg "$v" "$idx")
  theirs="$want (expected: not built)"
  if [ "$PEER_TYPE" = sriov ]; then
    call "$SMARTNIC" DEL "cfg-$ex" /run/netns/peers-cfg net1 "$c"
    call "$PEER" ADD "cfgt-$ex" /run/netns/peers-cfg net1 "$(as_theirs "$(doc_conf "$ex" "$v")")"
    want=$(outcome peers-cfg "$v" "$idx") theirs=$want
    call "$PEER" DEL "cfgt-$ex" /run/netns/peers-cfg net1 "$(as_theirs "$(doc_conf "$ex" "$v")")"
    call "$SMARTNIC" ADD "cfg-$ex" /run/netns/peers-cfg net1 "$c"
  fi
  expect_eq "2: $ex example: ours gives sriov-cni's VF state" "$got" "$want"
  [ -n "$err" ] && note "  ours refused it: $err"
  call "$SMARTNIC" DEL "cfg-$ex" /run/netns/peers-cfg net1 "$c"
  expect_eq "2: $ex example: DEL, the VF row as before" "$(row_of "$idx")" "$base"
  T2+=("$(printf '%-12s | %s\n#              | ours:  %s' "$ex" "sriov-cni: $theirs" "$got")")
  [ "$ex" = dpdk ] && from_vfio "${VF[4]}"
done
[ -n "$EXAMPLES" ] && rm -rf /var/lib/cni/networks/sriov-network /var/lib/cni/networks/sriov-advanced /tmp/sriov.log
echo "#"
echo "# table 2: CNI, same config (only type changed, \"mode\": \"sriov\" added; on $PF; rows as ip reads them)"
for r in "${T2[@]}"; do echo "# $r"; done
echo "#"

# ===================================================================== 3. faults
# Each plugin on VF 0 with the network of table 1. What is left: the exit status, the VF's name in
# the host (its own: ok), its MAC and VLAN in the PF's table, the leases in the IPAM directory.
section "3. CNI, faults"
left() { # left WHO: what the VF and the IPAM directory look like now
  local n r
  n=$(vf_host_name "$V0")
  r=$(vf_row "$PF" 0)
  printf 'name %s, mac %s, vlan %s, leases %s' "$([ "$n" = "${VFN[0]}" ] && echo "${n} (its own)" || echo "${n:-none in the host}")" \
    "$([ "$(jq -r .mac <<<"$r")" = "$(jq -r .mac <<<"$PRE_ROW")" ] && echo "as before" || jq -r .mac <<<"$r")" \
    "$(jq -r .vlan <<<"$r")" "$(leases "$W/ipamf-$1")"
}
clean_left() { # clean_left WHO WHAT: ours must leave the VF as it found it
  [ "$1" = ours ] || return 0
  expect_eq "3: $2: ours leaves the VF as it found it" "$(vf_host_name "$V0") $(vf_row "$PF" 0)" "${VFN[0]} $PRE_ROW"
}
pre() { PRE_ROW=$(vf_row "$PF" 0); }
back_home() { wait_for 20 sh -c "ls /sys/bus/pci/devices/$V0/net/ | grep -q ."; }
T3=()
for w in theirs ours; do
  p=$(plugin_of "$w") c=$(conf "$w" "$V0" "$W/ipamf-$w")
  # a) DEL after the pod's netns is gone
  pre
  pod "peers-fa$w"
  call "$p" ADD "fa$w" "/run/netns/peers-fa$w" net1 "$c"
  ip netns del "peers-fa$w"
  back_home
  call "$p" DEL "fa$w" "/run/netns/peers-fa$w" net1 "$c"
  T3+=("$(printf '%-6s | DEL after netns gone | DEL exit %s; %s' "$w" "$RC" "$(left "$w")")")
  [ "$w" = ours ] && expect_eq "3: DEL after the netns is gone: ours exits 0" "$RC" 0
  clean_left "$w" "DEL after the netns is gone"
  # b) DEL twice
  pre
  pod "peers-fb$w"
  call "$p" ADD "fb$w" "/run/netns/peers-fb$w" net1 "$c"
  call "$p" DEL "fb$w" "/run/netns/peers-fb$w" net1 "$c"
  call "$p" DEL "fb$w" "/run/netns/peers-fb$w" net1 "$c"
  T3+=("$(printf '%-6s | DEL twice            | 2nd DEL exit %s; %s' "$w" "$RC" "$(left "$w")")")
  [ "$w" = ours ] && expect_eq "3: DEL twice: ours' second DEL exits 0" "$RC" 0
  clean_left "$w" "DEL twice"
  # c) ADD killed (-9) once the VF has left the host, the sandbox destroyed without a DEL, then
  #    the pod's next sandbox gets the same VF: ADD, DEL.
  pre
  pod "peers-fc$w"; pod "peers-fd$w"
  (CNI_COMMAND=ADD CNI_CONTAINERID="fc$w" CNI_NETNS="/run/netns/peers-fc$w" CNI_IFNAME=net1 CNI_PATH=$CNIPATH \
    exec "$p" <<<"$c" >/dev/null 2>&1) &
  pid=$!
  while [ -e "/sys/bus/pci/devices/$V0/net/${VFN[0]}" ] && kill -0 "$pid" 2>/dev/null; do :; done
  if kill -9 "$pid" 2>/dev/null; then at="killed once the VF left the host"; else at="finished before the kill"; fi
  wait "$pid" 2>/dev/null
  ip netns del "peers-fc$w"
  back_home
  mid="$(vf_host_name "$V0")"
  call "$p" ADD "fd$w" "/run/netns/peers-fd$w" net1 "$c"
  rc_add=$RC add_err=$(jq -r '.msg // empty' <<<"$OUT" 2>/dev/null)
  call "$p" DEL "fd$w" "/run/netns/peers-fd$w" net1 "$c"
  T3+=("$(printf '%-6s | ADD after kill -9    | %s, VF came back as %s; next ADD exit %s%s, DEL exit %s; %s' "$w" "$at" "${mid:-?}" "$rc_add" "${add_err:+ ($add_err)}" "$RC" "$(left "$w")")")
  [ "$w" = ours ] && expect_eq "3: ADD after a kill -9 mid-ADD: ours' next ADD and DEL exit 0" "$rc_add $RC" "0 0"
  clean_left "$w" "ADD after a kill -9 mid-ADD"
  # whatever a peer left: back to the VF's own name and row for the next plugin
  n=$(vf_host_name "$V0")
  [ -n "$n" ] && [ "$n" != "${VFN[0]}" ] && { ip link set "$n" down; ip link set "$n" name "${VFN[0]}"; }
  ip link set "$PF" vf 0 vlan 0 2>/dev/null
done
echo "#"
echo "# table 3: CNI, faults on $PF VF 0 ($V0, host name ${VFN[0]}); what is left afterwards (mac: in the PF's table, against before the case)"
for r in "${T3[@]}"; do echo "# $r"; done
echo "#"

#!/bin/bash
# suite: peers - ours against the plugins users run today, built from their Go modules, on the same igb VFs: CNI timing, same config, faults; device plugin pools
# needs: smartnic smartnic-device-plugin dp-kubelet-stub
# needs-built: peers/build.sh
#
# The peers come from hw-tests/peers/build.sh (go.mod pins them; versions.txt beside the binaries
# says what was built). sriov-cni and sriov-network-device-plugin are refused by the Go module
# proxy (every version), so the CNI peer is the stand-in the build names: the reference
# host-device plugin (moves the VF, named by PCI address, into the pod; sets nothing through the
# PF), with Debian's host-local for IPAM as both are deployed. Where a peer could not be built, the
# table says so and gives the behaviour its documentation and code describe.
#   1. CNI, same work: one network (VLAN 100, spoofchk on, trust off, max_tx_rate 100, host-local)
#      on VF 0; ours (mode sriov), ours with only the attachment (the work host-device does) and
#      the peer take turns call by call; ADD/DEL medians, waves of 4 parallel ADDs, ratios. The
#      pod side (name, MAC, MTU, state, addresses) read back with `ip` must match; ours' VF row
#      must be what the network asks for.
#   2. CNI, same config: sriov-cni's documented example configurations, unchanged but for `type`
#      and `"mode": "sriov"`, must give the VF state sriov-cni gives.
#   3. CNI, faults: DEL after the netns is gone, DEL twice, ADD after a kill -9 mid-ADD (and no
#      DEL for it): what each plugin leaves behind. Ours must leave the VF as it found it.
#   4. Device plugin, same selectors: pools from one table; advertised IDs, start to first
#      ListAndWatch, Allocate median, PF down -> Unhealthy, a new VF -> advertised.
# Ratios are printed, never asserted: the suite fails only on wrong results.
# Environment: SMARTNIC_TEST_PF (the lab: its first igb); the device plugin part uses the next igb
# PF (SMARTNIC_TEST_PF2); SMARTNIC_TEST_PEERS_N calls per plugin (default 7).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SMARTNIC=$(lab_bin smartnic)
# Ours as shipped when it is built (static musl, profile cni), else profile cni on this target;
# otherwise the build hw-tests/run made (a debug build: its times are not the product's).
for b in x86_64-unknown-linux-musl/cni cni; do
  f=$(dirname "${BASH_SOURCE[0]}")/../../target/$b/smartnic
  [ -x "$f" ] && { SMARTNIC=$(cd "$(dirname "$f")" && pwd)/smartnic; break; }
done
DP=$(lab_bin smartnic-device-plugin)
STUB=$(lab_bin dp-kubelet-stub)
N=${SMARTNIC_TEST_PEERS_N:-7}

if ! need_root; then skip "peers suite" "needs root (it moves VFs into network namespaces)"; summary; fi
if [ -z "${SMARTNIC_TEST_PF:-}" ]; then skip "peers suite" "SMARTNIC_TEST_PF is not set"; summary; fi
have_jq || { fail "jq (or gojq) is installed"; summary; }
for b in SMARTNIC DP STUB; do
  [ -n "${!b}" ] || { fail "binary found: $b" "build it (hw-tests/run builds what '# needs:' names)"; summary; }
done
HOSTLOCAL=$(command -v host-local) || { fail "Debian's host-local is on PATH" "hw-tests/run copies it in from hw-tests/peers/build.sh"; summary; }
PEER_TYPE="" PEER=""
for t in sriov host-device; do
  PEER=$(command -v "$t") && { PEER_TYPE=$t; break; }
done
[ -n "$PEER_TYPE" ] || { fail "a peer CNI (sriov or its stand-in host-device) is on PATH" "run hw-tests/peers/build.sh"; summary; }
VERSIONS=$(dirname "$PEER")/versions.txt
section "peers (hw-tests/peers/build.sh)"
[ -f "$VERSIONS" ] && while read -r line; do note "$line"; done <"$VERSIONS"
note "ours: $SMARTNIC"
if [ "$PEER_TYPE" = sriov ]; then THEIRS="sriov-cni"; else
  THEIRS="host-device"
  note "sriov-cni: not built, github.com/k8snetworkplumbingwg/sriov-cni is refused by the module proxy; stand-in: host-device"
fi
command -v sriovdp >/dev/null || note "sriovdp: not built, github.com/k8snetworkplumbingwg/sriov-network-device-plugin is refused by the module proxy; no served stand-in"

PF=$SMARTNIC_TEST_PF
PFDEV=/sys/class/net/$PF/device
W=$T_TMP/w
mkdir -p "$W"
export SMARTNIC_CNI_STATE_DIR=$W/state
# What the node's administrator and agent give our plugin: the allow-list (our IPAM directories)
# and the pools file (the PF's VFs); logFile names land in $W/log.
printf '{"ipamDataDirs":["%s/ipam-ours","%s/ipamw-ours","%s/ipamf-ours","%s/ipam-attach","%s/ipamw-attach","%s/ipamf-attach"]}' \
  "$W" "$W" "$W" "$W" "$W" "$W" >"$W/allow.json"
printf '{"resourceList":[{"resourceName":"peers","resourcePrefix":"smartnic.io","deviceType":"netdevice","selectors":[{"pfs":[{"pciAddress":"%s"}]}]}]}' \
  "$(basename "$(readlink -f "$PFDEV")")" >"$W/device-plugin.json"
export SMARTNIC_CNI_ALLOW_LIST=$W/allow.json SMARTNIC_CNI_READY_FILE=$W/device-plugin.json
export SMARTNIC_CNI_LOG_DIR=$W/log
CNIPATH=$(dirname "$HOSTLOCAL")

# call PLUGIN CMD ID NETNS IFNAME CONF: as a runtime calls it; sets RC, OUT and US (wall µs).
call() {
  local p=$1 t0 t1
  shift
  t0=${EPOCHREALTIME/./}
  if [[ $p == ip_* ]]; then
    OUT=$(CNI_COMMAND=$1 CNI_NETNS=$3 CNI_IFNAME=$4 "$p" <<<"$5" 2>"$W/err")
  else
    OUT=$(CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=$3 CNI_IFNAME=$4 CNI_PATH=$CNIPATH timeout 60 "$p" <<<"$5" 2>"$W/err")
  fi
  RC=$?
  t1=${EPOCHREALTIME/./}
  US=$((t1 - t0))
}
call_diag() { printf 'exit %s\n%s\n%s' "$RC" "$OUT" "$(cat "$W/err")"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.1f", (NR % 2) ? v[(NR + 1) / 2] / 1000 : (v[NR / 2] + v[NR / 2 + 1]) / 2000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
pod() { ip netns add "$1" 2>/dev/null; on_exit "ip netns del $1"; }
# The pod side of an attachment, as `ip` reads it.
pod_state() {
  ip -n "$1" -j addr show dev "$2" 2>/dev/null | jq -c '.[0] | {ifname, address, mtu, up: (.flags | index("UP") != null),
    addrs: [.addr_info[]? | select(.family == "inet") | "\(.local)/\(.prefixlen)"]}'
}
pod_routes() { ip -n "$1" -j route show dev "$2" 2>/dev/null | jq -c '[.[] | "\(.dst) \(.gateway // "-")"] | sort'; }
# VF N's row in the PF's table, as `ip` reads it.
vf_row() {
  ip -j link show "$1" | jq -c --argjson n "$2" '.[0].vfinfo_list[] | select(.vf == $n) |
    {mac: .address, vlan: (.vlan_list[0].vlan // 0), qos: (.vlan_list[0].qos // 0), spoofchk, trust,
     max_tx: (.rate.max_tx // 0), min_tx: (.rate.min_tx // 0)}'
}
vf_host_name() { ls "/sys/bus/pci/devices/$1/net/" 2>/dev/null | head -n 1; }
leases() { find "$1" -maxdepth 2 -type f -name '[0-9]*' 2>/dev/null | wc -l; }

# --- VFs
on_exit "echo 0 > $PFDEV/sriov_numvfs"
[ "$(cat "$PFDEV/sriov_numvfs")" = 0 ] || echo 0 >"$PFDEV/sriov_numvfs"
echo 5 >"$PFDEV/sriov_numvfs"
ip link set "$PF" up
VF=() VFN=()
for i in 0 1 2 3 4; do
  wait_for 30 test -e "$PFDEV/virtfn$i/net" || { fail "VF $i of $PF has a netdev" "$(ls "$PFDEV/virtfn$i/" 2>&1)"; summary; }
  l=$(readlink -f "$PFDEV/virtfn$i"); VF[$i]=${l##*/}; VFN[$i]=$(vf_host_name "${VF[$i]}")
done
# igb takes a VF rate only at 1000 Mb/s with the link up.
wait_for 20 grep -qx 1 "/sys/class/net/$PF/carrier" || note "$PF has no carrier: max_tx_rate may be refused"
# igbvf asks the PF for its own (random) MAC the first time it opens: after that the PF's table
# shows it, so the rows read before and after a plugin are comparable.
for i in 0 1 2 3 4; do ip link set "${VFN[$i]}" up; done
sleep 2
for i in 0 1 2 3 4; do ip link set "${VFN[$i]}" down; done
note "VFs of $PF: ${VF[*]} (${VFN[*]})"

# conf WHO VF DATADIR [attach]: the one network. Both keys Multus and host-device read carry the VF.
conf() {
  local type=$PEER_TYPE mode=""
  [ "$1" = theirs ] || { type=smartnic; mode='"mode":"sriov",'; }
  local vfopts='"vlan":100,"spoofchk":"on","trust":"off","max_tx_rate":100,'
  [ "${4:-}" = attach ] && vfopts=""
  printf '{"cniVersion":"1.0.0","name":"peers-net","type":"%s",%s"deviceID":"%s","pciBusID":"%s",%s"ipam":{"type":"host-local","ranges":[[{"subnet":"10.57.0.0/24"}]],"dataDir":"%s"}}' \
    "$type" "$mode" "$2" "$2" "$vfopts" "$3"
}
plugin_of() { case "$1" in theirs) echo "$PEER";; floor*|exec) echo "ip_$1";; *) echo "$SMARTNIC";; esac; }
attach_of() { case "$1" in attach|floor) echo attach;; esac; }
# ip_floor, ip_floorvf: the kernel work of an attachment (floorvf: and of the network's VF
# settings) done by `ip`, no plugin around it: ADD moves and renames the VF netdev in one request,
# adds the address the plugins hand out first and sets it up (2 ip processes; floorvf: 3, the VF
# settings in one request); DEL takes it down and home under its own name (1; floorvf: 2).
# ip_exec: one `ip` process doing nothing, to take the floors' extra processes out.
ip_floor() {
  local ns=${CNI_NETNS##*/} n
  read -r -d '' _ || true
  case "$CNI_COMMAND" in
    ADD)
      [ "${FLOOR_VF:-0}" = 1 ] && { ip link set "$PF" vf 0 vlan 100 spoofchk on trust off max_tx_rate 100 || return 1; }
      n=("/sys/bus/pci/devices/$V0/net/"*)
      ip link set dev "${n[0]##*/}" netns "$ns" name "$CNI_IFNAME" || return 1
      ip -n "$ns" -batch - <<<$'addr add 10.57.0.2/24 dev '"$CNI_IFNAME"$'\nlink set '"$CNI_IFNAME"' up';;
    DEL)
      [ "${FLOOR_VF:-0}" = 1 ] && { ip link set "$PF" vf 0 vlan 0 max_tx_rate 0 || return 1; }
      ip -n "$ns" -batch - <<<"addr flush dev $CNI_IFNAME"$'\n'"link set $CNI_IFNAME down"$'\n'"link set $CNI_IFNAME netns 1 name ${VFN[0]}";;
  esac
}
ip_floorvf() { FLOOR_VF=1 ip_floor; }
ip_exec() { read -r -d '' _ || true; ip -V >/dev/null; }

# ===================================================================== 1. same work
section "1. CNI, same work: VF 0, vlan 100, spoofchk on, trust off, max_tx_rate 100, host-local; $N calls each, taking turns"
V0=${VF[0]}
ROW0=$(vf_row "$PF" 0)
WHO=(theirs ours attach floor floorvf exec)
for w in "${WHO[@]}"; do pod "peers-$w"; : >"$W/add.$w"; : >"$W/del.$w"; done
bad=0 addr_mismatch=0
for i in $(seq 1 "$N"); do
  for k in $(seq 0 $((${#WHO[@]} - 1))); do
    w=${WHO[$(((i + k) % ${#WHO[@]}))]}
    c=$(conf "$w" "$V0" "$W/ipam-$w" "$(attach_of "$w")")
    vf_row "$PF" 0 >"$W/pre.$w.$i"
    call "$(plugin_of "$w")" ADD "c$w$i" "/run/netns/peers-$w" net1 "$c"
    if [ "$RC" != 0 ]; then fail "1: ADD by $w (call $i)" "$(call_diag)"; bad=1; break 2; fi
    echo "$US" >>"$W/add.$w"
    [ "$w" = exec ] || pod_state "peers-$w" net1 >"$W/pod.$w.$i"
    vf_row "$PF" 0 >"$W/row.$w.$i"
    call "$(plugin_of "$w")" DEL "c$w$i" "/run/netns/peers-$w" net1 "$c"
    if [ "$RC" != 0 ]; then fail "1: DEL by $w (call $i)" "$(call_diag)"; bad=1; break 2; fi
    echo "$US" >>"$W/del.$w"
    [ "$w" = exec ] || [ "$(vf_host_name "$V0")" = "${VFN[0]}" ] || { fail "1: after DEL by $w, $V0 is back as ${VFN[0]}" "$(vf_host_name "$V0")"; bad=1; break 2; }
  done
  [ "$(jq -c .addrs "$W/pod.theirs.$i")" = "$(jq -c .addrs "$W/pod.ours.$i")" ] || addr_mismatch=$((addr_mismatch + 1))
done
if [ "$bad" = 0 ]; then
  ok "1: $((N * 2 * ${#WHO[@]})) calls, every one succeeded"
  expect_eq "1: pod side read back by ip: ours = $THEIRS (name, MAC, MTU, state, address)" \
    "$(cat "$W/pod.ours.1")" "$(cat "$W/pod.theirs.1")"
  expect_eq "1: both hand out the same address on every call ($N calls)" "$addr_mismatch" 0
  expect_eq "1: ours' VF row is what the network asks (ip link show $PF)" "$(cat "$W/row.ours.1")" \
    "$(jq -c '.vlan = 100 | .qos = 0 | .spoofchk = true | .trust = false | .max_tx = 100' "$W/pre.ours.1")"
  expect_eq "1: ours with only the attachment leaves the VF row alone" "$(cat "$W/row.attach.1")" "$(cat "$W/pre.attach.1")"
  expect_eq "1: the kernel floor (ip) gives the same pod side" "$(cat "$W/pod.floor.1")" "$(cat "$W/pod.ours.1")"
  if [ "$PEER_TYPE" = sriov ]; then
    expect_eq "1: $THEIRS' VF row = ours" "$(cat "$W/row.theirs.1")" "$(cat "$W/row.ours.1")"
  else
    note "difference: $THEIRS sets nothing through the PF: its VF row $(cat "$W/row.theirs.1")"
  fi
  expect_eq "1: after the DELs the VF row is what it was" "$(vf_row "$PF" 0)" "$ROW0"
  note "pod side (both): $(cat "$W/pod.ours.1")"
fi

# wave WHO: 4 parallel ADDs on VFs 1-4 (timed), then their DELs; prints the wave's µs.
wave() {
  local w=$1 j t0 t1 p
  p=$(plugin_of "$w")
  t0=${EPOCHREALTIME/./}
  for j in 1 2 3 4; do
    ( call "$p" ADD "v$w$j" "/run/netns/peers-w$j" net1 "$(conf "$w" "${VF[$j]}" "$W/ipamw-$w" "$(attach_of "$w")")"
      echo "$RC" >"$W/wrc.$j"; [ "$RC" = 0 ] || call_diag >"$W/werr.$j" ) &
  done
  wait
  t1=${EPOCHREALTIME/./}
  for j in 1 2 3 4; do
    [ "$(cat "$W/wrc.$j")" = 0 ] || { fail "1: wave ADD by $w on ${VF[$j]}" "$(cat "$W/werr.$j")"; return 1; }
    call "$p" DEL "v$w$j" "/run/netns/peers-w$j" net1 "$(conf "$w" "${VF[$j]}" "$W/ipamw-$w" "$(attach_of "$w")")"
  done
  echo $((t1 - t0)) >>"$W/wave.$w"
}
for j in 1 2 3 4; do pod "peers-w$j"; done
WAVES=3
for w in "${WHO[@]}"; do : >"$W/wave.$w"; done
wbad=0
for i in $(seq 1 "$WAVES"); do
  for k in 0 1 2; do wave "${WHO[$(((i + k) % 3))]}" || { wbad=1; break 2; }; done
done
[ "$wbad" = 0 ] && ok "1: $WAVES waves of 4 parallel ADDs per plugin, every call succeeded"

if [ "$bad" = 0 ]; then
  for w in "${WHO[@]}"; do
    eval "ADD_$w=\$(median <\"\$W/add.\$w\") DEL_$w=\$(median <\"\$W/del.\$w\") WAVE_$w=\$(median <\"\$W/wave.\$w\")"
  done
  r_add=$(ratio "$ADD_ours" "$ADD_theirs") r_del=$(ratio "$DEL_ours" "$DEL_theirs")
  verdict() { awk -v r="$1" -v g="$2" 'BEGIN { print (r != "-" && r <= g) ? "met" : "missed" }'; }
  row() { printf '# %-44s | %10s | %10s | %s\n' "$@"; }
  echo "#"
  echo "# table 1: CNI, same work on $PF VF 0: $N calls each taking turns, medians in ms; waves: 4 parallel ADDs on VFs 1-4, $WAVES each"
  row "" "ADD" "DEL" "wave of 4 ADDs"
  row "$THEIRS (theirs)" "$ADD_theirs" "$DEL_theirs" "${WAVE_theirs:--}"
  row "ours (smartnic mode sriov), the network" "$ADD_ours" "$DEL_ours" "${WAVE_ours:--}"
  row "ours, the attachment only" "$ADD_attach" "$DEL_attach" "${WAVE_attach:--}"
  row "ip doing the network's kernel work" "$ADD_floorvf" "$DEL_floorvf" "-"
  row "ip doing the attachment's kernel work" "$ADD_floor" "$DEL_floor" "-"
  row "one ip process doing nothing" "$ADD_exec" "$DEL_exec" "-"
  echo "# (ip: 2 processes per ADD and 1 per DEL, one more each for the VF settings; for a rate ip first reads the PF's VF table)"
  echo "# ours/theirs: ADD $r_add (target <= 0.30: $(verdict "$r_add" 0.30)), DEL $r_del (target <= 0.90: $(verdict "$r_del" 0.90)), wave $(ratio "${WAVE_ours:-0}" "${WAVE_theirs:-0}")"
  echo "# the same work (attachment only)/theirs: ADD $(ratio "$ADD_attach" "$ADD_theirs"), DEL $(ratio "$DEL_attach" "$DEL_theirs"), wave $(ratio "${WAVE_attach:-0}" "${WAVE_theirs:-0}")"
  echo "#   ours sets vlan, spoofchk, trust and max_tx_rate through the PF; $THEIRS $([ "$PEER_TYPE" = sriov ] && echo "does too" || echo "sets none of them")."
  echo "#"
fi

# shellcheck source=peers/cni.sh
. "$(dirname "${BASH_SOURCE[0]}")/peers/cni.sh"
# shellcheck source=peers/dp.sh
. "$(dirname "${BASH_SOURCE[0]}")/peers/dp.sh"
summary

#!/bin/bash
# suite: device-plugin - kubelet device plugin: pools of real VFs, vfio-pci Allocate, health on PF link down, kubelet restart
# needs: smartnic-device-plugin dp-kubelet-stub smartnicctl
#
# On the PF named by SMARTNIC_TEST_PF (the lab: the first igb): 4 VFs, VF 2 on vfio-pci, a
# config file written as the agent writes it (two pools: igb_vf = VFs 0-1 on the kernel driver,
# igb_dpdk = VF 2 on vfio-pci), smartnic-device-plugin started against dp-kubelet-stub (a
# kubelet stand-in; the lab has no kubelet). Checks: registration, ListAndWatch, Allocate with
# the VF's real /dev/vfio/<group>, PF link down -> its VFs Unhealthy within 1 s (the
# timestamps of the stub's ListAndWatch lines against `date`), a VF added to a pool by a config
# change without restart, re-registration after a kubelet restart, clean SIGTERM.
#
# Environment:
#   SMARTNIC_TEST_PF   PF netdev with 0 VFs (the lab sets its first igb); unset: skipped
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DP=$(lab_bin smartnic-device-plugin)
STUB=$(lab_bin dp-kubelet-stub)
driver_of() { local l; l=$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null) && echo "${l##*/}"; }
group_of() { local l; l=$(readlink "/sys/bus/pci/devices/$1/iommu_group" 2>/dev/null) && echo "${l##*/}"; }

if ! need_root; then
  skip "device-plugin suite" "needs root (it changes SR-IOV state)"
  summary
fi
if [ -z "${SMARTNIC_TEST_PF:-}" ]; then
  skip "device-plugin suite" "SMARTNIC_TEST_PF is not set (a PF with 0 VFs to use)"
  summary
fi
if ! have_jq; then
  fail "jq (or gojq) is installed"
  summary
fi
for b in DP STUB; do
  [ -n "${!b}" ] || { fail "binary found: $b" "build it (hw-tests/run builds what '# needs:' names)"; summary; }
done

PF=$SMARTNIC_TEST_PF
PFDEV=/sys/class/net/$PF/device
PFBDF=$(readlink -f "$PFDEV"); PFBDF=${PFBDF##*/}
if [ "$(cat "$PFDEV/sriov_numvfs")" != 0 ]; then
  fail "$PF starts with 0 VFs" "it has $(cat "$PFDEV/sriov_numvfs")"
  summary
fi
section "VFs on $PF ($PFBDF)"
on_exit "echo 0 > $PFDEV/sriov_numvfs"
if [ "$(cat "/sys/class/net/$PF/operstate")" != up ]; then
  ip link set "$PF" up && on_exit "ip link set $PF down"
fi
wait_for 10 grep -qx 1 "/sys/class/net/$PF/carrier" || note "$PF has no carrier yet"
ctl_ok "sriov numvfs --pf $PF 4" sriov numvfs --pf "$PF" 4 || summary
VF=()
for i in 0 1 2 3; do
  wait_for 30 test -e "$PFDEV/virtfn$i/driver"
  l=$(readlink -f "$PFDEV/virtfn$i"); VF[$i]=${l##*/}
done
note "VFs ${VF[*]}"
GROUP=$(group_of "${VF[2]}")
VFIO=0
if [ -z "$GROUP" ]; then
  skip "VF 2 to vfio-pci" "no IOMMU group for ${VF[2]} (no IOMMU; the lab has one unless --no-iommu)"
elif ! modprobe vfio-pci 2>/dev/null && [ ! -d /sys/bus/pci/drivers/vfio-pci ]; then
  fail "vfio-pci module loads"
elif ctl_ok "sriov driver --pci ${VF[2]} vfio-pci" sriov driver --pci "${VF[2]}" vfio-pci; then
  VFIO=1
fi

# --- the config file, as the agent writes it (crds DevicePluginConfig)
D=$T_TMP/dp
mkdir -p "$D/plugins"
CFG=$D/device-plugin.json
write_config() {  # write_config VF-RANGES-JSON-FOR-igb_vf
  cat >"$D/cfg.tmp" <<EOF
{"resourceList": [
  {"resourceName": "igb_dpdk", "resourcePrefix": "smartnic.io", "deviceType": "vfio-pci",
   "isRdma": false, "excludeTopology": false,
   "selectors": [{"pfs": [{"pciAddress": "$PFBDF", "name": "$PF", "vfs": [{"first": 2, "last": 2}]}]}]},
  {"resourceName": "igb_vf", "resourcePrefix": "smartnic.io", "deviceType": "netdevice",
   "isRdma": false, "excludeTopology": false,
   "selectors": [{"pfs": [{"pciAddress": "$PFBDF", "name": "$PF", "vfs": $1}]}]}
]}
EOF
  mv "$D/cfg.tmp" "$CFG"
}
write_config '[{"first": 0, "last": 1}]'

# --- kubelet stand-in, then the plugin
KLOG=$D/kubelet.log
start_stub() {
  "$STUB" --plugin-dir "$D/plugins" kubelet >>"$KLOG" 2>&1 &
  STUB_PID=$!
}
start_stub
on_exit 'kill $STUB_PID'
wait_for 10 test -S "$D/plugins/kubelet.sock" || fail "dp-kubelet-stub serves kubelet.sock" "$(cat "$KLOG")"
"$DP" --config "$CFG" --plugin-dir "$D/plugins" --devinfo-dir "$D/devinfo" --log-format json 2>"$D/dp.log" &
DP_PID=$!
on_exit "kill $DP_PID"

# registered RESOURCE [AFTER-LINE]: a register event for RESOURCE after line AFTER-LINE of the log
registered() { tail -n +"$((${2:-0} + 1))" "$KLOG" | jq -e --arg r "$1" 'select(.event == "register" and .resource == $r)' >/dev/null 2>&1; }
# last_list RESOURCE: the last ListAndWatch line of RESOURCE
last_list() { jq -c --arg r "$1" 'select(.event == "list" and .resource == $r)' "$KLOG" 2>/dev/null | tail -n 1; }
health_of() { jq -r --arg id "$2" '.devices[] | select(.id == $id) | .health' <<<"$(last_list "$1")"; }
ids_of() { jq -r '[.devices[].id] | join(" ")' <<<"$(last_list "$1")"; }
all_health() { jq -r '[.devices[].health] | unique | join(",")' <<<"$(last_list "$1")"; }
listed() { grep -q '"event":"list"' "$KLOG"; }
health_is() { [ "$(health_of "$1" "$2")" = "$3" ]; }
all_health_is() { [ "$(all_health "$1")" = "$2" ]; }
ids_are() { [ "$(ids_of "$1")" = "$2" ]; }
# unhealthy_since LINE: a ListAndWatch line of igb_vf after LINE with every device Unhealthy
unhealthy_line() {
  tail -n +"$(($1 + 1))" "$KLOG" \
    | jq -c 'select(.event == "list" and .resource == "smartnic.io/igb_vf" and ([.devices[].health] | unique) == ["Unhealthy"])' 2>/dev/null \
    | head -n 1
}
unhealthy_since() { [ -n "$(unhealthy_line "$1")" ]; }

section "registration and ListAndWatch"
wait_for 10 grep -q 'following link events and uevents' "$D/dp.log"
expect_match "the plugin follows the kernel's link events and uevents (not polling)" \
  "$(grep -E 'following link events|cannot follow kernel events' "$D/dp.log" | head -n 1)" "following link events and uevents"
if wait_for 30 registered smartnic.io/igb_vf && wait_for 10 registered smartnic.io/igb_dpdk; then
  ok "both pools registered with the kubelet"
  reg=$(jq -c 'select(.event == "register" and .resource == "smartnic.io/igb_vf")' "$KLOG" | head -n 1)
  expect_eq "registration: version, endpoint, preferred allocation" \
    "$(jq -r '"\(.version) \(.endpoint) \(.preferred)"' <<<"$reg")" "v1beta1 smartnic.io_igb_vf.sock true"
else
  fail "both pools registered with the kubelet" "$(cat "$KLOG")"$'\n'"$(tail -n 20 "$D/dp.log")"
  summary
fi
wait_for 10 listed
expect_eq "igb_vf lists VFs 0 and 1" "$(ids_of smartnic.io/igb_vf)" "${VF[0]} ${VF[1]}"
expect_eq "igb_vf: VF 0 healthy on igbvf" "$(health_of smartnic.io/igb_vf "${VF[0]}")" Healthy
if [ "$VFIO" = 1 ]; then
  wait_for 5 health_is smartnic.io/igb_dpdk "${VF[2]}" Healthy
  expect_eq "igb_dpdk: VF 2 on vfio-pci is healthy" "$(health_of smartnic.io/igb_dpdk "${VF[2]}")" Healthy
fi

section "Allocate"
if [ "$VFIO" = 1 ]; then
  if out=$("$STUB" --plugin-dir "$D/plugins" allocate --endpoint smartnic.io_igb_dpdk.sock "${VF[2]}" 2>&1); then
    ok "Allocate VF 2 (vfio-pci)"
    expect_eq "Allocate: /dev/vfio/vfio and the VF's real group node, rw" \
      "$(jq -r '[.containers[0].devices[] | "\(.hostPath)=\(.containerPath):\(.permissions)"] | sort | join(" ")' <<<"$out")" \
      "/dev/vfio/$GROUP=/dev/vfio/$GROUP:rw /dev/vfio/vfio=/dev/vfio/vfio:rw"
    check "the group node /dev/vfio/$GROUP exists on the host" test -c "/dev/vfio/$GROUP"
    expect_eq "Allocate: PCIDEVICE_SMARTNIC_IO_IGB_DPDK" "$(jq -r '.containers[0].envs.PCIDEVICE_SMARTNIC_IO_IGB_DPDK' <<<"$out")" "${VF[2]}"
    expect_eq "Allocate: _INFO names the vfio group node" \
      "$(jq -r --arg id "${VF[2]}" '.containers[0].envs.PCIDEVICE_SMARTNIC_IO_IGB_DPDK_INFO | fromjson | .[$id].vfio["dev-mount"]' <<<"$out")" "/dev/vfio/$GROUP"
    f="$D/devinfo/smartnic.io-igb_dpdk-${VF[2]}-device.json"
    expect_eq "device-info file for VF 2" "$(jq -r '"\(.type) \(.pci["pci-address"]) \(.pci["pf-pci-address"])"' "$f" 2>&1)" "pci ${VF[2]} $PFBDF"
  else
    fail "Allocate VF 2 (vfio-pci)" "$out"
  fi
fi
if out=$("$STUB" --plugin-dir "$D/plugins" allocate --endpoint smartnic.io_igb_vf.sock "${VF[0]}" 2>&1); then
  ok "Allocate VF 0 (kernel netdev)"
  expect_eq "Allocate VF 0: env, no device nodes" \
    "$(jq -r '"\(.containers[0].envs.PCIDEVICE_SMARTNIC_IO_IGB_VF) \(.containers[0].devices | length)"' <<<"$out")" "${VF[0]} 0"
else
  fail "Allocate VF 0 (kernel netdev)" "$out"
fi
if out=$("$STUB" --plugin-dir "$D/plugins" allocate --endpoint smartnic.io_igb_vf.sock "${VF[3]}" 2>&1); then
  fail "Allocate of a VF outside the pool is refused" "$out"
else
  expect_match "Allocate of a VF outside the pool is refused, naming it" "$out" "${VF[3]} is not in the pool"
fi

section "health: PF link down"
# Times: t0 before `ip link set down`, t1 when it returns (the kernel has closed the PF: IFF_UP
# clear, RTM_NEWLINK sent), t2 the stub's timestamp of the ListAndWatch update with every VF
# Unhealthy. The kernel may finish the change only when the command returns (the close runs
# under RTNL and under TCG igb can take seconds to close), so the bound is on t2 - t1 (< 1 s;
# negative when the update came before the command returned); t2 - t0 is reported too.
lines=$(wc -l <"$KLOG")
t0=$(now_ms)
ip link set "$PF" down
t1=$(now_ms)
note "ip link set $PF down took $((t1 - t0)) ms"
# Idle while the plugin reacts: under emulation a polling jq loop here would take the CPU the
# plugin needs (the lab's vCPUs share one host thread); the stub timestamps its lines itself.
sleep 3
if wait_for 10 unhealthy_since "$lines"; then
  line=$(unhealthy_line "$lines")
  t2=$(jq -r .t <<<"$line")
  note "PF link down -> VFs Unhealthy in ListAndWatch: $((t2 - t0)) ms after the command started, $((t2 - t1)) ms after it returned (negative: before)"
  if [ "$((t2 - t1))" -lt 1000 ]; then ok "PF $PF down: both VFs Unhealthy within 1 s ($((t2 - t0)) ms from the command, $((t2 - t1)) ms from its return)"
  else fail "PF $PF down: both VFs Unhealthy within 1 s of the change" "$((t2 - t1)) ms; $line"; fi
  expect_match "the plugin logs why" "$(grep 'health changed' "$D/dp.log" | tail -n 1)" "\($PF\) is administratively down|\($PF\) link is"
  note "plugin: $(grep 'health changed' "$D/dp.log" | tail -n 1 | jq -r '"\(.timestamp) \(.device) \(.health)"' 2>/dev/null)"
else
  fail "PF $PF down: VFs turn Unhealthy" "$(tail -n 5 "$KLOG")"
fi
ip link set "$PF" up
if wait_for 20 all_health_is smartnic.io/igb_vf Healthy; then
  ok "PF $PF up again: VFs Healthy"
else
  fail "PF $PF up again: VFs Healthy" "$(all_health smartnic.io/igb_vf); operstate $(cat /sys/class/net/"$PF"/operstate)"
fi

section "configuration change without restart"
write_config '[{"first": 0, "last": 1}, {"first": 3, "last": 3}]'
if wait_for 10 ids_are smartnic.io/igb_vf "${VF[0]} ${VF[1]} ${VF[3]}"; then
  ok "VF 3 joins igb_vf on a config change, same process"
else
  fail "VF 3 joins igb_vf on a config change" "$(ids_of smartnic.io/igb_vf)"
fi
echo '{"resourceList": [{"resourceName": "igb_vf"}]}' >"$D/cfg.tmp" && mv "$D/cfg.tmp" "$CFG"
wait_for 5 grep -q 'configuration refused' "$D/dp.log"
expect_match "a bad config is refused, naming the field" "$(grep 'configuration refused' "$D/dp.log" | tail -n 1)" "resourceList\[0\]"
check "the pools keep serving after a bad config" test -S "$D/plugins/smartnic.io_igb_vf.sock"
check "the plugin process is still running" kill -0 "$DP_PID"

section "kubelet restart"
lines=$(wc -l <"$KLOG")
kill "$STUB_PID"; wait "$STUB_PID" 2>/dev/null
rm -f "$D/plugins/"*     # what a starting kubelet does to the directory
start_stub
if wait_for 10 registered smartnic.io/igb_vf "$lines" && wait_for 5 registered smartnic.io/igb_dpdk "$lines"; then
  ok "both pools re-registered after the kubelet restart"
else
  fail "both pools re-registered after the kubelet restart" "$(tail -n 5 "$KLOG")"$'\n'"$(tail -n 5 "$D/dp.log")"
fi
check "the plugin sockets are back" test -S "$D/plugins/smartnic.io_igb_vf.sock"

section "SIGTERM"
kill -TERM "$DP_PID"
if wait_for 10 sh -c "! kill -0 $DP_PID 2>/dev/null"; then
  wait "$DP_PID"; rc=$?
  expect_eq "exit status after SIGTERM" "$rc" 0
  check "sockets removed" sh -c "! ls $D/plugins/smartnic.io_* 2>/dev/null | grep -q ."
  check "device-info files removed" sh -c "! ls $D/devinfo/*.json 2>/dev/null | grep -q ."
else
  fail "the plugin stops on SIGTERM"
fi
summary

#!/bin/bash
# suite: rdma - RDMA isolation in the smartnic CNI with soft-RoCE (rdma_rxe) on an igb VF: the kernel's netns mode read over RDMA netlink, the VF's RDMA device found by its netdev, the move into the pod
# needs: smartnic
#
#   A soft-RoCE device (`rdma link add rxe0 type rxe netdev <VF netdev>`) stands in for a VF's
#   RDMA device; it is no PCI child of the VF, so the plugin finds it by the VF's netdev. The
#   node's device-plugin file says rdmaExclusive (what the agent writes for rdmaMode: exclusive).
#   shared     the kernel in shared mode: ADD is refused, naming the device and the mode, and
#              leaves the VF as it was.
#   exclusive  `rdma system set netns exclusive`, then ADD: the plugin moves rxe0 into the pod
#              over RDMA netlink. What the kernel does with it is reported as seen:
#              - rxe in kernels before the driver had disassociate_ucontext refuses any netns
#                change (EOPNOTSUPP): ADD fails saying so, and everything is undone;
#              - where it moves, rxe unregisters the device as soon as its netdev leaves the
#                host (the VF moves right after): ADD succeeds and rxe0 is gone from the host.
#              A ConnectX VF's RDMA device stays with its PCI function and lives on in the pod:
#              that cannot be run here (no emulated RDMA NIC).
# Environment: SMARTNIC_TEST_PF (the lab sets its first igb PF).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SMARTNIC=${SMARTNIC:-$(lab_bin smartnic)}
if ! need_root; then
  skip "rdma suite" "needs root"
  summary
fi
if [ -z "${SMARTNIC_TEST_PF:-}" ]; then
  skip "rdma suite" "SMARTNIC_TEST_PF is not set (no SR-IOV PF)"
  summary
fi
if [ -z "$SMARTNIC" ] || ! have_jq; then
  fail "smartnic and jq are available" "smartnic='$SMARTNIC'"
  summary
fi
if ! command -v rdma >/dev/null; then
  fail "the rdma tool (iproute2) is installed"
  summary
fi
# rxe checksums with the kernel's "crc32" shash (crc32_generic): without it no rxe device can
# be made ("No such file or directory")
if ! modprobe -a rdma_rxe crc32_generic 2>"$T_TMP/modprobe.err"; then
  skip "rdma suite" "this kernel has no rdma_rxe: $(cat "$T_TMP/modprobe.err")"
  summary
fi

PF=$SMARTNIC_TEST_PF
DEV=/sys/class/net/$PF/device
export SMARTNIC_CNI_STATE_DIR=$T_TMP/cni-state
on_exit "echo 0 > $DEV/sriov_numvfs"
echo 0 >"$DEV/sriov_numvfs"
echo 1 >"$DEV/sriov_numvfs"
ip link set "$PF" up
if ! wait_for 20 test -e "$DEV/virtfn0/net"; then
  fail "a VF with a netdev on $PF" "$(ls "$DEV/virtfn0/" 2>&1)"
  summary
fi
VF=$(basename "$(readlink -f "$DEV/virtfn0")")
NETDEV=$(ls "$DEV/virtfn0/net")
ip link set "$NETDEV" up
on_exit "rdma link delete rxe0"
if rdma link add rxe0 type rxe netdev "$NETDEV" 2>"$T_TMP/rxe.err"; then
  ok "rxe0 on $NETDEV ($VF)"
else
  fail "rxe0 on $NETDEV ($VF)" "$(cat "$T_TMP/rxe.err")"
  summary
fi
note "sysfs: rxe0 port 1 netdev $(cat /sys/class/infiniband/rxe0/ports/1/gid_attrs/ndevs/0 2>&1); $VF/infiniband: $(ls "/sys/bus/pci/devices/$VF/infiniband" 2>&1)"
printf '{"resourceList":[{"resourceName":"lab","resourcePrefix":"smartnic.io","deviceType":"netdevice","isRdma":true,"selectors":[{"pfs":[{"pciAddress":"%s"}]}]}],"rdmaExclusive":true}' \
  "$(basename "$(readlink -f "$DEV")")" >"$T_TMP/device-plugin.json"
export SMARTNIC_CNI_READY_FILE=$T_TMP/device-plugin.json
CONF=$(printf '{"cniVersion":"1.1.0","name":"labrdma","type":"smartnic","mode":"sriov","deviceID":"%s","ipam":{"type":"static","addresses":[{"address":"10.59.0.1/24"}]}}' "$VF")
vf_table() { ip -j link show "$PF" | jq -c '[.[0].vfinfo_list[]? | {vf, address, spoofchk, trust, link_state}]'; }
BEFORE=$(vf_table)

section "kernel in shared mode"
if rdma system show netns | grep -q 'netns exclusive'; then
  rdma system set netns shared
fi
expect_match "the kernel starts shared" "$(rdma system show netns)" 'netns shared'
ip netns add rdmapod && on_exit "ip netns del rdmapod"
cni ADD r1 /run/netns/rdmapod net1 "$CONF"
if [ "$CNI_RC" != 0 ]; then ok "ADD is refused while the kernel is shared"; else fail "ADD is refused while the kernel is shared" "$(cni_diag)"; fi
expect_match "the error names the device, the modes and the fix" "$CNI_OUT" \
  "RDMA device rxe0.*rdmaMode is exclusive.*netns mode is shared.*rdma system set netns exclusive"
check "$NETDEV is still in the host" ip link show "$NETDEV"
check "rxe0 is still in the host" rdma dev show rxe0
expect_eq "the VF table is as it was" "$(vf_table)" "$BEFORE"

section "kernel in exclusive mode"
ip netns del rdmapod
# the kernel changes the mode only while no other network namespace exists
if rdma system set netns exclusive 2>"$T_TMP/mode.err"; then
  ok "rdma system set netns exclusive"
else
  fail "rdma system set netns exclusive" "$(cat "$T_TMP/mode.err"; ip netns list)"
  summary
fi
on_exit "rdma system set netns shared"
ip netns add rdmapod
cni ADD r2 /run/netns/rdmapod net1 "$CONF"
note "ADD: exit $CNI_RC: $(printf '%s' "$CNI_OUT" | jq -r '.msg // empty' 2>/dev/null) $(tail -n 3 "$T_TMP/cni.err")"
if [ "$CNI_RC" != 0 ] && [[ "$CNI_OUT" == *"cannot move RDMA device rxe0 into the pod"*"Operation not supported"* ]]; then
  # the request reached the driver check: the device index and the namespace fd were valid
  skip "rxe0 moves into the pod" "this kernel's rxe cannot change network namespace (EOPNOTSUPP: no disassociate_ucontext); the plugin said so and undid the ADD"
  check "$NETDEV is back in the host" ip link show "$NETDEV"
  check "rxe0 is in the host" rdma dev show rxe0
  expect_eq "the VF table is as it was" "$(vf_table)" "$BEFORE"
  cni DEL r2 /run/netns/rdmapod net1 "$CONF"
  if [ "$CNI_RC" = 0 ]; then ok "DEL after the refused ADD"; else fail "DEL after the refused ADD" "$(cni_diag)"; fi
elif [ "$CNI_RC" = 0 ]; then
  ok "ADD moved rxe0 and the VF into the pod"
  check "rxe0 left the host" sh -c "! rdma dev show rxe0"
  note "in the pod: $(ip netns exec rdmapod rdma dev 2>&1 | tr '\n' ' ')"
  cni DEL r2 /run/netns/rdmapod net1 "$CONF"
  if [ "$CNI_RC" = 0 ]; then ok "DEL"; else fail "DEL" "$(cni_diag)"; fi
  check "$NETDEV is back in the host" ip link show "$NETDEV"
  expect_eq "the VF table is as it was" "$(vf_table)" "$BEFORE"
else
  fail "ADD in exclusive mode" "$(cni_diag)"
fi

summary

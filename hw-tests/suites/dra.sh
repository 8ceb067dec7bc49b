#!/bin/bash
# suite: dra - Dynamic Resource Allocation on the real node: smartnic-dra publishes the VFs as ResourceSlices, the scheduler allocates a claim by attribute, the kubelet prepares it, smartnic attaches it
# needs-cluster
#
# The node as in the cluster suite (lib-cluster.sh: kubelet, containerd, Multus in the guest, the
# control plane with kube-scheduler and kube-controller-manager on the host), the project installed
# by `kubectl apply -k deploy` (smartnic-dra runs from its DaemonSet like the other components).
# Then, each a numbered section:
#   1 slices      NicPolicies with `allocation: dra` on both PFs: a ResourceSlice of driver
#                 smartnic.io for the node lists every VF with the attributes users select on;
#                 the operator rendered the pool's DeviceClass; the device plugin does not
#                 advertise the pool
#   2 claim       a NicNetwork on the pool and two pods whose ResourceClaimTemplate selects VFs of
#                 the first PF by attribute (pfName): the scheduler allocates, kubelet prepares
#                 (prepared-claim record, CDI spec), smartnic attaches the claimed VF as net1 and
#                 the pods ping each other
#   3 unprepare   a pod deleted: its claim unprepared (record and CDI spec gone), the VF back in
#                 the host under its name
#   4 health      the second PF's link down: its VFs leave the slice (time measured), back when up
#   5 uninstall   `kubectl delete -k deploy`: the node as before the install
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUITE_NAME=dra
# shellcheck source=lib-cluster.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-cluster.sh"
NS=lab-d POOL=lab_dra DRIVER=smartnic.io
PREPARED=/var/lib/smartnic/dra/claims

node_up
printf '{"masters":[]}\n' >/etc/smartnic/cni-allow-list.json
section "install: kustomize"
install_smartnic kustomize

# slice_devices: the node's devices published by smartnic-dra, as one JSON array of
# {name, pool, attributes, capacity}.
slice_devices() {
  kj get resourceslices --field-selector "spec.nodeName=$NODE,spec.driver=$DRIVER" 2>/dev/null |
    jq -c '[.items[] | .spec.pool.name as $p | .spec.devices[]? | {name, pool: $p, attributes, capacity}]'
}
ndev() { slice_devices | jq 'length'; }
ndev_is() { [ "$(ndev)" = "$1" ]; }

# ------------------------------------------------------------------ 1 slices
section "1 NicPolicies with allocation: dra; ResourceSlices, DeviceClass"
k create namespace "$NS" >/dev/null 2>&1
wait_for 60 kubectl -n "$NS" get serviceaccount default || fail "namespace $NS has its default ServiceAccount"
policy() { # NAME PF NUMVFS
  k apply --server-side --field-manager hw-tests -f - >/dev/null <<EOF
apiVersion: smartnic.io/v1alpha1
kind: NicPolicy
metadata: {name: $1}
spec:
  nodeSelector: {matchLabels: {smartnic.io/lab: "true"}}
  nicSelector: {vendor: "8086", pfNames: [$2]}
  numVfs: $3
  deviceType: netdevice
  resourceName: $POOL
  allocation: dra
  networkNamespaces: [$NS]
EOF
}
T1=$(now_ms)
policy dra-1 "$PF1" 4
policy dra-2 "$PF2" 2
if wait_for 240 sh -c "[ \"\$(cat /sys/class/net/$PF1/device/sriov_numvfs) \$(cat /sys/class/net/$PF2/device/sriov_numvfs)\" = '4 2' ]"; then
  ok "the agent created 4 VFs on $PF1 and 2 on $PF2 ($(( $(now_ms) - T1 )) ms after the policies)"
else
  fail "the agent created the VFs" "$(klog smartnic-agent)"
  summary
fi
if wait_for 120 ndev_is 6; then
  ok "ResourceSlices of driver $DRIVER list the 6 VFs of $NODE ($(( $(now_ms) - T1 )) ms after the policies)"
else
  fail "ResourceSlices list the 6 VFs" "$(slice_devices | head -c 600)"$'\n'"$(klog smartnic-dra)"
  summary
fi
devs=$(slice_devices)
echo "$devs" | jq -c '.[0]' | sed 's/^/# a device: /' | cut -c1-900
vf0=$(readlink -f "/sys/class/net/$PF1/device/virtfn0")
vf0=${vf0##*/}
d0=$(jq -c --arg a "$vf0" '.[] | select(.attributes.pciAddress.string == $a)' <<<"$devs")
# (no eswitchMode: the 82576 has no devlink eswitch, so the driver publishes none)
expect_eq "device of $vf0: pfName, pfPciAddress, vfIndex, vendor, resourceName, linkType, eswitchMode, rdma" \
  "$(jq -c '[.attributes.pfName.string, .attributes.pfPciAddress.string, .attributes.vfIndex.int, .attributes.vendor.string, .attributes.resourceName.string, .attributes.linkType.string, .attributes.eswitchMode.string, .attributes.rdma.bool]' <<<"$d0")" \
  "$(jq -nc --arg pf "$PF1" --arg pa "$(basename "$(readlink -f "/sys/class/net/$PF1/device")")" --arg pool "$POOL" '[$pf, $pa, 0, "8086", $pool, "ether", null, false]')"
root=$(readlink -f "/sys/bus/pci/devices/$vf0" | cut -d/ -f4)
expect_eq "device of $vf0: resource.kubernetes.io/pcieRoot is its PCI root ($root)" \
  "$(jq -r '.attributes["resource.kubernetes.io/pcieRoot"].string' <<<"$d0")" "$root"
expect_eq "device of $vf0: the VF's device id (igbvf 10ca)" "$(jq -r '.attributes.device.string' <<<"$d0")" 10ca
CLASS=$(kj get deviceclasses 2>/dev/null | jq -r --arg p "$POOL" '[.items[] | select(.spec.selectors[]?.cel.expression | contains("\"" + $p + "\""))][0].metadata.name // empty')
if [ -n "$CLASS" ]; then
  ok "the operator rendered DeviceClass $CLASS for $POOL"
else
  fail "the operator rendered a DeviceClass for $POOL" "$(k get deviceclasses 2>&1)"
  summary
fi
expect_eq "the device plugin does not advertise the DRA-only pool" \
  "$(kj get node "$NODE" | jq -r --arg r "smartnic.io/$POOL" '.status.allocatable[$r] // "none"')" none

# ------------------------------------------------------------------ 2 claim
section "2 two pods claim a VF of $PF1 by attribute; smartnic attaches it; ping"
k apply --server-side --field-manager hw-tests -f - >/dev/null <<EOF
apiVersion: smartnic.io/v1alpha1
kind: NicNetwork
metadata: {name: dradata, namespace: $NS}
spec:
  mode: sriov
  resourceName: $POOL
  vlan: 200
  ipam:
    type: host-local
    ranges: [[{subnet: 10.110.0.0/24}]]
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: vf-on-pf1, namespace: $NS}
spec:
  spec:
    devices:
      requests:
        - name: vf
          exactly:
            deviceClassName: $CLASS
            selectors:
              - cel:
                  expression: device.attributes["smartnic.io"].pfName == "$PF1"
EOF
wait_for 60 kubectl -n "$NS" get net-attach-def dradata || fail "the operator rendered NAD $NS/dradata" "$(k -n "$NS" get nicnetwork dradata -o jsonpath='{.status}' 2>&1)"
drapod() { # NAME
  k apply --server-side --field-manager hw-tests -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: $NS
  annotations: {k8s.v1.cni.cncf.io/networks: dradata}
spec:
  terminationGracePeriodSeconds: 1
  resourceClaims:
    - {name: vf, resourceClaimTemplateName: vf-on-pf1}
  containers:
    - name: app
      image: smartnic.local/busybox:1.35
      imagePullPolicy: Never
      command: [sleep, "3600"]
      resources:
        claims: [{name: vf}]
EOF
}
# pod_vf POD: the PCI address of the device behind the pod's net1, as the pod's own sysfs shows it
# (Multus v4.2 passes no device-info path for a claim from a template: network-status names no device).
pod_vf() { basename "$(k -n "$NS" exec "$1" -- readlink /sys/class/net/net1/device 2>/dev/null)" 2>/dev/null; }
running() { for p in "$@"; do [ "$(pod_phase "$p" "$NS")" = Running ] || return 1; done; }
net1_ip() { k -n "$NS" exec "$1" -- ip -4 -o addr show dev net1 2>/dev/null | awk '{ split($4, a, "/"); print a[1] }'; }
T2=$(now_ms)
drapod dra-a
drapod dra-b
if wait_for 300 running dra-a dra-b; then
  ok "pods dra-a and dra-b Running ($(( $(now_ms) - T2 )) ms; scheduled, claims allocated and prepared)"
else
  fail "pods dra-a and dra-b Running" "$(k -n "$NS" describe pod dra-a 2>&1 | tail -n 12)"$'\n'"$(klog smartnic-dra)"
  summary
fi
claim_of() { k -n "$NS" get pod "$1" -o jsonpath='{.status.resourceClaimStatuses[0].resourceClaimName}'; }
for p in dra-a dra-b; do
  c=$(claim_of "$p")
  cj=$(kj -n "$NS" get resourceclaim "$c")
  dev=$(jq -r '.status.allocation.devices.results[0].device' <<<"$cj")
  uid=$(jq -r '.metadata.uid' <<<"$cj")
  pci=$(jq -r --arg d "$dev" '.[] | select(.name == $d) | .attributes.pciAddress.string' <<<"$devs")
  st=$(k -n "$NS" get pod "$p" -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}')
  got=$(pod_vf "$p")
  phys=$(basename "$(readlink -f "/sys/bus/pci/devices/$pci/physfn/net/"* 2>/dev/null)")
  if [ -n "$pci" ] && [ "$got" = "$pci" ] && [ "$phys" = "$PF1" ] \
     && jq -e '.[] | select(.name == "'$NS'/dradata" and .interface == "net1" and (.ips | length) == 1)' <<<"$st" >/dev/null 2>&1; then
    ok "$p: claim $c got $dev ($pci, a VF of $PF1); net1 is that VF, network-status names $NS/dradata with its IP"
  else
    fail "$p: the claimed VF of $PF1 is net1" "claim device '$dev' pci '$pci' (PF '$phys'), net1's device '$got', network-status: $st"
  fi
  if [ -f "$PREPARED/$uid.json" ] && ls /var/run/cdi/ 2>/dev/null | grep -q "$uid"; then
    ok "$p: prepared-claim record and CDI spec for claim $c"
  else
    fail "$p: prepared-claim record and CDI spec" "$(ls "$PREPARED" /var/run/cdi 2>&1)"
  fi
done
A_CLAIM=$(claim_of dra-a)
A_UID=$(k -n "$NS" get resourceclaim "$A_CLAIM" -o jsonpath='{.metadata.uid}')
A_PCI=$(pod_vf dra-a)
ip_b=$(net1_ip dra-b)
if [ -n "$ip_b" ] && k -n "$NS" exec dra-a -- ping -c 3 -W 2 "$ip_b" >/dev/null 2>&1; then
  ok "dra-a pings dra-b ($ip_b) over the claimed VFs (VLAN 200)"
else
  fail "dra-a pings dra-b over the claimed VFs" "ip_b=$ip_b; $(k -n "$NS" exec dra-a -- ip addr 2>&1 | tail -n 6)"
  vf_mailbox_diag "$PF1"
fi

# ------------------------------------------------------------------ 3 unprepare
section "3 dra-a deleted: claim unprepared, VF back"
k -n "$NS" delete pod dra-a --wait=true --timeout 120s >/dev/null 2>&1
if wait_for 120 sh -c "[ ! -e $PREPARED/$A_UID.json ] && ! ls /var/run/cdi/ 2>/dev/null | grep -q $A_UID"; then
  ok "claim $A_CLAIM unprepared: record and CDI spec gone"
else
  fail "claim $A_CLAIM unprepared" "$(ls "$PREPARED" /var/run/cdi 2>&1)"$'\n'"$(klog smartnic-dra)"
fi
if wait_for 60 sh -c "ls /sys/bus/pci/devices/$A_PCI/net/ 2>/dev/null | grep -q ."; then
  ok "VF $A_PCI is back in the host ($(ls "/sys/bus/pci/devices/$A_PCI/net/"))"
else
  fail "VF $A_PCI is back in the host" "$(ls "/sys/bus/pci/devices/$A_PCI/" 2>&1 | head -c 300)"
fi
if wait_for 60 sh -c "! kubectl -n $NS get resourceclaim $A_CLAIM"; then
  ok "the pod's claim $A_CLAIM deleted with it"
else
  fail "the pod's claim deleted with it" "$(k -n "$NS" get resourceclaims 2>&1)"
fi

# ------------------------------------------------------------------ 4 health
section "4 $PF2's link down: its VFs leave the slice; back when up"
ip link set "$PF2" up
wait_for 30 ndev_is 6
# One watch of the slices, each line stamped (ms) as it arrives: the number of the node's devices.
# shellcheck disable=SC2016
bg slice-watch bash -c 'kubectl get resourceslices -w -o json 2>/dev/null | jq --unbuffered -c "select(.spec.nodeName == \"$1\") | [.spec.devices // [] | length]" |
  while read -r v; do t=${EPOCHREALTIME/./}; echo "$((t / 1000)) $v"; done >"$2"' - "$NODE" "$W/slice.watch"
wait_for 30 test -s "$W/slice.watch"
ip link set "$PF2" down
td=$(now_ms)
if wait_for 30 ndev_is 4; then
  ms=$(awk -v t="$td" '$1 >= t && $2 == "[4]" { print $1 - t; exit }' "$W/slice.watch")
  echo "# TIMING dra-health-down ${ms:-?} ms (link down in the kernel -> the slice without $PF2's VFs, seen by a watch)"
  ok "$PF2's VFs left the slice ${ms:-?} ms after the link went down (goal below 1000)"
else
  fail "$PF2's VFs leave the slice when its link is down" "$(ndev) devices"$'\n'"$(klog smartnic-dra)"
fi
tu=$(now_ms)
ip link set "$PF2" up
if wait_for 60 ndev_is 6; then
  echo "# TIMING dra-health-up $(( $(now_ms) - tu )) ms (link up -> 6 devices, polled)"
  ok "$PF2's VFs back in the slice"
else
  fail "$PF2's VFs back in the slice" "$(ndev) devices"
fi
stop_bg slice-watch

# ------------------------------------------------------------------ 5 uninstall
section "5 uninstall: the node as before the install"
k -n "$NS" delete pods --all --wait=true --timeout 120s >/dev/null 2>&1
uninstall_smartnic kustomize
summary

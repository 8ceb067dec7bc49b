# shellcheck shell=bash
# 8.5 DRA driver: `smartnic-dra` under a token of the deploy's smartnic-dra ServiceAccount (its
# RBAC, nothing more) on a copy of examples/hosts/cx6dx-switchdev as Node dra-node, its sockets
# and files in a temporary directory, with one pool of the PF 0000:3b:00.0 (4 VFs) under
# `allocation: dra`:
#
#   - the node's ResourceSlices appear: driver smartnic.io, pool dra-node with resourceSliceCount
#     and generation, spec.nodeName, owned by the Node, one device per VF (pci-0000-3b-00-N) with
#     the attributes users select on (vendor, device, pciAddress, pfName, pfPciAddress, numaNode,
#     resource.kubernetes.io/pcieRoot, linkType, eswitchMode, rdma, vfIndex, resourceName,
#     deviceType)
#   - the PF's link goes down (operstate in the fixture): its VFs leave the slice, with a new
#     generation, within 1 s (measured); link up: they are back
#   - the scheduler allocates a claim (DeviceClass and request selecting by CEL on resourceName,
#     vfIndex and eswitchMode) from those slices; the kubelet's calls (dra-kubelet-stub: GetInfo,
#     NodePrepareResources twice, NodeUnprepareResources) answer with the VF's CDI device, write
#     the record naming the pod and the CDI spec, give the same answer again, and remove both
#   - the pool switched to `allocation: devicePlugin` in the applied file: the slices go
#   - the registration socket and the DRA socket exist while it runs and are gone after SIGTERM
#   - no request of it was forbidden
# shellcheck source=common.sh
. "$HW/api/common.sh"
# shellcheck source=lib-api.sh
. "$HW/api/lib-api.sh"

DRA_NODE=dra-node

dra_config() { # ALLOCATION
  cat <<EOF
{"resourceList": [{"resourceName": "cx6_dra", "resourcePrefix": "smartnic.io",
  "deviceType": "netdevice", "allocation": "$1",
  "selectors": [{"pfs": [{"pciAddress": "0000:3b:00.0"}]}]}]}
EOF
}

# the node's slices, as one JSON list
dra_slices() {
  kubectl get resourceslices --field-selector "spec.nodeName=$DRA_NODE,spec.driver=smartnic.io" -o json
}

# dra_devices_are N: the node's slices list N devices in total
dra_devices_are() {
  [ "$(dra_slices | jq '[.items[].spec.devices // [] | length] | add // 0')" = "$1" ]
}

# dra_claim_flow DIR: the scheduler allocates a claim from the published slices; the kubelet's
# calls (dra-kubelet-stub) prepare and unprepare it
dra_claim_flow() {
  local dir=$1 stub out uid pod want reg
  stub=$(lab_bin dra-kubelet-stub)
  if [ -z "$stub" ]; then fail "dra-kubelet-stub is built" "cargo build -p dra --bins"; return; fi
  reg=$dir/plugins_registry/smartnic.io-reg.sock
  # a Node without kubelet has no allocatable pods: give it some, so the scheduler places a pod
  kubectl patch node "$DRA_NODE" --subresource status --type merge -p \
    '{"status":{"capacity":{"pods":"10","cpu":"2","memory":"2Gi"},"allocatable":{"pods":"10","cpu":"2","memory":"2Gi"}}}' >/dev/null
  if ! out=$(kubectl apply --server-side --field-manager hw-tests -f - 2>&1 <<EOF
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: dra-test-vf}
spec:
  selectors:
    - cel: {expression: 'device.driver == "smartnic.io" && device.attributes["smartnic.io"].resourceName == "cx6_dra"'}
---
apiVersion: v1
kind: Namespace
metadata: {name: dra-test}
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: vf, namespace: dra-test}
spec:
  devices:
    requests:
      - name: nic
        exactly:
          deviceClassName: dra-test-vf
          selectors:
            - cel: {expression: 'device.attributes["smartnic.io"].vfIndex == 2 && device.attributes["smartnic.io"].eswitchMode == "switchdev"'}
---
apiVersion: v1
kind: Pod
metadata: {name: dra-pod, namespace: dra-test}
spec:
  nodeSelector: {kubernetes.io/hostname: $DRA_NODE}
  tolerations: [{operator: Exists}]
  resourceClaims: [{name: nic, resourceClaimName: vf}]
  containers:
    - name: app
      image: app:test
      resources:
        claims: [{name: nic}]
EOF
  ); then
    fail "DeviceClass, ResourceClaim and Pod applied" "$out"
    return
  fi
  dra_allocated() {
    [ -n "$(kubectl -n dra-test get resourceclaim vf -o json | jq -r '.status.allocation.devices.results[0].device // empty')" ] \
      && [ -n "$(kubectl -n dra-test get pod dra-pod -o jsonpath='{.spec.nodeName}')" ]
  }
  if api_wait 60 dra_allocated; then
    out=$(kubectl -n dra-test get resourceclaim vf -o json | jq -c '.status.allocation.devices.results[0] | {driver, pool, device}')
    want='{"driver":"smartnic.io","pool":"'$DRA_NODE'","device":"pci-0000-3b-00-4"}'
    if [ "$out" = "$want" ]; then
      ok "the scheduler allocated VF 2 (CEL on resourceName, vfIndex, eswitchMode) from the slices in ${API_WAITED_MS} ms"
    else
      fail "the scheduler allocated VF 2 from the slices" "$out"
    fi
  else
    fail "the scheduler allocates the claim and binds the pod" "$(kubectl -n dra-test get resourceclaim vf -o json | jq -c .status)"$'\n'"$(kubectl -n dra-test get pod dra-pod -o json | jq -c .status)"
    kubectl delete namespace dra-test --wait=false >/dev/null
    kubectl delete deviceclass dra-test-vf >/dev/null
    return
  fi
  uid=$(kubectl -n dra-test get resourceclaim vf -o jsonpath='{.metadata.uid}')
  pod=$(kubectl -n dra-test get pod dra-pod -o jsonpath='{.metadata.uid}')
  out=$("$stub" "$reg" info 2>&1)
  want='{"type":"DRAPlugin","name":"smartnic.io","endpoint":"'$dir'/plugins/smartnic.io/dra.sock","supportedVersions":["v1.DRAPlugin"]}'
  if [ "$(jq -cS . <<<"$out" 2>/dev/null)" = "$(jq -cS . <<<"$want")" ]; then
    ok "registration: DRAPlugin smartnic.io, endpoint the DRA socket, v1.DRAPlugin"
  else
    fail "registration info" "$out"
  fi
  out=$("$stub" "$reg" prepare dra-test vf "$uid" 2>&1)
  want='{"'$uid'":{"devices":[{"cdiDeviceIds":["smartnic.io/vf=0000:3b:00.4"],"deviceName":"pci-0000-3b-00-4","poolName":"'$DRA_NODE'","requestNames":["nic"]}],"error":""}}'
  if [ "$(jq -cS . <<<"$out" 2>/dev/null)" = "$(jq -cS . <<<"$want")" ]; then
    ok "NodePrepareResources: the claim's VF as CDI device smartnic.io/vf=0000:3b:00.4"
  else
    fail "NodePrepareResources answers the claim's VF" "$out"$'\n'"$(tail -n 5 "$T_TMP/dra.log")"
  fi
  if jq -e --arg p "$pod" '.podUids == [$p] and .devices[0].pciAddress == "0000:3b:00.4" and .devices[0].resourceName == "cx6_dra"' \
      "$dir/claims/$uid.json" >/dev/null 2>&1 && [ -s "$dir/cdi/smartnic.io-claim-$uid.json" ]; then
    ok "prepared: the record names the pod (reservedFor) and the VF, the CDI spec exists"
  else
    fail "prepared: record and CDI spec" "$(cat "$dir/claims/$uid.json" 2>&1)"$'\n'"$(ls -l "$dir/cdi" 2>&1)"
  fi
  if [ "$("$stub" "$reg" prepare dra-test vf "$uid" 2>&1 | jq -cS . 2>&1)" = "$(jq -cS . <<<"$want")" ]; then
    ok "NodePrepareResources again: the same answer"
  else
    fail "NodePrepareResources again: the same answer"
  fi
  out=$("$stub" "$reg" unprepare dra-test vf "$uid" 2>&1)
  if [ "$out" = '{"'$uid'":{"error":""}}' ] && [ ! -e "$dir/claims/$uid.json" ] && [ ! -e "$dir/cdi/smartnic.io-claim-$uid.json" ]; then
    ok "NodeUnprepareResources: record and CDI spec removed"
  else
    fail "NodeUnprepareResources: record and CDI spec removed" "$out"$'\n'"$(ls -l "$dir/claims" "$dir/cdi" 2>&1)"
  fi
  kubectl delete namespace dra-test --wait=false >/dev/null
  kubectl delete deviceclass dra-test-vf >/dev/null
}

dra_test() {
  local out bin root dir kc pid before t0 ms gen new
  bin=$(lab_bin smartnic-dra)
  if [ -z "$bin" ]; then fail "smartnic-dra is built" "cargo build -p dra"; return; fi
  if ! out=$(api_ensure_installed 2>&1); then fail "deploy/ installed" "$out"; return; fi
  api_node "$DRA_NODE" || { fail "Node $DRA_NODE"; return; }
  dir=$T_TMP/dra
  root=$dir/host
  mkdir -p "$dir"
  cp -a "$REPO/examples/hosts/cx6dx-switchdev" "$root"
  dra_config dra >"$dir/device-plugin.json"
  kc=$dir/dra.kubeconfig
  if ! out=$(api_sa_kubeconfig "$kc" smartnic-dra 2>&1); then
    fail "TokenRequest for ServiceAccount smartnic-dra" "$out"
    return
  fi
  before=$(api_forbidden_count resourceslices resourceclaims nodes)
  RUST_LOG='' setsid "$bin" --node-name "$DRA_NODE" --kubeconfig "$kc" \
    --config "$dir/device-plugin.json" --sysfs-root "$root" --poll-interval-ms 50 \
    --registry-dir "$dir/plugins_registry" --plugin-dir "$dir/plugins/smartnic.io" \
    --cdi-dir "$dir/cdi" --prepared-dir "$dir/claims" --device-plugin-dir "$dir/device-plugins" \
    >"$T_TMP/dra.log" 2>&1 </dev/null &
  pid=$!
  on_exit "kill -KILL $pid 2>/dev/null; cp '$T_TMP/dra.log' \"\${SUITE_OUT:-/nonexistent}/\" 2>/dev/null"

  if api_wait 60 dra_devices_are 4; then
    ok "ResourceSlices of $DRA_NODE list its 4 VFs (${API_WAITED_MS} ms after start)"
  else
    fail "ResourceSlices of $DRA_NODE list its 4 VFs" "$(dra_slices | jq -c '.items[].spec' 2>&1)"$'\n'"$(tail -n 20 "$T_TMP/dra.log")"
    api_stop "$pid"
    return
  fi
  out=$(dra_slices | jq -c --arg n "$DRA_NODE" '
    .items as $s | $s[0] as $x | $x.spec.devices[] | select(.name == "pci-0000-3b-00-3") as $d |
    { one: ($s | length == 1),
      pool: ($x.spec.pool.name == $n and $x.spec.pool.resourceSliceCount == 1 and $x.spec.pool.generation >= 1),
      node: ($x.spec.nodeName == $n and $x.spec.driver == "smartnic.io"),
      owner: ($x.metadata.ownerReferences[0].kind == "Node" and $x.metadata.ownerReferences[0].name == $n),
      attrs: ($d.attributes | .vendor.string == "15b3" and .device.string == "101e"
        and .pciAddress.string == "0000:3b:00.3" and .pfPciAddress.string == "0000:3b:00.0"
        and .pfName.string == "ens1f0np0" and (.numaNode.int | type) == "number"
        and .["resource.kubernetes.io/pcieRoot"].string == "pci0000:3a"
        and .linkType.string == "ether" and .eswitchMode.string == "switchdev"
        and (.rdma.bool | type) == "boolean" and .vfIndex.int == 1
        and .resourceName.string == "cx6_dra" and .deviceType.string == "netdevice") }')
  if [ "$out" = '{"one":true,"pool":true,"node":true,"owner":true,"attrs":true}' ]; then
    ok "one slice: pool $DRA_NODE (count, generation), nodeName, owned by the Node; VF 1 with every attribute"
  else
    fail "slice shape and attributes" "$out"$'\n'"$(dra_slices | jq -c '.items[] | {metadata: .metadata.ownerReferences, spec: .spec}')"
  fi

  for s in "$dir/plugins_registry/smartnic.io-reg.sock" "$dir/plugins/smartnic.io/dra.sock"; do
    if [ -S "$s" ]; then ok "socket ${s#"$dir"/}"; else fail "socket ${s#"$dir"/}" "$(ls -lR "$dir" 2>&1 | head -20)"; fi
  done

  # a publish with nothing changed writes nothing (what the API server stores compares equal to
  # what it renders): a file in the checkpoint directory wakes the publisher
  gen=$(dra_slices | jq '.items[0].spec.pool.generation')
  mkdir -p "$dir/device-plugins" && touch "$dir/device-plugins/wake"
  sleep 1
  new=$(dra_slices | jq '.items[0].spec.pool.generation')
  if [ "$new" = "$gen" ]; then
    ok "an unchanged state publishes nothing (generation stays $gen)"
  else
    fail "an unchanged state publishes nothing" "generation $gen -> $new"
  fi
  t0=$(now_ms)
  echo down >"$root/sys/bus/pci/devices/0000:3b:00.0/net/ens1f0np0/operstate"
  if wait_for 100 dra_devices_are 0; then
    ms=$(($(now_ms) - t0))
    new=$(dra_slices | jq '.items[0].spec.pool.generation')
    if [ "$ms" -le 1000 ] && [ "$new" -gt "$gen" ]; then
      ok "PF link down: its VFs left the slice in $ms ms (<= 1000), generation $gen -> $new"
    else
      fail "PF link down: its VFs leave the slice within 1000 ms, with a new generation" "$ms ms, generation $gen -> $new"
    fi
  else
    fail "PF link down: its VFs leave the slice" "$(dra_slices | jq -c '.items[].spec.devices[].name')"
  fi
  echo up >"$root/sys/bus/pci/devices/0000:3b:00.0/net/ens1f0np0/operstate"
  if api_wait 30 dra_devices_are 4; then
    ok "PF link up: the 4 VFs are back (${API_WAITED_MS} ms)"
  else
    fail "PF link up: the 4 VFs are back" "$(tail -n 10 "$T_TMP/dra.log")"
  fi

  dra_claim_flow "$dir"

  dra_config devicePlugin >"$dir/device-plugin.json.tmp" && mv "$dir/device-plugin.json.tmp" "$dir/device-plugin.json"
  if api_wait 30 sh -c "[ \"\$(kubectl get resourceslices --field-selector spec.nodeName=$DRA_NODE -o name | wc -l)\" = 0 ]"; then
    ok "pool switched to allocation devicePlugin: the node's slices are deleted (${API_WAITED_MS} ms)"
  else
    fail "pool switched to allocation devicePlugin: the node's slices are deleted" "$(dra_slices | jq -c '.items[].metadata.name')"
  fi

  api_stop "$pid"
  if [ ! -e "$dir/plugins_registry/smartnic.io-reg.sock" ] && [ ! -e "$dir/plugins/smartnic.io/dra.sock" ]; then
    ok "SIGTERM: both sockets removed"
  else
    fail "SIGTERM: both sockets removed" "$(ls -lR "$dir/plugins_registry" "$dir/plugins" 2>&1)"
  fi
  out=$(($(api_forbidden_count resourceslices resourceclaims nodes) - before))
  if [ "$out" = 0 ]; then
    ok "no request of smartnic-dra was forbidden (the deploy's RBAC is enough)"
  else
    fail "no request of smartnic-dra was forbidden" "$out forbidden"$'\n'"$(grep -i forbidden "$T_TMP/dra.log" | head -5)"
  fi
  kubectl delete node "$DRA_NODE" --ignore-not-found >/dev/null
}

dra_test

# shellcheck shell=bash
# 9.3 DRA: the DeviceClass the operator renders and the ResourceClaimTemplates of
# deploy/examples/dra, evaluated by the real API server and allocated by the real scheduler.
# smartnic-operator (the deploy's ServiceAccount token) turns the example NicPolicy
# (`allocation: dra`) into DeviceClass cx6-dra.smartnic.io. A Node object (Ready, no kubelet)
# gets ResourceSlices of driver smartnic.io with our attribute names, standing for the devices
# smartnic-dra publishes, plus a GPU driver's slice and DeviceClass:
#
#   device            resource  pfName     numaNode  rdma   pcieRoot
#   pci-0000-3b-00-2  cx6_dra   ens1f0np0  0         false  pci0000:3a
#   pci-0000-af-00-2  cx6_dra   ens1f1np1  1         false  pci0000:ae
#   pci-0000-af-00-3  cx6_dra   ens1f1np1  1         false  pci0000:ae
#   pci-0000-5e-00-2  cx6_dra   ens2f0np0  (none)    true   pci0000:5d
#   pci-0000-af-01-2  other_vf  ens1f0np0  0         true   pci0000:ae   (another pool)
#   gpu-0, gpu-1      (gpu.example.com)                     pci0000:ae
#
# One pod per example template (vf-near-gpu through the example pod itself) must be allocated
# exactly the devices its selectors allow; a claim for a VF on NUMA 0 under the GPUs' PCIe root
# must stay unschedulable (only the other pool's VF would fit, which the DeviceClass excludes).
# Deleting the policy deletes the DeviceClass. Sourced by hw-tests/suites/api.sh.
# shellcheck source=lib-api.sh
. "$HW/api/lib-api.sh"

dra_test() {
  local d=$T_TMP/dra ns=smartnic-dra-test node=dra-node-1 out op class
  local ex=$REPO/deploy/examples/dra
  mkdir -p "$d"
  if ! out=$(api_ensure_installed 2>&1); then fail "deploy/ installed" "$out"; return; fi
  api_webhook_aside
  if ! kubectl api-resources --api-group resource.k8s.io -o name 2>/dev/null | grep -q '^resourceslices'; then
    fail "the API server serves resource.k8s.io (DRA)" "$(kubectl api-resources --api-group resource.k8s.io 2>&1)"
    return
  fi
  op=$(command -v smartnic-operator) || { fail "smartnic-operator is built"; return; }
  if ! out=$(api_sa_kubeconfig "$d/operator.kubeconfig" smartnic-operator 2>&1); then
    fail "TokenRequest for ServiceAccount smartnic-system/smartnic-operator" "$out"
    return
  fi
  kubectl -n "$API_NS" delete lease smartnic-operator-leader --ignore-not-found >/dev/null
  api_operator dra-operator "$d/operator.kubeconfig"
  local op_pid=$API_PID
  on_exit "kubectl delete namespace $ns --wait=false; kubectl delete node $node; kubectl delete resourceslice -l hw-tests=dra; kubectl delete deviceclass gpu.example.com; kubectl delete nicpolicy gpu-cx6-dra"

  # --- the operator's DeviceClass
  if ! out=$(kubectl apply --server-side -f "$ex/nicpolicy.yaml" 2>&1); then
    fail "the example NicPolicy (allocation: dra) is accepted by the CRD schema" "$out"
    return
  fi
  ok "the example NicPolicy (allocation: dra) is accepted by the CRD schema"
  class_expr() { kubectl get deviceclass cx6-dra.smartnic.io -o json 2>/dev/null | jq -r '.spec.selectors[0].cel.expression'; }
  has_class() { [ -n "$(class_expr)" ]; }
  if api_wait 60 has_class; then
    ok "the operator applies DeviceClass cx6-dra.smartnic.io (${API_WAITED_MS} ms)"
  else
    fail "the operator applies DeviceClass cx6-dra.smartnic.io" "$(tail -n 20 "$T_TMP/dra-operator.log")"
    return
  fi
  expect_eq "its selector: the driver and the exact resource name" "$(class_expr)" \
    'device.driver == "smartnic.io" && device.attributes["smartnic.io"].resourceName == "cx6_dra"'
  expect_eq "it is labelled as the operator's" \
    "$(kubectl get deviceclass cx6-dra.smartnic.io -o jsonpath='{.metadata.labels.app\.kubernetes\.io/managed-by}/{.metadata.labels.smartnic\.io/resource-name}')" \
    "smartnic-operator/cx6_dra"

  # --- a node with our devices and a GPU driver's
  api_node "$node" gpu=true
  kubectl patch node "$node" --subresource status --type merge -p '{"status": {
    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test",
      "lastHeartbeatTime": "'"$(date -u +%FT%TZ)"'", "lastTransitionTime": "'"$(date -u +%FT%TZ)"'"}],
    "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
    "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"}}}' >/dev/null
  vf() { # NAME RESOURCE PF NUMA RDMA ROOT
    local numa=""
    [ "$4" = - ] || numa='"numaNode": {"int": '"$4"'},'
    printf '{"name": "%s", "attributes": {"resourceName": {"string": "%s"}, "pfName": {"string": "%s"}, %s
      "rdma": {"bool": %s}, "linkType": {"string": "ether"}, "deviceType": {"string": "netdevice"},
      "resource.kubernetes.io/pcieRoot": {"string": "%s"}}}' "$1" "$2" "$3" "$numa" "$5" "$6"
  }
  if ! out=$(kubectl apply --server-side --field-manager hw-tests -f - 2>&1 <<EOF
{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
   "metadata": {"name": "$node-smartnic.io", "labels": {"hw-tests": "dra"}},
   "spec": {"driver": "smartnic.io", "nodeName": "$node",
     "pool": {"name": "$node", "generation": 1, "resourceSliceCount": 1},
     "devices": [
       $(vf pci-0000-3b-00-2 cx6_dra ens1f0np0 0 false pci0000:3a),
       $(vf pci-0000-af-00-2 cx6_dra ens1f1np1 1 false pci0000:ae),
       $(vf pci-0000-af-00-3 cx6_dra ens1f1np1 1 false pci0000:ae),
       $(vf pci-0000-5e-00-2 cx6_dra ens2f0np0 - true pci0000:5d),
       $(vf pci-0000-af-01-2 other_vf ens1f0np0 0 true pci0000:ae)]}},
  {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
   "metadata": {"name": "$node-gpu.example.com", "labels": {"hw-tests": "dra"}},
   "spec": {"driver": "gpu.example.com", "nodeName": "$node",
     "pool": {"name": "$node", "generation": 1, "resourceSliceCount": 1},
     "devices": [
       {"name": "gpu-0", "attributes": {"resource.kubernetes.io/pcieRoot": {"string": "pci0000:ae"}}},
       {"name": "gpu-1", "attributes": {"resource.kubernetes.io/pcieRoot": {"string": "pci0000:ae"}}}]}},
  {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
   "metadata": {"name": "gpu.example.com"},
   "spec": {"selectors": [{"cel": {"expression": "device.driver == \"gpu.example.com\""}}]}}
]}
EOF
  ); then
    fail "ResourceSlices with our attribute names and a GPU driver's DeviceClass are accepted" "$out"
    return
  fi
  ok "ResourceSlices with our attribute names and a GPU driver's DeviceClass are accepted"

  # --- the example templates, in a namespace of their own
  kubectl create namespace "$ns" >/dev/null
  wait_for 60 kubectl -n "$ns" get serviceaccount default
  local f
  for f in gpu-aligned numa0 rdma pf; do
    if out=$(sed "s/namespace: team-a/namespace: $ns/" "$ex/$f.yaml" | kubectl apply -f - 2>&1); then
      ok "example $f.yaml: the API server accepts the template and its CEL"
    else
      fail "example $f.yaml: the API server accepts the template and its CEL" "$out"
    fi
  done
  # the case that must not fit: NUMA 0 and the GPUs' PCIe root
  kubectl apply -f - >/dev/null <<EOF
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: vf-near-gpu-numa0, namespace: $ns}
spec:
  spec:
    devices:
      requests:
        - {name: gpu, exactly: {deviceClassName: gpu.example.com}}
        - name: vf
          exactly:
            deviceClassName: cx6-dra.smartnic.io
            selectors:
              - cel: {expression: '"numaNode" in device.attributes["smartnic.io"] && device.attributes["smartnic.io"].numaNode == 0'}
      constraints:
        - {requests: [gpu, vf], matchAttribute: resource.kubernetes.io/pcieRoot}
EOF
  # pods without a kubelet: every taint tolerated (the node turns unreachable after the grace
  # period), no service-account token
  pod() { # NAME TEMPLATE
    kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: $ns}
spec:
  automountServiceAccountToken: false
  tolerations: [{operator: Exists}]
  resourceClaims: [{name: c, resourceClaimTemplateName: $2}]
  containers: [{name: app, image: registry.k8s.io/pause:3.10, resources: {claims: [{name: c}]}}]
EOF
  }
  # the example pod as written (its template: vf-near-gpu), with the same tolerations
  kubectl apply --dry-run=client -f "$ex/pod.yaml" -o json 2>/dev/null |
    jq --arg ns "$ns" '.metadata.namespace = $ns | .spec.tolerations = [{"operator": "Exists"}]
      | .spec.automountServiceAccountToken = false' | kubectl apply -f - >/dev/null
  pod numa0 vf-numa0
  pod rdma vf-rdma
  pod pf vf-of-ens1f1np1
  pod impossible vf-near-gpu-numa0

  # allocated POD REQUEST: the device the scheduler allocated to the pod's claim for REQUEST
  # (driver/device), empty before
  allocated() {
    local claim
    claim=$(kubectl -n "$ns" get pod "$1" -o json 2>/dev/null | jq -r '.status.resourceClaimStatuses[0].resourceClaimName // empty')
    [ -n "$claim" ] || return 0
    kubectl -n "$ns" get resourceclaim "$claim" -o json 2>/dev/null |
      jq -r --arg r "$2" '.status.allocation.devices.results[]? | select(.request == $r) | "\(.driver)/\(.device)"'
  }
  scheduled() { [ -n "$(allocated "$1" vf)" ]; }
  local p
  for p in trainer-dra-0 numa0 rdma pf; do
    if ! api_wait 60 scheduled "$p"; then
      fail "pod $p: its claim is allocated" "$(kubectl -n "$ns" get pod "$p" -o json | jq -c '.status')"
    fi
  done
  local gpu near pfv
  gpu=$(allocated trainer-dra-0 gpu)
  near=$(allocated trainer-dra-0 vf)
  expect_match "vf-near-gpu (example pod): a GPU and a VF under its PCIe root ($gpu, $near)" "$gpu $near" \
    '^gpu\.example\.com/gpu-[01] smartnic\.io/pci-0000-af-00-[23]$'
  expect_eq "vf-numa0: the only cx6_dra VF on NUMA 0 (not the other pool's, not the one without NUMA)" \
    "$(allocated numa0 vf)" "smartnic.io/pci-0000-3b-00-2"
  expect_eq "vf-rdma: the only RDMA-capable cx6_dra VF" "$(allocated rdma vf)" "smartnic.io/pci-0000-5e-00-2"
  pfv=$(allocated pf vf)
  expect_match "vf-of-ens1f1np1: a VF of that PF ($pfv)" "$pfv" '^smartnic\.io/pci-0000-af-00-[23]$'
  if [ -n "$near" ] && [ "$near" = "$pfv" ]; then
    fail "two claims never get one device" "$near and $pfv"
  fi
  # the impossible claim: given the time the others took, still no allocation, and the scheduler
  # says why
  sleep 3
  expect_eq "VF on NUMA 0 under the GPUs' PCIe root: no allocation (the DeviceClass excludes other_vf)" \
    "$(allocated impossible vf)" ""
  expect_eq "... and the pod stays unschedulable" \
    "$(kubectl -n "$ns" get pod impossible -o json | jq -r '.status.conditions[]? | select(.type == "PodScheduled") | .reason')" \
    "Unschedulable"

  # --- the policy gone: so is its DeviceClass
  kubectl delete nicpolicy gpu-cx6-dra >/dev/null
  no_class() { ! kubectl get deviceclass cx6-dra.smartnic.io >/dev/null 2>&1; }
  if api_wait 60 no_class; then
    ok "the policy deleted: the operator deletes DeviceClass cx6-dra.smartnic.io (${API_WAITED_MS} ms)"
  else
    fail "the policy deleted: the operator deletes DeviceClass cx6-dra.smartnic.io" "$(tail -n 20 "$T_TMP/dra-operator.log")"
  fi
  expect_eq "the operator was refused no call" \
    "$(grep -ci 'forbidden' "$T_TMP/dra-operator.log")" "0"
  api_stop "$op_pid"
  # what this file made goes now (the on_exit above is for an early return)
  kubectl -n "$ns" delete pod --all --grace-period 0 --force >/dev/null 2>&1
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1
  kubectl delete resourceslice -l hw-tests=dra >/dev/null 2>&1
  kubectl delete deviceclass gpu.example.com >/dev/null 2>&1
  kubectl delete node "$node" >/dev/null 2>&1
}
dra_test

# shellcheck shell=bash
# 3. The operator under its own identity: smartnic-operator runs with a TokenRequest token of the
# deploy's ServiceAccount (so the deploy's RBAC is all it has; any call it is refused fails here:
# the API server's 403 count, the operator's log). Node objects, NicPolicy, NicNetwork, NicPool
# and NicOperatorConfig give each node its NicNodeState spec (VF plan, device-plugin
# configuration, RDMA mode), the NetworkAttachmentDefinition, the device-plugin node label and the
# DaemonSets' placement; status conditions appear; a change of one policy rewrites only the node
# states of the nodes it selects. The agents' part (inventory in status) is played by the admin
# with the inventory of a fixture host (examples/hosts/cx6dx-switchdev). Last, the node-write
# admission policy: with the operator's token, smartnic.io/ labels and cordon
# pass; another label, annotation, a taint or the pod CIDR are refused naming the policy, and the
# node is left as it was.
. "$HW/api/common.sh"
api_ensure_installed
api_webhook_off

op_ns=smartnic-op-test
op_kc=$T_TMP/operator.kubeconfig
# jget ARGS... JQ: `kubectl get ARGS -o json | jq -r JQ` (empty on error)
jget() {
  local q=${*: -1}
  kubectl get "${@:1:$#-1}" -o json 2>/dev/null | jq -r "$q" 2>/dev/null
}
# until_eq SECS WANT ARGS... JQ: waits until jget ARGS JQ prints WANT; OP_GOT holds the last answer
until_eq() {
  local secs=$1 want=$2
  shift 2
  local n=$((secs * 5))
  while :; do
    OP_GOT=$(jget "$@")
    [ "$OP_GOT" = "$want" ] && return 0
    n=$((n - 1))
    [ $n -gt 0 ] || return 1
    sleep 0.2
  done
}
# expect_get WHAT SECS WANT ARGS... JQ: ok when jget ARGS JQ prints WANT within SECS
expect_get() {
  local what=$1
  shift
  if until_eq "$@"; then ok "$what"; else fail "$what" "got:  '$OP_GOT'"$'\n'"want: '$2'"; fi
}

if api_token_kubeconfig "$op_kc" "$API_NS" smartnic-operator; then
  expect_eq "operator token: TokenRequest for ServiceAccount $API_NS/smartnic-operator" \
    "$(KUBECONFIG=$op_kc kubectl auth whoami -o jsonpath='{.status.userInfo.username}' 2>&1)" \
    "system:serviceaccount:$API_NS:smartnic-operator"
  expect_eq "operator token is not admin (may not * *)" \
    "$(KUBECONFIG=$op_kc kubectl auth can-i '*' '*' 2>/dev/null)" "no"
else
  fail "operator token: TokenRequest for ServiceAccount $API_NS/smartnic-operator"
fi

inv=$(smartnicctl discover --root "$REPO/examples/hosts/cx6dx-switchdev" -o json 2>&1)
pf=$(jq -r '[.nics[] | select(.vendorId == "15b3")][0].name // empty' <<<"$inv" 2>/dev/null)
pf_pci=$(jq -r --arg pf "$pf" '.nics[] | select(.name == $pf) | .pciAddress' <<<"$inv" 2>/dev/null)
if [ -n "$pf" ]; then ok "fixture inventory: $pf ($pf_pci)"; else fail "fixture inventory" "$inv"; fi

kubectl apply --server-side -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $op_ns}
---
apiVersion: v1
kind: Node
metadata:
  name: node-a
  labels: {kubernetes.io/os: linux, smartnic-test/agent: "true", gpu: "true"}
---
apiVersion: v1
kind: Node
metadata:
  name: node-b
  labels: {kubernetes.io/os: linux, smartnic-test/agent: "true", gpu: "true"}
---
apiVersion: v1
kind: Node
metadata:
  name: node-c
  labels: {kubernetes.io/os: linux, smartnic-test/agent: "true", edge: "true"}
---
apiVersion: smartnic.io/v1alpha1
kind: NicOperatorConfig
metadata: {name: default}
spec:
  nodeSelector: {kubernetes.io/os: linux, smartnic-test/agent: "true"}
---
apiVersion: smartnic.io/v1alpha1
kind: NicPolicy
metadata: {name: gpu}
spec:
  nodeSelector: {matchLabels: {gpu: "true"}}
  nicSelector: {vendor: "15b3", pfNames: [$pf]}
  numVfs: 4
  resourceName: cx6_vf
  priority: 10
---
apiVersion: smartnic.io/v1alpha1
kind: NicPolicy
metadata: {name: edge}
spec:
  nodeSelector: {matchLabels: {edge: "true"}}
  nicSelector: {vendor: "15b3", pfNames: [$pf]}
  numVfs: 2
  resourceName: edge_vf
---
apiVersion: smartnic.io/v1alpha1
kind: NicPool
metadata: {name: gpu}
spec:
  nodeSelector: {matchLabels: {gpu: "true"}}
  maxUnavailable: 1
  rdmaMode: exclusive
---
apiVersion: smartnic.io/v1alpha1
kind: NicNetwork
metadata: {name: data, namespace: $op_ns}
spec:
  mode: sriov
  resourceName: cx6_vf
  vlan: 10
  ipam: {type: host-local, ranges: [[{subnet: 10.10.0.0/16}]]}
EOF
op_cleanup() {
  kubectl delete nicnetwork -n "$op_ns" data --ignore-not-found --wait=false
  kubectl delete nicpolicy gpu edge --ignore-not-found --wait=false
  kubectl delete nicpool gpu --ignore-not-found --wait=false
  kubectl delete nicoperatorconfig default --ignore-not-found --wait=false
  kubectl delete nicnodestate node-a node-b node-c --ignore-not-found --wait=false
  kubectl delete node node-a node-b node-c --ignore-not-found --wait=false
  kubectl delete namespace "$op_ns" --ignore-not-found --wait=false
  kubectl delete lease -n "$API_NS" smartnic-operator-leader --ignore-not-found
}
on_exit op_cleanup

op_resources=$({ kubectl get clusterrole smartnic-operator -o json
  kubectl get role -n "$API_NS" smartnic-operator -o json; } | api_granted_resources)
forbidden_before=$(api_forbidden_count $op_resources)
api_operator_start op30 "$op_kc" --leader-elect=true --no-webhook
op30_pid=$OP_PID op30_log=$OP_LOG op30_metrics=$OP_METRICS
if wait_for 60 curl -fsS "$op30_metrics/readyz"; then
  ok "smartnic-operator ready (every watch cache filled) as the ServiceAccount"
else
  fail "smartnic-operator ready" "$(tail -n 20 "$op30_log")"
fi
expect_get "it leads: Lease $API_NS/smartnic-operator-leader" 30 op30 \
  lease -n "$API_NS" smartnic-operator-leader '.spec.holderIdentity'

# the agents' part: each node's inventory into the status of the NicNodeState the operator made
for n in node-a node-b node-c; do
  if until_eq 30 "$n" nicnodestate "$n" '.metadata.name'; then
    kubectl patch nicnodestate "$n" --subresource status --type merge \
      -p "{\"status\": {\"nics\": $(jq -c .nics <<<"$inv")}}" >/dev/null
    ok "NicNodeState $n created by the operator (inventory reported into it)"
  else
    fail "NicNodeState $n created by the operator" "$(tail -n 20 "$op30_log")"
  fi
done

plan='[.spec.interfaces[] | "\(.pciAddress) \(.numVfs) \(.policy) \([.vfGroups[].resourceName] | join(","))"] | join(";")'
for n in node-a node-b; do
  expect_get "NicNodeState $n spec: $pf 4 VFs from policy gpu" 30 "$pf_pci 4 gpu cx6_vf" nicnodestate "$n" "$plan"
  expect_get "NicNodeState $n spec: device-plugin pool smartnic.io/cx6_vf" 10 "smartnic.io/cx6_vf" \
    nicnodestate "$n" '[.spec.devicePlugin.resourceList[] | "\(.resourcePrefix)/\(.resourceName)"] | join(",")'
  expect_get "NicNodeState $n spec: rdmaMode exclusive from NicPool gpu" 10 exclusive nicnodestate "$n" '.spec.rdmaMode'
done
expect_get "NicNodeState node-c spec: $pf 2 VFs from policy edge" 30 "$pf_pci 2 edge edge_vf" nicnodestate node-c "$plan"
expect_get "NicNodeState node-c spec: no rdmaMode (in no pool)" 10 null nicnodestate node-c '.spec.rdmaMode'
expect_get "NicNodeState node-a: owned by Node node-a, labelled" 10 "Node/node-a node-a" \
  nicnodestate node-a '"\(.metadata.ownerReferences[0].kind)/\(.metadata.ownerReferences[0].name) \(.metadata.labels["smartnic.io/node"])"'
for n in node-a node-b node-c; do
  expect_get "Node $n labelled smartnic.io/device-plugin=true" 10 true node "$n" '.metadata.labels["smartnic.io/device-plugin"]'
done

expect_get "NAD $op_ns/data: resourceName annotation smartnic.io/cx6_vf" 30 smartnic.io/cx6_vf \
  network-attachment-definitions -n "$op_ns" data '.metadata.annotations["k8s.v1.cni.cncf.io/resourceName"]'
expect_get "NAD $op_ns/data: CNI config (smartnic, vlan 10), owned by the NicNetwork" 10 "smartnic 10 NicNetwork/data" \
  network-attachment-definitions -n "$op_ns" data \
  '(.spec.config | fromjson) as $c | "\($c.type // $c.plugins[0].type) \($c.vlan // $c.plugins[0].vlan) \(.metadata.ownerReferences[0].kind)/\(.metadata.ownerReferences[0].name)"'

conds='.metadata.generation as $g | [.status.conditions[] | "\(.type)=\(.status)\(if .observedGeneration == $g then "" else "@\(.observedGeneration)" end)"] | sort | join(" ")'
expect_get "NicPolicy gpu status: Applied, Valid (observedGeneration current), 2 nodes" 30 "Applied=True Valid=True 2" \
  nicpolicy gpu "($conds) + \" \(.status.selectedNodes)\""
expect_get "NicPolicy edge status: Applied, Valid, 1 node" 30 "Applied=True Valid=True 1" \
  nicpolicy edge "($conds) + \" \(.status.selectedNodes)\""
expect_get "NicNetwork data status: Ready, Valid" 30 "Ready=True Valid=True" nicnetwork -n "$op_ns" data "$conds"
expect_get "NicPool gpu status: 2 nodes, conditions current" 30 "2 current" nicpool gpu \
  '.metadata.generation as $g | "\(.status.nodes) \(if ([.status.conditions[]? | select(.observedGeneration != $g)] | length) == 0 and (.status.conditions | length) > 0 then "current" else .status.conditions end)"'
expect_get "NicOperatorConfig default status: Valid" 30 "Valid=True" nicoperatorconfig default "$conds"
expect_get "DaemonSet smartnic-agent follows NicOperatorConfig.nodeSelector" 30 \
  '{"kubernetes.io/os":"linux","smartnic-test/agent":"true"}' daemonset -n "$API_NS" smartnic-agent '.spec.template.spec.nodeSelector | tojson'
expect_get "DaemonSet smartnic-device-plugin: that plus smartnic.io/device-plugin" 30 \
  '{"kubernetes.io/os":"linux","smartnic-test/agent":"true","smartnic.io/device-plugin":"true"}' \
  daemonset -n "$API_NS" smartnic-device-plugin '.spec.template.spec.nodeSelector | tojson'

# A change of one policy rewrites the node states of the nodes it selects, no other.
rv() { jget nicnodestate "$1" '"\(.metadata.generation) \(.metadata.resourceVersion)"'; }
c_before=$(rv node-c) a_gen=$(jget nicnodestate node-a '.metadata.generation')
kubectl patch nicpolicy gpu --type merge -p '{"spec": {"numVfs": 6}}' >/dev/null
expect_get "policy gpu numVfs 4 -> 6: node-a's spec rewritten" 30 "$pf_pci 6 gpu cx6_vf" nicnodestate node-a "$plan"
expect_get "policy gpu numVfs 4 -> 6: node-b's spec rewritten" 30 "$pf_pci 6 gpu cx6_vf" nicnodestate node-b "$plan"
expect_get "node-a's generation went up by one" 5 $((a_gen + 1)) nicnodestate node-a '.metadata.generation'
# the status pass that follows the change is done once the policy's status is current
until_eq 30 "Applied=True Valid=True" nicpolicy gpu "$conds" || true
sleep 2
expect_eq "node-c (not selected) untouched: generation and resourceVersion" "$(rv node-c)" "$c_before"

# Nothing the operator did was refused.
if kill -0 "$op30_pid" 2>/dev/null; then ok "smartnic-operator still running"; else fail "smartnic-operator still running" "$(tail -n 20 "$op30_log")"; fi
forbidden_after=$(api_forbidden_count $op_resources)
expect_eq "API server: no request refused (403) while the operator ran" "$((forbidden_after - forbidden_before))" 0
if grep -Eiq 'forbidden|code: 403' "$op30_log"; then
  fail "operator log: no 403 / forbidden" \
    "$(grep -Ei 'forbidden|code: 403' "$op30_log" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-400 | head -n 10)"
else
  ok "operator log: no 403 / forbidden"
fi
errs=$(curl -fsS "$op30_metrics/metrics" | grep '^smartnic_operator_reconcile_errors_total' | grep -v ' 0$' || true)
[ -z "$errs" ] || note "reconcile errors (retried): $errs"

# The node-write admission policy (smartnic-operator-node-writes): RBAC lets the operator patch
# any Node; the policy holds its writes to smartnic.io/ labels and annotations and cordon. Each
# write below is a PATCH with the operator's own token (after the 403 count above: the refusals
# are wanted here). It has no `get` on Nodes (it reads them from its watch), so kubectl, which
# reads the object first, cannot stand for it: curl sends the PATCH alone, as the operator does.
# A refused write leaves the node as it was.
op_token=$(KUBECONFIG=$op_kc kubectl config view --raw -o jsonpath='{.users[0].user.token}')
node_meta() { jget node node-a '"\(.metadata.labels | tojson) \(.metadata.annotations // {} | tojson) \(.spec.taints // [] | tojson) \(.spec.unschedulable // false) \(.spec.podCIDR // "")"'; }
# op_patch WANT(allowed|refused:MESSAGE) WHAT MERGE-PATCH
op_patch() {
  local want=$1 what=$2 out code before after
  before=$(node_meta)
  out=$(curl -sS --cacert "$K8S_CA" -H "Authorization: Bearer $op_token" -X PATCH \
    -H 'Content-Type: application/merge-patch+json' --data "$3" -w '\n%{http_code}' \
    "$K8S_API/api/v1/nodes/node-a" 2>&1)
  code=${out##*$'\n'}
  out=$(jq -r '.message // empty' <<<"${out%$'\n'*}" 2>/dev/null)
  after=$(node_meta)
  if [ "$want" = allowed ]; then
    if [ "$code" = 200 ]; then ok "operator's node write allowed: $what"; else fail "operator's node write allowed: $what" "HTTP $code: $out"; fi
  elif [ "$code" = 200 ]; then
    fail "operator's node write refused: $what" "accepted"
  elif ! grep -q "smartnic-operator-node-writes" <<<"$out" || ! grep -qF "${want#refused:}" <<<"$out"; then
    fail "operator's node write refused by the admission policy: $what" "HTTP $code: $out"
  elif [ "$before" != "$after" ]; then
    fail "operator's node write refused: $what (node unchanged)" "before: $before"$'\n'"after:  $after"
  else
    ok "operator's node write refused (HTTP $code) by smartnic-operator-node-writes: $what"
  fi
}
op_patch allowed "label smartnic.io/api-test" '{"metadata":{"labels":{"smartnic.io/api-test":"1"}}}'
op_patch allowed "its label removed" '{"metadata":{"labels":{"smartnic.io/api-test":null}}}'
op_patch allowed "cordon (spec.unschedulable)" '{"spec":{"unschedulable":true}}'
op_patch allowed "uncordon" '{"spec":{"unschedulable":null}}'
op_patch "refused:only smartnic.io/ labels" "another label (team=x)" '{"metadata":{"labels":{"team":"x"}}}'
op_patch "refused:only smartnic.io/ labels" "overwrite kubernetes.io/os" '{"metadata":{"labels":{"kubernetes.io/os":"windows"}}}'
op_patch "refused:only smartnic.io/ labels" "remove label gpu" '{"metadata":{"labels":{"gpu":null}}}'
op_patch "refused:only smartnic.io/ annotations" "another annotation" '{"metadata":{"annotations":{"example.com/owner":"x"}}}'
op_patch "refused:only unschedulable" "a taint" '{"spec":{"taints":[{"key":"evil","value":"1","effect":"NoSchedule"}]}}'
op_patch "refused:only unschedulable" "spec.podCIDR" '{"spec":{"podCIDR":"10.99.0.0/24"}}'

api_operator_stop "$op30_pid"
op_cleanup >/dev/null 2>&1
# the operator patched the DaemonSets' placement: back to the manifests
kubectl apply --server-side --force-conflicts -k "$REPO/deploy" >/dev/null 2>&1
api_webhook_off

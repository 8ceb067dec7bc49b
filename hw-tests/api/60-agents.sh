# shellcheck shell=bash
# 6. Agents: three `smartnic-agent` processes, each on a copy of an example host's sysfs tree
# (examples/hosts) as its own Node, each under a smartnic-agent token bound to a Pod on its node
# (what the DaemonSet's pods get), next to one `smartnic-operator` under its ServiceAccount:
#
#   agents-igb  igb-82576        policy agents-igb (externally managed VFs): inventory in status by
#                                server-side apply, the spec applied (the device-plugin file), then
#                                a policy change reaches the agent through its watch
#   agents-cx   cx6dx-switchdev  policy agents-cx: the same on another NIC
#   agents-e810 e810             policy agents-drain: VF 1 is in use, so the plan needs its pods
#                                evicted: the drain handshake. The operator evicts the node's VF
#                                pods through the Eviction API; a PodDisruptionBudget holds one back
#                                until the pool's drainTimeoutSeconds (20 s here), when the operator
#                                gives up: DrainTimedOut naming that pod, the node uncordoned and
#                                its slot freed.
#
# The operator and the agents stay up for 80-steady (API_AGENTS_UP=1).
# shellcheck source=lib-api.sh
. "$HW/api/lib-api.sh"

AGENTS_NODES="agents-igb agents-cx agents-e810"
AGENTS_DRAIN_TIMEOUT=20

agents_policies() { # RESOURCE-OF-agents-igb
  cat <<EOF
apiVersion: smartnic.io/v1alpha1
kind: NicPolicy
metadata:
  name: agents-igb
spec:
  nodeSelector:
    matchLabels: {smartnic.io/agents-test: igb}
  nicSelector: {vendor: "8086"}
  numVfs: 2
  externallyManaged: true
  resourceName: $1
---
apiVersion: smartnic.io/v1alpha1
kind: NicPolicy
metadata:
  name: agents-cx
spec:
  nodeSelector:
    matchLabels: {smartnic.io/agents-test: cx}
  nicSelector: {vendor: "15b3", pfNames: [ens1f1np1]}
  numVfs: 2
  externallyManaged: true
  resourceName: agentscx
---
apiVersion: smartnic.io/v1alpha1
kind: NicPolicy
metadata:
  name: agents-drain
spec:
  nodeSelector:
    matchLabels: {smartnic.io/agents-test: drain}
  nicSelector: {vendor: "8086"}
  numVfs: 4
  resourceName: agentsdrain
---
apiVersion: smartnic.io/v1alpha1
kind: NicPool
metadata:
  name: agents-drain
spec:
  nodeSelector:
    matchLabels: {smartnic.io/agents-test: drain}
  maxUnavailable: 1
  drainTimeoutSeconds: $AGENTS_DRAIN_TIMEOUT
EOF
}

# agents_vf_pod NAME: a Running, Ready pod on agents-e810 that holds one VF of agents-drain
agents_vf_pod() {
  kubectl apply --server-side --field-manager hw-tests -f - >/dev/null <<EOF || return 1
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: agents-test
  labels: {app: vf-user, pod: $1}
spec:
  nodeName: agents-e810
  terminationGracePeriodSeconds: 0
  tolerations:
    - operator: Exists
  containers:
    - name: app
      image: app:test
      resources:
        requests: {smartnic.io/agentsdrain: "1"}
        limits: {smartnic.io/agentsdrain: "1"}
EOF
  # no kubelet: the test reports the pod running (a pending pod is never held by a budget)
  kubectl -n agents-test patch pod "$1" --subresource status --type merge -p '{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}' >/dev/null
}

# NicOperatorConfig spec.tenantAllowList reaches every agent's node as the CNI's allow-list file
# (0644, the list's JSON); without a NicOperatorConfig the file is left alone (none is made)
agents_allow_list() {
  local node n
  for node in $AGENTS_NODES; do
    if [ -e "$T_TMP/hosts/$node/cni-allow-list.json" ]; then
      fail "$node: no NicOperatorConfig, no allow-list file made" "$(cat "$T_TMP/hosts/$node/cni-allow-list.json")"
    fi
  done
  kubectl apply --server-side --field-manager hw-tests -f - >/dev/null <<'EOF'
apiVersion: smartnic.io/v1alpha1
kind: NicOperatorConfig
metadata: {name: default}
spec:
  tenantAllowList:
    ipamDataDirs: [/var/lib/agents-test/ipam]
    masters: [{name: eth1, namespaces: [agents-test]}]
EOF
  allow_list_on() {
    local f=$T_TMP/hosts/$1/cni-allow-list.json
    [ "$(stat -c %a "$f" 2>/dev/null)" = 644 ] \
      && jq -e '.ipamDataDirs == ["/var/lib/agents-test/ipam"] and .masters == [{"name": "eth1", "namespaces": ["agents-test"]}]' "$f" >/dev/null 2>&1
  }
  n=0
  for node in $AGENTS_NODES; do
    if api_wait 60 allow_list_on "$node"; then
      n=$((n + 1))
    else
      fail "$node: NicOperatorConfig tenantAllowList written to the node's CNI allow-list" \
        "$(kubectl get nicnodestate "$node" -o json | jq -c .spec.cniAllowList 2>&1)"$'\n'"$(ls -l "$T_TMP/hosts/$node/" 2>&1)"$'\n'"$(tail -n 5 "$T_TMP/agent-$node.log")"
    fi
  done
  [ "$n" = 3 ] && ok "NicOperatorConfig tenantAllowList written to the CNI allow-list file of all 3 agents' nodes (0644) in ${API_WAITED_MS} ms"
  kubectl delete nicoperatorconfig default --ignore-not-found >/dev/null
}

agents_test() {
  local out n
  if ! out=$(api_ensure_installed 2>&1); then fail "deploy/ installed" "$out"; return; fi
  api_webhook_aside
  kubectl -n "$API_NS" delete lease smartnic-operator-leader --ignore-not-found >/dev/null
  if ! out=$(api_sa_kubeconfig "$T_TMP/operator.kubeconfig" smartnic-operator 2>&1); then
    fail "TokenRequest for ServiceAccount smartnic-operator" "$out"
    return
  fi
  kubectl create namespace agents-test --dry-run=client -o yaml | kubectl apply -f - >/dev/null

  # the drain's pods and their budget first: the node's policy comes later
  api_node agents-igb smartnic.io/agents-test=igb
  api_node agents-cx smartnic.io/agents-test=cx
  api_node agents-e810
  agents_vf_pod vf-free && agents_vf_pod vf-held || { fail "VF pods on agents-e810"; return; }
  kubectl apply --server-side --field-manager hw-tests -f - >/dev/null <<'EOF'
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: vf-held
  namespace: agents-test
spec:
  minAvailable: 1
  selector:
    matchLabels: {pod: vf-held}
EOF
  pdb_counted() {
    [ "$(kubectl -n agents-test get pdb vf-held -o jsonpath='{.status.currentHealthy}/{.status.disruptionsAllowed}')" = 1/0 ]
  }
  if api_wait 60 pdb_counted; then
    ok "PodDisruptionBudget vf-held counts its pod healthy and allows no disruption"
  else
    fail "PodDisruptionBudget vf-held counted" "$(kubectl -n agents-test get pdb vf-held -o yaml 2>&1 | tail -n 15)"
  fi

  agents_policies agentsigb | kubectl apply --server-side --field-manager hw-tests -f - >/dev/null
  api_operator agents-operator "$T_TMP/operator.kubeconfig"
  AGENTS_OPERATOR_PID=$API_PID AGENTS_OPERATOR_PORT=$API_PORT
  declare -gA AGENT_PID=() AGENT_PORT=()
  for n in agents-igb:igb-82576 agents-cx:cx6dx-switchdev agents-e810:e810; do
    if ! api_agent "${n%%:*}" "${n#*:}" >"$T_TMP/start.out" 2>&1; then
      fail "agent ${n%%:*} started" "$(cat "$T_TMP/start.out")"
      return
    fi
    AGENT_PID[${n%%:*}]=$API_PID AGENT_PORT[${n%%:*}]=$API_PORT
  done
  API_AGENTS_UP=1

  # inventory by server-side apply of the status subresource, under the agent's field manager
  local node
  for node in $AGENTS_NODES; do
    inventory() {
      kubectl get nicnodestate "$1" -o json --show-managed-fields 2>/dev/null | jq -e '
        (.status.nics | length > 0)
        and any(.metadata.managedFields[]; .manager == "smartnic.io/agent" and .operation == "Apply" and .subresource == "status")' >/dev/null
    }
    if api_wait 60 inventory "$node"; then
      ok "$node: agent reports its inventory by server-side apply ($(kubectl get nicnodestate "$node" -o json | jq -r '[.status.nics[] | .pciAddress + " " + .driver] | join(", ")'))"
    else
      fail "$node: agent reports its inventory" "$(tail -n 15 "$T_TMP/agent-$node.log")"
    fi
  done

  # the spec applied: status at the spec's generation, the device-plugin file written
  synced() {
    kubectl get nicnodestate "$1" -o json 2>/dev/null | jq -e '
      .status.syncStatus == "Succeeded" and .status.appliedGeneration == .metadata.generation
      and (.spec.interfaces | length > 0)' >/dev/null \
      && grep -q "smartnic.io/$2\|\"$2\"" "$T_TMP/hosts/$1/device-plugin.json" 2>/dev/null
  }
  for n in agents-igb:agentsigb agents-cx:agentscx; do
    if api_wait 90 synced "${n%%:*}" "${n#*:}"; then
      ok "${n%%:*}: spec applied (Succeeded at its generation; device-plugin file offers ${n#*:}) in ${API_WAITED_MS} ms"
    else
      fail "${n%%:*}: spec applied" "$(kubectl get nicnodestate "${n%%:*}" -o json 2>&1 | jq -c '{spec, status: (.status | del(.nics))}' 2>&1)"$'\n'"$(tail -n 10 "$T_TMP/agent-${n%%:*}.log")"
    fi
  done

  # the spec watch: a changed policy reaches the agent at once (its resync is 300 s)
  agents_policies agentsigb2 | kubectl apply --server-side --field-manager hw-tests -f - >/dev/null
  if api_wait 60 synced agents-igb agentsigb2; then
    ok "agents-igb: a policy change is applied through the spec watch in ${API_WAITED_MS} ms"
  else
    fail "agents-igb: a policy change is applied through the spec watch" "$(tail -n 10 "$T_TMP/agent-agents-igb.log")"
  fi

  agents_allow_list
  agents_drain
  agents_drain_cleanup
}

# The drain node would be granted again after its retry-after time: take it out, so that what
# stays up (for 80-steady) is the converged part. Its agent is gone, so nobody resets its PFs:
# its finalizer is dropped by hand.
agents_drain_cleanup() {
  kill -KILL "${AGENT_PID[agents-e810]}" 2>/dev/null
  kubectl delete nicpolicy agents-drain --ignore-not-found >/dev/null
  kubectl delete nicpool agents-drain --ignore-not-found >/dev/null
  kubectl delete namespace agents-test --wait=false >/dev/null
  kubectl delete node agents-e810 --wait=false >/dev/null
  kubectl patch nicnodestate agents-e810 --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  kubectl delete nicnodestate agents-e810 --ignore-not-found --wait=false >/dev/null
  kubectl -n "$API_NS" delete pod agent-agents-e810 --ignore-not-found --wait=false >/dev/null
}

agents_drain() {
  local w0 w1 s ann
  w0=$(api_writes | awk '$2 == "core/pods/eviction" && $3 == "POST" { s += $1 } END { print s + 0 }')
  kubectl label node agents-e810 smartnic.io/agents-test=drain --overwrite >/dev/null
  state() { kubectl get nicnodestate agents-e810 -o json 2>/dev/null; }
  annotation() { state | jq -r --arg k "$1" '.metadata.annotations[$k] // ""'; }
  requested() { [ "$(annotation smartnic.io/drain-request)" = evict-vf-pods ]; }
  if api_wait 90 requested; then
    ok "agents-e810: the agent asks for evict-vf-pods (VF 1 in use) after ${API_WAITED_MS} ms"
  else
    fail "agents-e810: the agent asks for a drain" "$(state | jq -c '{a: .metadata.annotations, s: .status.syncStatus, e: .status.lastSyncError}')"$'\n'"$(tail -n 10 "$T_TMP/agent-agents-e810.log")"
    return
  fi
  granted() { [ "$(annotation smartnic.io/drain-grant)" = draining ]; }
  if ! api_wait 30 granted; then
    fail "agents-e810: the operator grants the drain" "$(state | jq -c .metadata.annotations)"$'\n'"$(tail -n 10 "$T_TMP/agents-operator.log")"
    return
  fi
  local t_grant
  t_grant=$(now_ms)
  cordoned() {
    [ "$(kubectl get node agents-e810 -o jsonpath='{.spec.unschedulable} {.metadata.annotations.smartnic\.io/cordoned}')" = "true true" ]
  }
  if api_wait 15 cordoned; then
    ok "agents-e810: drain granted, node cordoned by the operator"
  else
    fail "agents-e810: drain granted, node cordoned by the operator" "$(kubectl get node agents-e810 -o json | jq -c '[.spec, .metadata.annotations]')"
  fi
  gone() { ! kubectl -n agents-test get pod vf-free >/dev/null 2>&1; }
  if api_wait 30 gone; then
    w1=$(api_writes | awk '$2 == "core/pods/eviction" && $3 == "POST" { s += $1 } END { print s + 0 }')
    if [ $((w1 - w0)) -ge 1 ]; then
      ok "pod vf-free evicted through the Eviction API ($((w1 - w0)) eviction request(s))"
    else
      fail "pod vf-free evicted through the Eviction API" "no pods/eviction POST counted by the API server"
    fi
  else
    fail "pod vf-free evicted" "$(tail -n 10 "$T_TMP/agents-operator.log")"
  fi
  check "pod vf-held still there while its budget allows no disruption" \
    kubectl -n agents-test get pod vf-held
  timed_out() {
    state | jq -e '.status.conditions[]? | select(.type == "Draining" and .status == "False" and .reason == "DrainTimedOut")' >/dev/null
  }
  if api_wait $((AGENTS_DRAIN_TIMEOUT + 40)) timed_out; then
    s=$(( ($(now_ms) - t_grant) / 1000 ))
    ok "drain given up ${s} s after the grant (drainTimeoutSeconds $AGENTS_DRAIN_TIMEOUT, passes every 5 s)"
    local msg
    msg=$(state | jq -r '.status.conditions[] | select(.type == "Draining") | .message')
    expect_match "DrainTimedOut names the pod the budget held" "$msg" 'agents-test/vf-held.*(disruption budget|PodDisruptionBudget)'
  else
    fail "drain given up at drainTimeoutSeconds" "$(state | jq -c '[.metadata.annotations, .status.conditions]')"
    return
  fi
  ann=$(state | jq -r '.metadata.annotations | [.["smartnic.io/drain-grant"], (has("smartnic.io/drain-retry-after") | tostring), .["smartnic.io/drain-request"]] | join(" ")')
  expect_eq "after the timeout: grant none, retry-after set, the agent's request kept" "$ann" "none true evict-vf-pods"
  expect_eq "after the timeout: node uncordoned" \
    "$(kubectl get node agents-e810 -o jsonpath='{.spec.unschedulable}')" ""
  check "after the timeout: pod vf-held still running" kubectl -n agents-test get pod vf-held
  local denied
  # 403 as a status, not as digits of a timestamp (12:27:43.350403Z)
  denied=$(grep -ilE 'forbidden|(^|[^0-9.])403([^0-9]|$)' "$T_TMP"/agent-agents-*.log "$T_TMP/agents-operator.log" | head -n 5)
  if [ -z "$denied" ]; then
    ok "no API call of the agents or the operator was refused"
  else
    fail "no API call of the agents or the operator was refused" "$(grep -ihE 'forbidden|(^|[^0-9.])403([^0-9]|$)' $denied | head -n 5)"
  fi
}
agents_test

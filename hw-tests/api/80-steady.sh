# shellcheck shell=bash
# 8. Steady state: once the agents of 60-agents have applied their specs, the operator and the
# agents write nothing for a minute. The API server's own counters (apiserver_request_total,
# `kubectl get --raw /metrics`) are read before and after the minute; they carry no user agent,
# so the writes are told apart by resource: the custom resources (smartnic.io), the
# NetworkAttachmentDefinitions and evictions have no writer but ours and must not move; events
# name their writer (reportingController) and Nodes and Pods their field managers, so none of
# ours may have been written in the minute;
# the operator's leader Lease is renewed every 2 s by design and is reported, as is what the
# control plane itself wrote (its own leases, pod status, its events).
#
# Run alone (SMARTNIC_API_ONLY=80-steady), it first runs 60-agents for the operator and agents.
# shellcheck source=lib-api.sh
. "$HW/api/lib-api.sh"

steady_test() {
  local w0 w1 diff ours theirs lease secs=${SMARTNIC_API_STEADY_SECS:-60}
  if [ "${API_AGENTS_UP:-0}" != 1 ]; then
    note "80-steady: starting the operator and agents with 60-agents"
    # shellcheck source=60-agents.sh
    . "$HW/api/60-agents.sh"
  fi
  [ "${API_AGENTS_UP:-0}" = 1 ] || { fail "operator and agents up (60-agents)"; return; }
  # converged: the agents' states applied, and no write of ours for 5 s
  converged() {
    local a b n
    for n in agents-igb agents-cx; do
      kubectl get nicnodestate "$n" -o json | jq -e \
        '.status.syncStatus == "Succeeded" and .status.appliedGeneration == .metadata.generation' \
        >/dev/null || return 1
    done
    a=$(api_writes | grep -E ' (smartnic\.io|k8s\.cni\.cncf\.io)/')
    sleep 5
    b=$(api_writes | grep -E ' (smartnic\.io|k8s\.cni\.cncf\.io)/')
    [ "$a" = "$b" ]
  }
  if ! api_wait 60 converged; then
    fail "operator and agents converge (no write for 5 s)" "$(api_writes | grep -E ' (smartnic\.io|k8s\.cni\.cncf\.io)/')"
    return
  fi
  ok "converged: no write of the operator or the agents for 5 s"
  local since events
  since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  w0=$(api_writes)
  sleep "$secs"
  w1=$(api_writes)
  # events carry their writer: ours written (created or counted again) during the minute
  events=$(kubectl get events.events.k8s.io -A -o json --show-managed-fields | jq -r --arg t "$since" '
    .items[] | select(.reportingController == "smartnic-operator" or .reportingController == "smartnic-agent")
    | select([.metadata.managedFields[]?.time] | max >= $t)
    | "\(.reportingController) \(.reason) \(.regarding.kind)/\(.regarding.name): \(.note)"')
  # COUNT KEY VERB lines of what moved
  diff=$(join -1 2 -2 2 -a 2 -e 0 -o 0,1.1,2.1 \
    <(awk '{print $1, $2 "|" $3}' <<<"$w0" | sort -k2) \
    <(awk '{print $1, $2 "|" $3}' <<<"$w1" | sort -k2) \
    | awk '$3 - $2 > 0 { split($1, k, "|"); print $3 - $2, k[1], k[2] }')
  ours=$(grep -E ' (smartnic\.io|k8s\.cni\.cncf\.io)/| core/pods/eviction ' <<<"$diff")
  # Nodes and Pods have other writers too: ours are told by their field managers (smartnic.io/*)
  local touched
  touched=$(kubectl get nodes,pods -A -o json --show-managed-fields | jq -r --arg t "$since" '
    .items[] | . as $o | .metadata.managedFields[]?
    | select((.manager | startswith("smartnic.io/")) and .time >= $t)
    | "\($o.kind)/\($o.metadata.name) by \(.manager) at \(.time)"')
  if [ -z "$touched" ]; then
    ok "steady state: no Node or Pod written by a smartnic.io field manager in ${secs} s"
  else
    fail "steady state: no Node or Pod written by a smartnic.io field manager in ${secs} s" "$touched"
  fi
  if [ -z "$events" ]; then
    ok "steady state: no event of the operator or the agents in ${secs} s"
  else
    fail "steady state: no event of the operator or the agents in ${secs} s" "$events"
  fi
  lease=$(grep ' coordination\.k8s\.io/leases ' <<<"$diff" | awk '{ s += $1 } END { print s + 0 }')
  theirs=$(grep -vE ' (smartnic\.io|k8s\.cni\.cncf\.io)/| core/pods/eviction | coordination\.k8s\.io/leases ' <<<"$diff")
  if [ -z "$ours" ]; then
    ok "steady state: no write to smartnic.io objects, NADs or evictions in ${secs} s"
  else
    fail "steady state: no write of the operator or the agents in ${secs} s" "$ours"
  fi
  note "leases written in ${secs} s (the operator's renewals every 2 s and the control plane's own): $lease"
  [ -n "$theirs" ] && note "other writes in ${secs} s (the control plane's own): $(tr '\n' ';' <<<"$theirs")"
  return 0
}
steady_test

# shellcheck shell=bash
# 4. Leader election: two `smartnic-operator` replicas under the deploy's ServiceAccount token
# (not admin). One holds the Lease smartnic-operator-leader and runs the controllers; the other
# runs none (its reconcile counter stays 0, so it writes nothing). SIGKILL the leader (no release
# of the lease): the other takes the lease once it has seen it unrenewed for the lease duration
# and writes the next object. Sourced by hw-tests/suites/api.sh.
# shellcheck source=lib-api.sh
. "$HW/api/lib-api.sh"

leader_test() {
  local d=$T_TMP/leader a b pa pb port_a port_b holder other pid_lead pid_other port_lead port_other out
  mkdir -p "$d"
  if ! out=$(api_ensure_installed 2>&1); then fail "deploy/ installed" "$out"; return; fi
  api_webhook_aside
  local op
  op=$(command -v smartnic-operator) || { fail "smartnic-operator is built"; return; }
  if ! out=$(api_sa_kubeconfig "$d/operator.kubeconfig" smartnic-operator 2>&1); then
    fail "TokenRequest for ServiceAccount smartnic-system/smartnic-operator" "$out"
    return
  fi
  # a lease left by an earlier check would make both wait for it to expire
  kubectl -n "$API_NS" delete lease smartnic-operator-leader --ignore-not-found >/dev/null

  a=leader-test-a b=leader-test-b
  port_a=$(api_free_port) port_b=$(api_free_port)
  replica() { # NAME PORT
    KUBECONFIG=$d/operator.kubeconfig RUST_LOG= setsid "$op" --no-webhook --namespace "$API_NS" \
      --identity "$1" --metrics-addr "127.0.0.1:$2" --log-level info,kube_runtime=warn \
      >"$d/$1.log" 2>&1 </dev/null &
    echo $!
  }
  pa=$(replica "$a" "$port_a")
  pb=$(replica "$b" "$port_b")
  on_exit "kill -KILL $pa $pb 2>/dev/null; cp '$d'/*.log \"\${SUITE_OUT:-/nonexistent}/\" 2>/dev/null"

  lease_holder() { kubectl -n "$API_NS" get lease smartnic-operator-leader -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
  has_holder() { [ -n "$(lease_holder)" ]; }
  if ! api_wait 60 has_holder; then
    fail "one of two replicas takes the Lease" "$(tail -n 20 "$d/$a.log" "$d/$b.log")"
    return
  fi
  holder=$(lease_holder)
  case "$holder" in
    "$a") pid_lead=$pa port_lead=$port_a other=$b pid_other=$pb port_other=$port_b;;
    "$b") pid_lead=$pb port_lead=$port_b other=$a pid_other=$pa port_other=$port_a;;
    *) fail "the Lease is held by one of the two replicas" "holder: '$holder'"; return;;
  esac
  ok "$holder holds Lease smartnic-operator-leader after ${API_WAITED_MS} ms, $other waits"

  metric() { # PORT NAME: the sum of the samples of NAME
    curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null \
      | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
  }
  expect_eq "leader gauge: $holder 1, $other 0" \
    "$(metric "$port_lead" smartnic_operator_leader) $(metric "$port_other" smartnic_operator_leader)" "1 0"

  # work for the leader: a node a policy selects gets its NicNodeState
  api_node leader-n1 smartnic.io/leader-test=yes
  kubectl apply --server-side --field-manager hw-tests -f - >/dev/null <<'EOF'
apiVersion: smartnic.io/v1alpha1
kind: NicPolicy
metadata:
  name: leader-test
spec:
  nodeSelector:
    matchLabels:
      smartnic.io/leader-test: "yes"
  nicSelector:
    vendor: "8086"
  numVfs: 2
  resourceName: leadertest
EOF
  if api_wait 60 kubectl get nicnodestate leader-n1; then
    ok "the leader creates NicNodeState leader-n1 (${API_WAITED_MS} ms)"
  else
    fail "the leader creates NicNodeState leader-n1" "$(tail -n 20 "$d/$holder.log")"
  fi
  local lead_writes standby_writes
  lead_writes=$(metric "$port_lead" smartnic_operator_reconcile_total)
  standby_writes=$(metric "$port_other" smartnic_operator_reconcile_total)
  if [ "$lead_writes" -gt 0 ] && [ "$standby_writes" = 0 ]; then
    ok "only the leader reconciles (reconciles: $holder $lead_writes, $other 0)"
  else
    fail "only the leader reconciles" "reconciles: $holder '$lead_writes', $other '$standby_writes'"
  fi

  # SIGKILL: the lease is not released, the other replica must wait for it to expire
  local last_renew duration t_kill
  kill -KILL "$pid_lead"
  t_kill=$(now_ms)
  last_renew=$(kubectl -n "$API_NS" get lease smartnic-operator-leader -o jsonpath='{.spec.renewTime}')
  duration=$(kubectl -n "$API_NS" get lease smartnic-operator-leader -o jsonpath='{.spec.leaseDurationSeconds}')
  other_leads() { [ "$(lease_holder)" = "$other" ]; }
  if ! wait_for 60 other_leads; then
    fail "$other takes the Lease after $holder is killed" "$(tail -n 20 "$d/$other.log")"
    return
  fi
  local took acquired gap
  took=$(($(now_ms) - t_kill))
  acquired=$(kubectl -n "$API_NS" get lease smartnic-operator-leader -o jsonpath='{.spec.acquireTime}')
  gap=$(python3 -c '
import sys
from datetime import datetime
p = lambda s: datetime.strptime(s.rstrip("Z")[:26], "%Y-%m-%dT%H:%M:%S.%f")
print(int((p(sys.argv[2]) - p(sys.argv[1])).total_seconds() * 1000))' "$last_renew" "$acquired")
  # The standby counts the lease duration from the moment it first saw the last renewal, and it
  # looks every retry period (2 s): the lease can change hands at most one retry period before
  # and one after leaseDurationSeconds from the last renewal.
  if [ "$gap" -ge $((duration * 1000 - 2500)) ] && [ "$gap" -le $((duration * 1000 + 4500)) ]; then
    ok "$other leads ${took} ms after the SIGKILL, ${gap} ms after the last renewal: not before the lease (${duration} s) expired, at most two retry periods (2 s) after"
  else
    fail "$other leads once the lease expired (lease duration +- two retry periods after the last renewal)" \
      "last renewal $last_renew, acquired $acquired: ${gap} ms (lease ${duration} s), ${took} ms after the kill"
  fi
  expect_eq "leader gauge of $other" "$(metric "$port_other" smartnic_operator_leader)" 1

  # the new leader does the next piece of work
  api_node leader-n2 smartnic.io/leader-test=yes
  if api_wait 60 kubectl get nicnodestate leader-n2; then
    ok "the new leader creates NicNodeState leader-n2 (${API_WAITED_MS} ms)"
  else
    fail "the new leader creates NicNodeState leader-n2" "$(tail -n 20 "$d/$other.log")"
  fi
  # No object written by both: the standby reconciled nothing before the kill (above), the
  # killed one nothing after it; each replica started its controllers once.
  local starts_a starts_b
  starts_a=$(grep -c 'leading: starting controllers' "$d/$holder.log")
  starts_b=$(grep -c 'leading: starting controllers' "$d/$other.log")
  expect_eq "controllers started once in each replica, in turn" "$starts_a $starts_b" "1 1"
  local denied
  denied=$(grep -i 'forbidden\|403' "$d/$a.log" "$d/$b.log" | head -n 5)
  if [ -z "$denied" ]; then
    ok "no API call of either replica was refused by RBAC"
  else
    fail "no API call of either replica was refused by RBAC" "$denied"
  fi

  api_stop "$pid_other"
  kubectl delete nicpolicy leader-test --ignore-not-found >/dev/null
  kubectl delete node leader-n1 leader-n2 --ignore-not-found >/dev/null
  kubectl -n "$API_NS" delete lease smartnic-operator-leader --ignore-not-found >/dev/null
}
leader_test

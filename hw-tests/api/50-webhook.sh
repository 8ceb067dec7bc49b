# shellcheck shell=bash
# 5. The webhook for real: the deploy's ValidatingWebhookConfiguration, with each Service
# clientConfig turned into a url on 127.0.0.1 and a caBundle for a local certificate (signed by the
# cluster's CA), is called by the API server and refuses what only the webhook can judge: a policy
# whose VFs another policy already claims, a network in a namespace the policy does not admit.
# With the operator down, failurePolicy Fail refuses writes.
. "$HW/api/common.sh"
api_ensure_installed

wh_dir=$T_TMP/webhook
wh_port=$(api_free_port)
out=$(api_webhook_cert "$wh_dir") || fail "webhook serving certificate" "$out"

api_token_kubeconfig "$wh_dir/kubeconfig" "$API_NS" smartnic-operator
api_operator_start op50 "$wh_dir/kubeconfig" --leader-elect=false \
  --webhook-addr "127.0.0.1:$wh_port" --webhook-cert "$wh_dir/tls.crt" --webhook-key "$wh_dir/tls.key"
op50_pid=$OP_PID op50_log=$OP_LOG
if wait_for 60 curl -fsS "$OP_METRICS/readyz"; then
  ok "smartnic-operator serving the webhook on 127.0.0.1:$wh_port (caches filled)"
else
  fail "smartnic-operator serving the webhook" "$(tail -n 20 "$op50_log")"
fi

wh_cleanup() {
  api_webhook_off
  kubectl delete nicpolicy wh-a wh-b --ignore-not-found --wait=false
  kubectl delete namespace wh-allowed wh-other --ignore-not-found --wait=false
}
on_exit wh_cleanup

vwc=$(api_webhook_config ValidatingWebhookConfiguration "$wh_port")
if out=$(kubectl apply --server-side -f - <<<"$vwc" 2>&1); then
  ok "the deploy's webhook configuration, $(jq '.webhooks | length' <<<"$vwc") webhooks, url on 127.0.0.1 + caBundle"
else
  fail "the deploy's webhook configuration applied" "$out"
fi

# calls seen by the API server, per webhook (its own admission metrics)
wh_calls() {
  kubectl get --raw /metrics | awk -v n="name=\"$1\"" \
    '/^apiserver_admission_webhook_admission_duration_seconds_count\{/ && index($0, n) { c += $NF } END { print c + 0 }'
}

kubectl create namespace wh-allowed >/dev/null 2>&1
kubectl create namespace wh-other >/dev/null 2>&1
policy() {
  cat <<EOF
apiVersion: smartnic.io/v1alpha1
kind: NicPolicy
metadata: {name: $1}
spec:
  nodeSelector: {matchLabels: {gpu: "true"}}
  nicSelector: {vendor: "15b3", pfNames: ["$2"]}
  numVfs: 8
  resourceName: $3
  networkNamespaces: [wh-allowed]
EOF
}
policy wh-a 'ens1f0#0-3' vf_a >"$wh_dir/wh-a.yaml"
policy wh-b 'ens1f0#2-5' vf_b >"$wh_dir/wh-b.yaml"
policy wh-c 'ens1f1#0-1' vf_c >"$wh_dir/wh-c.yaml"
calls0=$(wh_calls nicpolicies.validate.smartnic.io)
# the API server may take a moment to pick the configuration up: retry while it cannot call it
if wait_for 20 kubectl create -f "$wh_dir/wh-a.yaml"; then
  ok "policy wh-a (VFs 0-3 of ens1f0) admitted"
else
  fail "policy wh-a admitted" "$(kubectl create -f "$wh_dir/wh-a.yaml" 2>&1)"
fi
expect_eq "the API server called the NicPolicy webhook" \
  "$([ "$(wh_calls nicpolicies.validate.smartnic.io)" -gt "$calls0" ] && echo yes)" yes

# the webhook judges from its watch cache: give wh-a a moment to get there (a dry run of wh-b
# is refused once it has)
wait_for 10 sh -c "! kubectl create --dry-run=server -f '$wh_dir/wh-b.yaml'"
out=$(kubectl create -f "$wh_dir/wh-b.yaml" 2>&1) && rc=0 || rc=$?
if [ "$rc" != 0 ] && grep -q 'admission webhook "nicpolicies.validate.smartnic.io" denied' <<<"$out" &&
  grep -q 'spec.nicSelector.pfNames\[0\]' <<<"$out" && grep -q 'wh-a' <<<"$out"; then
  ok "policy wh-b (VFs 2-5 of ens1f0, overlapping wh-a) refused by the webhook, naming the field and wh-a"
  diag "$out"
else
  fail "policy wh-b (overlapping wh-a) refused by the webhook" "$out"
fi

out=$(kubectl create -n wh-other -f - 2>&1 <<EOF
apiVersion: smartnic.io/v1alpha1
kind: NicNetwork
metadata: {name: net}
spec: {mode: sriov, resourceName: vf_a, ipam: {type: host-local, ranges: [[{subnet: 10.20.0.0/16}]]}}
EOF
) && rc=0 || rc=$?
if [ "$rc" != 0 ] && grep -q 'admission webhook "nicnetworks.validate.smartnic.io" denied' <<<"$out"; then
  ok "NicNetwork in a namespace policy wh-a does not admit refused by the webhook"
  diag "$out"
else
  fail "NicNetwork in a namespace policy wh-a does not admit refused by the webhook" "$out"
fi

# only the webhook judges these: the schema and the CEL rules alone accept them
api_webhook_off
check "without the webhook the server itself accepts wh-b (only the webhook can judge it)" \
  kubectl create --dry-run=server -f "$wh_dir/wh-b.yaml"
kubectl apply --server-side -f - <<<"$vwc" >/dev/null

# failurePolicy Fail: with the operator down, no policy gets in unchecked
api_operator_stop "$op50_pid"
out=$(kubectl create --dry-run=server -f "$wh_dir/wh-c.yaml" 2>&1) && rc=0 || rc=$?
if [ "$rc" != 0 ] && grep -qi 'failed calling webhook' <<<"$out"; then
  ok "webhook down: the write is refused (failurePolicy Fail)"
else
  fail "webhook down: the write is refused (failurePolicy Fail)" "$out"
fi
wh_cleanup >/dev/null 2>&1

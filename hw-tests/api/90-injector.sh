# shellcheck shell=bash
# 9. The network-resources injector for real: the deploy's MutatingWebhookConfiguration, its
# Service clientConfig turned into a url on 127.0.0.1 with a caBundle for a local certificate, is
# called by the API server on pod creation (server-side dry runs: admission runs in full, nothing
# is stored). A pod naming a NAD that carries k8s.v1.cni.cncf.io/resourceName gets the resource
# as request and limit, summed over its networks; a value the pod set is kept; a namespace
# labelled smartnic.io/network-resources-injector=disabled and
# NicOperatorConfig.spec.features.networkResourcesInjector=false leave the pod unchanged.
. "$HW/api/common.sh"
api_ensure_installed

inj_dir=$T_TMP/injector
inj_port=$(api_free_port)
out=$(api_webhook_cert "$inj_dir") || fail "injector serving certificate" "$out"

inj_cleanup() {
  api_webhook_off
  kubectl delete nicoperatorconfig default --ignore-not-found --wait=false
  kubectl delete namespace inj-a inj-off --ignore-not-found --wait=false
}
on_exit inj_cleanup

for ns in inj-a inj-off; do
  kubectl create namespace "$ns" >/dev/null 2>&1
  # pods need their service account; without a controller-manager nobody else makes it
  kubectl -n "$ns" create serviceaccount default >/dev/null 2>&1
done
kubectl label namespace inj-off smartnic.io/network-resources-injector=disabled --overwrite >/dev/null
nad() {
  kubectl apply --server-side -f - >/dev/null <<EOF
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: $2
  namespace: $1
  annotations: {k8s.v1.cni.cncf.io/resourceName: $3}
spec: {config: '{"cniVersion":"1.0.0","name":"$2","type":"smartnic"}'}
EOF
}
nad inj-a fast-a smartnic.io/fast
nad inj-a fast-b smartnic.io/fast
nad inj-off fast-a smartnic.io/fast

api_token_kubeconfig "$inj_dir/kubeconfig" "$API_NS" smartnic-operator
api_operator_start op90 "$inj_dir/kubeconfig" --leader-elect=false \
  --webhook-addr "127.0.0.1:$inj_port" --webhook-cert "$inj_dir/tls.crt" --webhook-key "$inj_dir/tls.key"
op90_pid=$OP_PID op90_log=$OP_LOG
if wait_for 60 curl -fsS "$OP_METRICS/readyz"; then
  ok "smartnic-operator serving the webhooks on 127.0.0.1:$inj_port (caches filled)"
else
  fail "smartnic-operator serving the webhooks" "$(tail -n 20 "$op90_log")"
fi

mwc=$(api_webhook_config MutatingWebhookConfiguration "$inj_port")
if out=$(kubectl apply --server-side -f - <<<"$mwc" 2>&1); then
  ok "the deploy's MutatingWebhookConfiguration, url on 127.0.0.1 + caBundle"
else
  fail "the deploy's MutatingWebhookConfiguration applied" "$out"
fi

# pod NS NETWORKS [RESOURCES-JSON]: the first container's resources after admission (dry run)
pod_resources() {
  local res=${3:-'{}'}
  kubectl create --dry-run=server -o json -f - <<EOF | jq -c '.spec.containers[0].resources'
{"apiVersion": "v1", "kind": "Pod",
 "metadata": {"generateName": "inj-", "namespace": "$1",
              "annotations": {"k8s.v1.cni.cncf.io/networks": "$2"}},
 "spec": {"containers": [{"name": "main", "image": "registry.invalid/app:1",
                          "resources": $res}]}}
EOF
}
want='{"limits":{"smartnic.io/fast":"2"},"requests":{"smartnic.io/fast":"2"}}'
# resources of hw-tests/api/injector-pod.json (networks: fast-a) after admission in inj-a
fixture_resources() {
  kubectl create --dry-run=server -o json -n inj-a -f "$HW/api/injector-pod.json" |
    jq -c '.spec.containers[0].resources'
}
injected() { [ "$(fixture_resources)" = '{"limits":{"smartnic.io/fast":"1"},"requests":{"smartnic.io/fast":"1"}}' ]; }
# the API server may take a moment to pick the configuration up
if wait_for 20 injected; then
  ok "the API server called the injector"
else
  fail "the API server called the injector" "$(fixture_resources 2>&1; tail -n 20 "$op90_log")"
fi
expect_eq "a pod naming two NADs of smartnic.io/fast gets 2 as request and limit" \
  "$(pod_resources inj-a 'fast-a, fast-b@net2')" "$want"
expect_eq "the JSON form of the annotation too" \
  "$(pod_resources inj-a '[{\"name\":\"fast-a\"},{\"name\":\"fast-b\",\"namespace\":\"inj-a\"}]')" "$want"
expect_eq "a limit the pod set is kept" \
  "$(pod_resources inj-a 'fast-a, fast-b' '{"limits":{"smartnic.io/fast":"5","cpu":"1"}}')" \
  '{"limits":{"cpu":"1","smartnic.io/fast":"5"},"requests":{"cpu":"1","smartnic.io/fast":"5"}}'
expect_eq "a namespace labelled smartnic.io/network-resources-injector=disabled is left alone" \
  "$(pod_resources inj-off 'fast-a')" '{}'
out=$(kubectl create --dry-run=server -o json -f - 2>&1 <<'EOF'
{"apiVersion": "v1", "kind": "Pod",
 "metadata": {"generateName": "inj-", "namespace": "inj-a",
              "annotations": {"k8s.v1.cni.cncf.io/networks": "fast-a, missing"}},
 "spec": {"containers": [{"name": "main", "image": "registry.invalid/app:1"}]}}
EOF
) || true
if grep -q 'inj-a/missing' <<<"$out" && grep -q 'no such NetworkAttachmentDefinition' <<<"$out"; then
  ok "a network without a NAD: the pod is admitted and kubectl shows a warning naming it"
else
  fail "a network without a NAD warned about" "$out"
fi

kubectl apply --server-side -f - >/dev/null <<'EOF'
apiVersion: smartnic.io/v1alpha1
kind: NicOperatorConfig
metadata: {name: default}
spec: {features: {networkResourcesInjector: false}}
EOF
# the webhook reads the switch from its watch cache
left_alone() { [ "$(fixture_resources)" = '{}' ]; }
if wait_for 20 left_alone; then
  ok "NicOperatorConfig features.networkResourcesInjector=false: the pod is left alone"
else
  fail "NicOperatorConfig features.networkResourcesInjector=false: the pod is left alone" \
    "$(pod_resources inj-a 'fast-a')"
fi

# failurePolicy Ignore: with the operator down, pods are still admitted (unchanged)
kubectl delete nicoperatorconfig default --ignore-not-found >/dev/null
api_operator_stop "$op90_pid"
if out=$(pod_resources inj-a 'fast-a' 2>&1) && [ "$out" = '{}' ]; then
  ok "injector down: the pod is admitted unchanged (failurePolicy Ignore)"
else
  fail "injector down: the pod is admitted unchanged (failurePolicy Ignore)" "$out"
fi
inj_cleanup >/dev/null 2>&1

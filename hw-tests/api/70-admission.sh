# shellcheck shell=bash
# 7. The admission policy (deploy/agent/admission-policy.yaml): a smartnic-agent token bound to a
# Pod on node A carries A's name (the token's node claim); with it the agent may write A's
# NicNodeState, metadata and status, and is refused B's, for every writing verb its RBAC grants
# (create, patch, server-side apply, status patch). It may not change the operator's parts of its
# own object (spec, drain grant), and a token without a node claim may write nothing.
. "$HW/api/common.sh"
api_ensure_installed

ad_dir=$T_TMP/admission
mkdir -p "$ad_dir"
ad_cleanup() {
  kubectl delete pod -n "$API_NS" agent-on-adm-a --grace-period=0 --force --ignore-not-found
  kubectl delete nicnodestate adm-a adm-b --ignore-not-found --wait=false
  kubectl delete node adm-a adm-b --ignore-not-found --wait=false
}
on_exit ad_cleanup

# two nodes (no kubernetes.io/os label: the DaemonSets stay off them) and the agent's pod on adm-a
kubectl apply --server-side -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata: {name: adm-a}
---
apiVersion: v1
kind: Node
metadata: {name: adm-b}
---
apiVersion: v1
kind: Pod
metadata: {name: agent-on-adm-a, namespace: $API_NS}
spec:
  nodeName: adm-a
  serviceAccountName: smartnic-agent
  containers: [{name: agent, image: smartnic-agent}]
EOF

api_token_kubeconfig "$ad_dir/a.kubeconfig" "$API_NS" smartnic-agent \
  --bound-object-kind Pod --bound-object-name agent-on-adm-a
api_token_kubeconfig "$ad_dir/unbound.kubeconfig" "$API_NS" smartnic-agent
expect_eq "agent token bound to a Pod on adm-a carries the node claim" \
  "$(KUBECONFIG=$ad_dir/a.kubeconfig kubectl auth whoami -o json 2>&1 |
    jq -r '.status.userInfo | "\(.username) \(.extra["authentication.kubernetes.io/node-name"][0])"' 2>&1)" \
  "system:serviceaccount:$API_NS:smartnic-agent adm-a"

# as_a KUBECONFIG ARGS...: kubectl as that agent; AD_OUT, AD_RC
as_agent() {
  local kc=$1
  shift
  AD_OUT=$(KUBECONFIG=$kc kubectl "$@" 2>&1) && AD_RC=0 || AD_RC=$?
}
# allowed WHAT KUBECONFIG ARGS...
allowed() {
  local what=$1
  shift
  as_agent "$@"
  if [ "$AD_RC" = 0 ]; then ok "$what"; else fail "$what" "$AD_OUT"; fi
}
# refused WHAT REGEX KUBECONFIG ARGS...: refused, with a message matching REGEX
refused() {
  local what=$1 re=$2
  shift 2
  as_agent "$@"
  if [ "$AD_RC" != 0 ] && grep -Eq "$re" <<<"$AD_OUT"; then ok "$what"; diag "$AD_OUT"; else fail "$what" "exit $AD_RC: $AD_OUT"; fi
}
state() {
  printf 'apiVersion: smartnic.io/v1alpha1\nkind: NicNodeState\nmetadata: {name: %s}\nspec: {}\n' "$1"
}
state adm-a >"$ad_dir/adm-a.yaml"
state adm-b >"$ad_dir/adm-b.yaml"
A=$ad_dir/a.kubeconfig
POLICY="ValidatingAdmissionPolicy 'smartnic-agent-own-node'"
NOT_B="$POLICY.*may write only NicNodeState adm-a, not adm-b"

allowed "create: its own NicNodeState adm-a" "$A" create -f "$ad_dir/adm-a.yaml"
refused "create: adm-b's refused by the policy" "$NOT_B" "$A" create -f "$ad_dir/adm-b.yaml"
kubectl create -f "$ad_dir/adm-b.yaml" >/dev/null 2>&1 # as admin: the object the next writes aim at

req='{"metadata":{"annotations":{"smartnic.io/drain-request":"test"}}}'
allowed "patch: adm-a's metadata (drain request)" "$A" patch nicnodestate adm-a --type merge -p "$req"
refused "patch: adm-b's refused" "$NOT_B" "$A" patch nicnodestate adm-b --type merge -p "$req"

apply() {
  printf 'apiVersion: smartnic.io/v1alpha1\nkind: NicNodeState\nmetadata:\n  name: %s\n  labels: {smartnic-test/applied: "true"}\n' "$1"
}
allowed "server-side apply: adm-a" "$A" apply --server-side --field-manager smartnic-agent -f <(apply adm-a)
refused "server-side apply: adm-b refused" "$NOT_B" "$A" apply --server-side --field-manager smartnic-agent -f <(apply adm-b)

# status by server-side apply, as the agent writes it (kubectl patch would first GET the status
# subresource, which the agent's RBAC does not grant and its code does not do)
status() {
  printf 'apiVersion: smartnic.io/v1alpha1\nkind: NicNodeState\nmetadata: {name: %s}\nstatus: {syncStatus: Succeeded}\n' "$1"
}
allowed "status apply: adm-a" "$A" apply --server-side --subresource status --field-manager smartnic-agent -f <(status adm-a)
refused "status apply: adm-b refused" "$NOT_B" "$A" apply --server-side --subresource status \
  --field-manager smartnic-agent -f <(status adm-b)

# verbs the agent's RBAC does not grant stay refused for either node
for n in adm-a adm-b; do
  refused "update (PUT) of $n: not granted" "forbidden" "$A" replace -f "$ad_dir/$n.yaml"
  refused "delete of $n: not granted" "forbidden" "$A" delete nicnodestate "$n"
done
# reads are not narrowed: with --tunnel-uplink the agent lists every node's tunnel endpoint
allowed "get/list of adm-b: reads are not narrowed (overlay peers)" "$A" get nicnodestate adm-b

# not even its own node: the operator's parts
refused "its own spec: refused" "$POLICY.*spec of a NicNodeState is the operator's" \
  "$A" patch nicnodestate adm-a --type merge -p '{"spec":{"rdmaMode":"shared"}}'
refused "its own drain grant: refused" "$POLICY.*drain-grant annotation is the operator's" \
  "$A" patch nicnodestate adm-a --type merge -p '{"metadata":{"annotations":{"smartnic.io/drain-grant":"yes"}}}'

# a token without the node claim (not bound to a pod) writes nothing
U=$ad_dir/unbound.kubeconfig
refused "unbound agent token: patch refused (no node claim)" "$POLICY.*carries no node name" \
  "$U" patch nicnodestate adm-a --type merge -p "$req"
refused "unbound agent token: status apply refused" "$POLICY.*carries no node name" \
  "$U" apply --server-side --subresource status --field-manager smartnic-agent -f <(status adm-a)

ad_cleanup >/dev/null 2>&1

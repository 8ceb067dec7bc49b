# shellcheck shell=bash
# Helpers shared by the hw-tests/api check files (sourced by them; not a check itself: its name has
# no number). Needs what hw-tests/suites/api.sh sets up: KUBECONFIG, K8S_API, K8S_CA, kubectl on
# PATH, REPO, T_TMP and lib.sh.
#
#   api_ensure_installed          CRDs, namespace, RBAC and admission policy of `deploy/` present,
#                                 and the NetworkAttachmentDefinition CRD the operator watches (a
#                                 check file run alone with SMARTNIC_API_ONLY still works)
#   api_webhook_aside             the deploy's ValidatingWebhookConfiguration taken out of the way
#                                 (its Service has no pods here); put back as it was when the
#                                 suite ends
#   api_sa_kubeconfig FILE SA [POD] [SECS]
#                                 a kubeconfig holding a TokenRequest token of smartnic-system/SA,
#                                 bound to Pod smartnic-system/POD when given (the token then
#                                 carries the pod's node, as a DaemonSet pod's does)
#   api_node NAME [LABEL=VALUE...]  a Node object (no kubelet behind it), labels set
#   api_agent_pod NODE            Pod smartnic-system/agent-NODE of ServiceAccount smartnic-agent
#                                 bound to NODE (never runs: there is no kubelet). Not labelled
#                                 like the DaemonSet's pods (it would adopt and delete it), and it
#                                 tolerates every taint as they do (a node without kubelet turns
#                                 unreachable; a deleted pod's token stops working)
#   api_free_port                 a free TCP port on 127.0.0.1
#   api_wait SECS CMD...          like wait_for, but reports how long it took in API_WAITED_MS
#   api_stop PID                  SIGTERM, then SIGKILL after 10 s

API_NS=smartnic-system

api_ensure_installed() {
  local out
  if ! kubectl get crd network-attachment-definitions.k8s.cni.cncf.io >/dev/null 2>&1; then
    api_nad_crd | kubectl apply --server-side -f - >/dev/null || return 1
    kubectl wait --for condition=Established --timeout 60s \
      crd/network-attachment-definitions.k8s.cni.cncf.io >/dev/null || return 1
  fi
  if kubectl get crd nicnodestates.smartnic.io >/dev/null 2>&1 \
    && kubectl -n "$API_NS" get serviceaccount smartnic-operator smartnic-agent >/dev/null 2>&1 \
    && kubectl get validatingadmissionpolicy smartnic-agent-own-node >/dev/null 2>&1; then
    return 0
  fi
  # cert-manager's kinds (the webhook certificate) are not served by a bare control plane: those
  # two objects are refused, everything else is applied.
  if ! out=$(kubectl apply --server-side --force-conflicts -k "$REPO/deploy" 2>&1); then
    if grep -i error <<<"$out" | grep -qv 'cert-manager.io\|no matches for kind'; then
      echo "$out" >&2
      return 1
    fi
  fi
  kubectl wait --for condition=Established --timeout 60s crd/nicnodestates.smartnic.io \
    crd/nicpolicies.smartnic.io crd/nicnetworks.smartnic.io crd/nicpools.smartnic.io \
    crd/nicoperatorconfigs.smartnic.io >/dev/null
}

# The NetworkAttachmentDefinition CRD as Multus publishes it (group k8s.cni.cncf.io, v1, spec.config
# a JSON string).
api_nad_crd() {
  cat <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: network-attachment-definitions.k8s.cni.cncf.io
spec:
  group: k8s.cni.cncf.io
  scope: Namespaced
  names:
    plural: network-attachment-definitions
    singular: network-attachment-definition
    kind: NetworkAttachmentDefinition
    shortNames: [net-attach-def]
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            metadata: {type: object}
            spec:
              type: object
              properties:
                config: {type: string}
EOF
}

API_WEBHOOK_SAVED=""
api_webhook_aside() {
  [ -n "$API_WEBHOOK_SAVED" ] && return 0
  API_WEBHOOK_SAVED=$T_TMP/webhook-saved.json
  if kubectl get validatingwebhookconfiguration smartnic-operator -o json >"$API_WEBHOOK_SAVED" 2>/dev/null; then
    kubectl delete validatingwebhookconfiguration smartnic-operator --wait >/dev/null
    # put it back (without the server's fields) when the suite ends
    on_exit "jq 'del(.metadata.resourceVersion,.metadata.uid,.metadata.creationTimestamp,.metadata.generation,.metadata.managedFields)' '$API_WEBHOOK_SAVED' | kubectl create -f -"
  fi
}

api_sa_kubeconfig() {
  local file=$1 sa=$2 pod=${3:-} secs=${4:-3600} token
  token=$(kubectl -n "$API_NS" create token "$sa" --duration "${secs}s" \
    ${pod:+--bound-object-kind Pod --bound-object-name "$pod"}) || return 1
  kubectl config --kubeconfig "$file" set-cluster test --server "$K8S_API" \
    --certificate-authority "$K8S_CA" --embed-certs >/dev/null
  kubectl config --kubeconfig "$file" set-credentials "$sa" --token "$token" >/dev/null
  kubectl config --kubeconfig "$file" set-context test --cluster test --user "$sa" >/dev/null
  kubectl config --kubeconfig "$file" use-context test >/dev/null
  chmod 600 "$file"
}

api_node() {
  local name=$1 l
  shift
  kubectl apply --server-side --field-manager hw-tests -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $name
  labels:
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
$(for l in "$@"; do echo "    ${l%%=*}: \"${l#*=}\""; done)
EOF
}

api_agent_pod() {
  kubectl apply --server-side --field-manager hw-tests -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: agent-$1
  namespace: $API_NS
  labels:
    hw-tests: agent
spec:
  nodeName: $1
  serviceAccountName: smartnic-agent
  automountServiceAccountToken: false
  tolerations:
    - operator: Exists
  containers:
    - name: agent
      image: smartnic-agent:test
EOF
}

api_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

api_wait() {
  local t0
  t0=$(now_ms)
  wait_for "$@"
  local rc=$?
  API_WAITED_MS=$(($(now_ms) - t0))
  return $rc
}

api_stop() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# api_operator NAME KUBECONFIG [ARGS...]: smartnic-operator in the background, identity NAME,
# no webhook, /metrics on a free port, log in $T_TMP/NAME.log. Sets API_PID and API_PORT; killed
# when the suite ends.
api_operator() {
  local name=$1 kc=$2
  shift 2
  API_PORT=$(api_free_port)
  KUBECONFIG=$kc RUST_LOG='' setsid smartnic-operator --no-webhook --namespace "$API_NS" \
    --identity "$name" --metrics-addr "127.0.0.1:$API_PORT" --log-level info,kube_runtime=warn "$@" \
    >"$T_TMP/$name.log" 2>&1 </dev/null &
  API_PID=$!
  on_exit "kill -KILL $API_PID 2>/dev/null; cp '$T_TMP/$name.log' \"\${SUITE_OUT:-/nonexistent}/\" 2>/dev/null"
}

# api_agent NODE FIXTURE [ARGS...]: smartnic-agent for Node NODE on a copy of
# examples/hosts/FIXTURE (its --host-root; state and device-plugin files next to it), under a
# smartnic-agent token bound to Pod agent-NODE on NODE (api_agent_pod). Log in
# $T_TMP/agent-NODE.log. Sets API_PID and API_PORT.
api_agent() {
  local node=$1 fixture=$2 root=$T_TMP/hosts/$1
  shift 2
  mkdir -p "$T_TMP/hosts"
  [ -d "$root" ] || cp -a "$REPO/examples/hosts/$fixture" "$root"
  api_agent_pod "$node" || return 1
  api_sa_kubeconfig "$T_TMP/agent-$node.kubeconfig" smartnic-agent "agent-$node" || return 1
  API_PORT=$(api_free_port)
  KUBECONFIG=$T_TMP/agent-$node.kubeconfig RUST_LOG='' setsid smartnic-agent --node-name "$node" \
    --host-root "$root" --state-file "$root/agent-state.json" \
    --device-plugin-file "$root/device-plugin.json" --cni-allow-list-file "$root/cni-allow-list.json" \
    --metrics-addr "127.0.0.1:$API_PORT" \
    --log-level info,kube_runtime=warn "$@" >"$T_TMP/agent-$node.log" 2>&1 </dev/null &
  API_PID=$!
  on_exit "kill -KILL $API_PID 2>/dev/null; cp '$T_TMP/agent-$node.log' \"\${SUITE_OUT:-/nonexistent}/\" 2>/dev/null"
}

# api_writes: the API server's write requests so far (apiserver_request_total, verbs POST, PUT,
# PATCH, APPLY, DELETE, DELETECOLLECTION), one line per group/resource/subresource and verb:
#   COUNT GROUP/RESOURCE[/SUBRESOURCE] VERB
api_writes() {
  kubectl get --raw /metrics | awk '
    function lab(name) {
      if (match($0, "[{,]" name "=\"[^\"]*\"")) return substr($0, RSTART + length(name) + 3, RLENGTH - length(name) - 4)
      return ""
    }
    /^apiserver_request_total\{/ {
      v = lab("verb")
      if (v !~ /^(POST|PUT|PATCH|APPLY|DELETE|DELETECOLLECTION)$/) next
      g = lab("group"); s = lab("subresource")
      c[(g == "" ? "core" : g) "/" lab("resource") (s == "" ? "" : "/" s) " " v] += $NF
    }
    END { for (k in c) print c[k], k }' | sort -k2
}

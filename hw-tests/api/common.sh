# shellcheck shell=bash
# Helpers for the api check files (hw-tests/api/NN-*.sh), which source this file. Needs lib.sh
# and what suites/api.sh exports (KUBECONFIG, K8S_API, K8S_CA, K8S_PKI, kubectl on PATH, HW,
# REPO).
#
# State between the check files: after 10-install the deploy is installed (with its
# prerequisites) and its Validating- and MutatingWebhookConfiguration are removed, because its Service has no
# pods here; a file that needs the webhook puts it back pointed at an operator it runs itself and
# removes it again when it is done. Each file deletes the objects and stops the processes it
# made, so the next one starts from the bare install.

API_NS=smartnic-system
API_WEBHOOK=smartnic-operator
# cert-manager's CRDs (Issuer, Certificate: deploy/operator/webhook-certificate.yaml uses them)
# come from cert-manager's own Go module at this release, through the Go module proxy.
CERT_MANAGER_MODULE=github.com/cert-manager/cert-manager
CERT_MANAGER_VERSION=v1.21.2

# api_free_port [TAKEN...]: a free TCP port on 127.0.0.1.
api_free_port() {
  python3 - "$@" <<'PY'
import socket, sys
taken = set(sys.argv[1:])
while True:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    if str(port) not in taken:
        print(port)
        break
PY
}

# api_prereqs: what deploy/ expects in a cluster before `kubectl apply -k deploy`: cert-manager's
# Issuer and Certificate CRDs and Multus' NetworkAttachmentDefinition CRD (nad-crd.yaml).
# Prints what failed; returns non-zero then.
api_prereqs() {
  local dir
  dir=$(cd "$T_TMP" && GOFLAGS=-mod=readonly GOTOOLCHAIN=local \
    go mod download -json "$CERT_MANAGER_MODULE@$CERT_MANAGER_VERSION" | jq -r '.Dir // empty') || true
  if [ -z "$dir" ] || [ ! -d "$dir/deploy/crds" ]; then
    echo "the Go module proxy did not serve $CERT_MANAGER_MODULE@$CERT_MANAGER_VERSION"
    return 1
  fi
  kubectl apply --server-side -f "$dir/deploy/crds/cert-manager.io_issuers.yaml" \
    -f "$dir/deploy/crds/cert-manager.io_certificates.yaml" -f "$HW/api/nad-crd.yaml" 2>&1 || return 1
  kubectl wait --for condition=Established --timeout 60s crd/issuers.cert-manager.io \
    crd/certificates.cert-manager.io crd/network-attachment-definitions.k8s.cni.cncf.io 2>&1
}

# api_crds: the names of the CRDs in deploy/crds (from the file names, one a line).
api_crds() {
  local f
  for f in "$REPO"/deploy/crds/*.smartnic.io.yaml; do basename "$f" .yaml; done
}

# api_webhook_off: removes the deploy's ValidatingWebhookConfiguration and the injector's
# MutatingWebhookConfiguration.
api_webhook_off() {
  kubectl delete validatingwebhookconfiguration "$API_WEBHOOK" --ignore-not-found >/dev/null
  kubectl delete mutatingwebhookconfiguration "$API_WEBHOOK" --ignore-not-found >/dev/null
}

# api_webhook_cert DIR: a serving certificate for 127.0.0.1 signed by the cluster's CA, as
# DIR/tls.crt and DIR/tls.key. Prints what failed; returns non-zero then.
api_webhook_cert() {
  local dir=$1
  mkdir -p "$dir"
  (
    cd "$dir" &&
      openssl req -newkey rsa:2048 -nodes -keyout tls.key -out tls.csr -subj /CN=smartnic-operator-webhook &&
      printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >tls.ext &&
      openssl x509 -req -in tls.csr -CA "$K8S_PKI/ca.crt" -CAkey "$K8S_PKI/ca.key" -CAcreateserial \
        -CAserial "$dir/ca.srl" -days 1 -extfile tls.ext -out tls.crt
  ) >"$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log"; return 1; }
}

# api_webhook_config KIND PORT: the deploy's object of KIND (ValidatingWebhookConfiguration,
# MutatingWebhookConfiguration) as JSON, each Service clientConfig turned into a url on
# 127.0.0.1:PORT with the cluster's CA as caBundle (the certificate of api_webhook_cert).
api_webhook_config() {
  kubectl kustomize "$REPO/deploy" | kubectl create --dry-run=client -o json -f - |
    jq --arg kind "$1" --arg ca "$(base64 -w0 <"$K8S_PKI/ca.crt")" --arg base "https://127.0.0.1:$2" '
    (.items // [.])[] | select(.kind == $kind)
    | del(.metadata.annotations["cert-manager.io/inject-ca-from"])
    | .webhooks |= map(.clientConfig = {url: ($base + .clientConfig.service.path), caBundle: $ca})'
}

# api_ensure_installed: for a check file run alone (SMARTNIC_API_ONLY): installs what 10-install
# would have, quietly, unless it is there.
api_ensure_installed() {
  kubectl get crd nicpolicies.smartnic.io >/dev/null 2>&1 && return 0
  api_prereqs >/dev/null || return 1
  kubectl apply --server-side -k "$REPO/deploy" >/dev/null 2>&1 || return 1
  # shellcheck disable=SC2046
  kubectl wait --for condition=Established --timeout 60s $(api_crds | sed 's|^|crd/|') >/dev/null || return 1
  api_webhook_off
}

# api_token_kubeconfig FILE NAMESPACE SERVICEACCOUNT [kubectl create token options...]: a
# kubeconfig that authenticates with a TokenRequest token of that ServiceAccount (1 h).
api_token_kubeconfig() {
  local file=$1 ns=$2 sa=$3 token
  shift 3
  token=$(kubectl -n "$ns" create token "$sa" --duration 1h "$@") || return 1
  KUBECONFIG=$file kubectl config set-cluster test --server "$K8S_API" \
    --certificate-authority "$K8S_CA" --embed-certs >/dev/null &&
    KUBECONFIG=$file kubectl config set-credentials "$sa" --token "$token" >/dev/null &&
    KUBECONFIG=$file kubectl config set-context test --cluster test --user "$sa" >/dev/null &&
    KUBECONFIG=$file kubectl config use-context test >/dev/null && chmod 600 "$file"
}

# api_operator_start NAME KUBECONFIG [ARGS...]: runs smartnic-operator in the background with
# that kubeconfig, its metrics on a free port (OP_METRICS=http://127.0.0.1:PORT), its log in
# $T_TMP/NAME.log (OP_LOG) and its pid in OP_PID; stopped when the suite ends at the latest.
api_operator_start() {
  local name=$1 kc=$2 port
  shift 2
  port=$(api_free_port)
  OP_LOG=$T_TMP/$name.log
  OP_METRICS=http://127.0.0.1:$port
  KUBECONFIG=$kc RUST_LOG=info,kube_runtime=warn setsid smartnic-operator \
    --metrics-addr "127.0.0.1:$port" --namespace "$API_NS" --identity "$name" "$@" \
    >"$OP_LOG" 2>&1 </dev/null &
  OP_PID=$!
  on_exit "kill -TERM $OP_PID"
}

# api_operator_stop PID: SIGTERM, then waits up to 15 s for the process to end.
api_operator_stop() {
  kill -TERM "$1" 2>/dev/null || return 0
  wait_for 15 sh -c "! kill -0 $1 2>/dev/null"
}

# api_forbidden_count RESOURCE...: how many requests the API server refused so far: every request
# no authorizer allowed (authorization_attempts_total other than allowed: an RBAC refusal ends
# there, before apiserver_request_total counts it), plus the 403 answers after authorization
# (admission, a terminating namespace) on the RESOURCEs given. The other 403s are the control
# plane's own (e.g. kube-root-ca.crt published into a namespace being deleted).
api_forbidden_count() {
  kubectl get --raw /metrics | awk -v list=" $* " '
    /^authorization_attempts_total\{/ && !/result="allowed"/ { n += $NF }
    /^apiserver_request_total\{/ && /code="403"/ {
      match($0, /resource="[^"]*"/); r = substr($0, RSTART + 10, RLENGTH - 11)
      if (index(list, " " r " ")) n += $NF
    }
    END { print n + 0 }'
}

# api_granted_resources: the resources (without subresource) the Roles/ClusterRoles on stdin
# (kubectl get -o json, one after another) name.
api_granted_resources() {
  jq -r '.rules[].resources[]' | cut -d/ -f1 | sort -u | tr '\n' ' '
}

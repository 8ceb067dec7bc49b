# shellcheck shell=bash
# The host half of a lab run whose suite says "# needs-cluster" (the `cluster` suite): sourced by
# hw-tests/run.
#
# Before the guest boots, lab_cluster_up starts a control plane on this machine's loopback
# (hw-tests/cluster up) with the prerequisites a user has (Multus' NetworkAttachmentDefinition CRD,
# cert-manager's CRDs) and makes the guest's credentials; the suite installs the project from the
# guest, as a user would, once the node has imported our images. The guest reaches the API server
# only through QEMU's forwarding: a guest connection to 10.0.2.100:6443 becomes a connection to
# 127.0.0.1:<API port> on this machine (user networking with restrict=on, so nothing else is
# reachable), and the API server reaches the guest's kubelet (logs, exec) on 127.0.0.1:<kubelet
# port> and the operator's webhook on 127.0.0.1:<webhook port>, both forwarded into the guest.
# lab_cluster_down stops everything and keeps the component logs with the results.
#
# What the guest gets, in the run share (/lab/cluster):
#   env                      LAB_NODE, LAB_KUBELET_PORT, LAB_WEBHOOK_PORT, LAB_API (https://10.0.2.100:6443)
#   admin.kubeconfig         cluster admin, for the suite's kubectl and helm
#   kubelet.kubeconfig, serving.crt, serving.key, ca.crt   the node's (hw-tests/cluster node)
#   multus.kubeconfig        Multus' identity (client certificate, ClusterRole multus)
#   webhook/tls.crt, tls.key, ca.crt   the webhook's serving certificate for 127.0.0.1 (no
#                            cert-manager here), signed by the cluster CA

LAB_NODE=smartnic-lab
LAB_API_GUEST_IP=10.0.2.100
LAB_API_GUEST_PORT=6443
LAB_CLUSTER_NS=smartnic-system

lab_cluster_log() { echo "lab-cluster: $*" >&2; }

# lab_cluster_cert_kubeconfig FILE CN GROUP: a kubeconfig with a client certificate signed by the
# cluster CA, for the guest's view of the API server.
lab_cluster_cert_kubeconfig() {
  local file=$1 cn=$2 group=$3 d
  d=$(mktemp -d)
  (
    cd "$d" && umask 077 &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout c.key -out c.csr \
        -subj "/O=$group/CN=$cn" &&
      printf 'extendedKeyUsage=clientAuth\n' >c.ext &&
      openssl x509 -req -in c.csr -CA "$K8S_PKI/ca.crt" -CAkey "$K8S_PKI/ca.key" -CAserial "$d/ca.srl" \
        -CAcreateserial -days 1 -extfile c.ext -out c.crt
  ) >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; rm -rf "$d"; return 1; }
  (
    umask 077
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://$LAB_API_GUEST_IP:$LAB_API_GUEST_PORT
    tls-server-name: localhost
    certificate-authority-data: $(base64 -w0 <"$K8S_CA")
users:
- name: $cn
  user:
    client-certificate-data: $(base64 -w0 <"$d/c.crt")
    client-key-data: $(base64 -w0 <"$d/c.key")
contexts:
- name: lab
  context: {cluster: lab, user: $cn}
current-context: lab
EOF
  )
  rm -rf "$d"
}

# lab_cluster_free_port: a free TCP port on 127.0.0.1.
lab_cluster_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# lab_cluster_up DIR SHARE LOGDIR: the control plane in DIR, the guest's files in SHARE/cluster;
# sets LAB_CLUSTER_QEMU (the QEMU arguments of the forwarding NIC). Returns non-zero, with what
# failed on stderr, when anything did not come up.
lab_cluster_up() {
  local dir=$1 share=$2 logdir=$3 out
  LAB_CLUSTER_DIR=$dir LAB_CLUSTER_LOGS=$logdir
  command -v socat >/dev/null || { lab_cluster_log "socat is not installed (QEMU's forward to the API server runs it; .ci/run installs it)"; return 1; }
  if ! out=$("$LAB_HW/cluster" up "$dir" 2>&1); then
    printf '%s\n' "$out" >&2
    return 1
  fi
  grep '^cluster:' <<<"$out" | sed 's/^/lab-cluster: /' >&2
  eval "$("$LAB_HW/cluster" env "$dir")"
  export KUBECONFIG PATH="$K8S_BIN:$PATH"
  local g=$share/cluster
  mkdir -p "$g"
  # The prerequisites (hw-tests/api/common.sh: cert-manager's CRDs from its Go module, Multus'
  # NetworkAttachmentDefinition CRD). `kubectl wait` right after an apply can find a CRD without
  # status yet ("accessor error"): tried again.
  local T_TMP=$dir HW=$LAB_HW REPO
  REPO=$(dirname "$LAB_HW")
  # shellcheck source=../api/common.sh
  . "$LAB_HW/api/common.sh"
  local i
  for i in 1 2 3; do out=$(api_prereqs 2>&1) && break; sleep 2; done
  [ "$i" != 3 ] || api_prereqs >/dev/null 2>&1 || { lab_cluster_log "prerequisites: $out"; return 1; }
  out=$(api_webhook_cert "$g/webhook") || { lab_cluster_log "webhook certificate: $out"; return 1; }
  cp "$K8S_PKI/ca.crt" "$g/webhook/ca.crt"
  rm -f "$g/webhook/tls.csr" "$g/webhook/tls.ext" "$g/webhook/ca.srl" "$g/webhook/openssl.log"

  "$LAB_HW/cluster" node "$dir" "$LAB_NODE" --server "https://$LAB_API_GUEST_IP:$LAB_API_GUEST_PORT" >/dev/null \
    || { lab_cluster_log "hw-tests/cluster node failed"; return 1; }
  cp "$dir/nodes/$LAB_NODE"/* "$g/"
  lab_cluster_cert_kubeconfig "$g/admin.kubeconfig" smartnic-lab-admin system:masters || return 1
  # Multus' identity: what its own deployment grants its ServiceAccount (pods get and patch for the
  # network-status annotation, NetworkAttachmentDefinitions get, events).
  lab_cluster_cert_kubeconfig "$g/multus.kubeconfig" multus smartnic-lab:multus || return 1
  kubectl apply --server-side --field-manager hw-tests -f - >/dev/null <<'EOF' || { lab_cluster_log "multus RBAC"; return 1; }
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: multus
rules:
  - apiGroups: [k8s.cni.cncf.io]
    resources: ["*"]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [pods, pods/status]
    verbs: [get, list, watch, update, patch]
  - apiGroups: ["", events.k8s.io]
    resources: [events]
    verbs: [create, patch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: multus
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: multus}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: multus}
EOF

  LAB_KUBELET_PORT=$(lab_cluster_free_port)
  LAB_WEBHOOK_PORT=$(lab_cluster_free_port)
  cat >"$g/env" <<EOF
LAB_NODE=$LAB_NODE
LAB_KUBELET_PORT=$LAB_KUBELET_PORT
LAB_API=https://$LAB_API_GUEST_IP:$LAB_API_GUEST_PORT
LAB_API_GUEST_IP=$LAB_API_GUEST_IP
LAB_CLUSTER_NS=$LAB_CLUSTER_NS
LAB_WEBHOOK_PORT=$LAB_WEBHOOK_PORT
EOF
  # One connection from the guest to 10.0.2.100:6443 = one socat to the API server's loopback
  # port. The kubelet's and the webhook's ports are forwarded from this machine's loopback only.
  LAB_CLUSTER_QEMU=(-netdev "user,id=mgmt,restrict=on,net=10.0.2.0/24,host=10.0.2.2,guestfwd=tcp:$LAB_API_GUEST_IP:$LAB_API_GUEST_PORT-cmd:socat STDIO TCP:127.0.0.1:$K8S_API_PORT,hostfwd=tcp:127.0.0.1:$LAB_KUBELET_PORT-:$LAB_KUBELET_PORT,hostfwd=tcp:127.0.0.1:$LAB_WEBHOOK_PORT-:$LAB_WEBHOOK_PORT"
    -device "virtio-net-pci,netdev=mgmt,mac=52:54:00:5a:01:01")
  lab_cluster_log "control plane up; the guest reaches the API server at $LAB_API_GUEST_IP:$LAB_API_GUEST_PORT, kubelet forwarded on 127.0.0.1:$LAB_KUBELET_PORT, webhook on 127.0.0.1:$LAB_WEBHOOK_PORT"
}

# lab_cluster_down: stops the control plane; the logs go to LOGDIR.
lab_cluster_down() {
  [ -n "${LAB_CLUSTER_DIR:-}" ] || return 0
  "$LAB_HW/cluster" down "$LAB_CLUSTER_DIR" --save-logs "$LAB_CLUSTER_LOGS" >/dev/null 2>&1 || true
  LAB_CLUSTER_DIR=""
}

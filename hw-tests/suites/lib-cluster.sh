# shellcheck shell=bash
# The lab's Kubernetes node, shared by the suites that say "# needs-cluster" (cluster, dra);
# sourced after lib.sh. hw-tests/run has started a control plane on the host
# (hw-tests/lab/cluster-host.sh) and shares into the guest: /lab/cluster (credentials, env), /k8s/bin
# (kubelet, kubectl), /node (containerd, runc, Multus, the pause and busybox images), /images (our
# images, deploy/images/build.sh) and /repo (this repository, for `kubectl apply -k /repo/deploy` and
# the Helm chart).
#
#   node_up                       section 0: the forwarding NIC, the API server's Service address,
#                                 containerd with every image imported, Multus, kubelet, Node Ready
#   install_smartnic kustomize|helm   the project as a user installs it, plus what this lab needs
#                                 (below), then waits for every pod to run
#   uninstall_smartnic kustomize|helm  `kubectl delete -k` / `helm uninstall`, then checks the node
#                                 is as before the install
#
# What the lab adds to a user's install, because the control plane runs on the host and this node
# is reached only through QEMU's forwards:
#   - kube-proxy's one job here: pods reach the `kubernetes` Service (10.0.0.1:443, the address
#     in-cluster clients use) through a socat on this node that connects to QEMU's forward of the API
#     server; no other Service is used by our components.
#   - the webhook: there is no cert-manager, so the serving certificate is a Secret made on the host
#     (webhook certificate source "secret"), and the API server on the host reaches the webhook
#     through QEMU's forward of 127.0.0.1:<port> into this node, where a socat connects to an
#     operator pod: the webhook configurations get that URL instead of the Service.

# The suite sets SUITE_NAME before sourcing this file.
if [ "${SMARTNIC_LAB_GUEST:-0}" != 1 ] || [ ! -f /lab/cluster/env ]; then
  fail "the $SUITE_NAME suite runs in the lab guest" "run it with hw-tests/run $SUITE_NAME (it starts the control plane on the host)"
  summary
fi
have_jq || { fail "jq (or gojq) is installed"; summary; }
# shellcheck source=lib.sh
set -a
. /lab/cluster/env
set +a
export KUBECONFIG=/lab/cluster/admin.kubeconfig PATH=/k8s/bin:/node/bin:$PATH
NODE=$LAB_NODE
SNS=$LAB_CLUSTER_NS
W=$T_TMP/cluster
mkdir -p "$W"
LOGS=${SUITE_OUT:-$W}/$SUITE_NAME
mkdir -p "$LOGS"
PF1=${SMARTNIC_TEST_PF:-} PF2=""
for d in /sys/bus/pci/drivers/igb/0000:*/net/*; do
  [ -e "$d" ] && [ "${d##*/}" != "$PF1" ] && { PF2=${d##*/}; break; }
done
# pf_sriov: both PFs' VF count and VF autoprobe, the SR-IOV state an uninstall must give back.
pf_sriov() {
  local p
  for p in "$PF1" "$PF2"; do
    printf '%s:%s/%s ' "$p" "$(cat "/sys/class/net/$p/device/sriov_numvfs")" "$(cat "/sys/class/net/$p/device/sriov_drivers_autoprobe")"
  done
}

# kubectl, with a timeout on every request.
k() { kubectl --request-timeout 60s "$@"; }
kj() { k "$@" -o json; }
pod_phase() { k -n "$2" get pod "$1" -o jsonpath='{.status.phase}' 2>/dev/null; }
# klog NAME: the last lines of a component's log (its DaemonSet or Deployment in $SNS).
klog() {
  local kind=daemonset
  [ "$1" = smartnic-operator ] && kind=deployment
  k -n "$SNS" logs "$kind/$1" --all-containers --tail 15 2>&1 | cut -c1-400
}

pids=()
# Each background process leads its own process group (setsid): the group goes, children too.
on_exit 'for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done; sleep 1; for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done'
# bg NAME CMD...: a long-running process of the node, its output in LOGS/NAME.log.
bg() {
  local name=$1
  shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  pids+=($!)
  eval "PID_${name//-/_}=$!"
}
log_tail() { tail -n 15 "$LOGS/$1.log" 2>/dev/null; }
# stop_bg NAME: stops a process bg started.
stop_bg() {
  local v="PID_${1//-/_}"
  [ -n "${!v:-}" ] || return 0
  kill -TERM -- "-${!v}" 2>/dev/null
  wait_for 10 sh -c "! kill -0 ${!v} 2>/dev/null"
  kill -KILL -- "-${!v}" 2>/dev/null
  eval "PID_${1//-/_}="
  return 0
}

ctr_() { ctr --address /run/containerd/containerd.sock -n k8s.io "$@"; }

start_kubelet() {
  bg kubelet kubelet --config /etc/kubernetes/kubelet.yaml --kubeconfig /lab/cluster/kubelet.kubeconfig \
    --hostname-override "$NODE" --cloud-provider external --v 2 \
    --node-labels smartnic.io/lab=true
}

# The files and directories our components may write on a node (crds/src/host_paths.rs has the
# same list: the agent's uninstall empties these). The directories stay, empty: the kubelet made
# them as the pods' mount points.
OUR_HOST_PATHS="/opt/cni/bin/smartnic /opt/cni/bin/.smartnic-uninstalling /var/lib/smartnic /run/smartnic
 /etc/smartnic /var/log/smartnic /var/run/k8s.cni.cncf.io/devinfo/dp /var/lib/kubelet/plugins/smartnic.io
 /var/lib/kubelet/plugins_registry/smartnic.io-reg.sock"
# our_leftovers: what is left of our host paths (CDI specs and device-plugin sockets by name).
our_leftovers() {
  local p
  for p in $OUR_HOST_PATHS; do
    if [ -d "$p" ]; then
      find "$p" -mindepth 1 2>/dev/null | head -n 5
    elif [ -e "$p" ] || [ -L "$p" ]; then
      echo "$p"
    fi
  done
  ls -d /var/run/cdi/smartnic* /etc/cdi/smartnic* /var/lib/kubelet/device-plugins/smartnic* 2>/dev/null
}

node_up() {
  section "0 the node: network to the host, containerd, kubelet, Multus"
  [ -n "$PF1" ] && [ -n "$PF2" ] || { fail "two igb PFs" "found '$PF1' '$PF2'"; summary; }
  local mgmt="" d
  for d in /sys/class/net/*; do
    [ "$(cat "$d/address" 2>/dev/null)" = 52:54:00:5a:01:01 ] && mgmt=${d##*/}
  done
  if [ -n "$mgmt" ] && ip addr add 10.0.2.15/24 dev "$mgmt" && ip link set "$mgmt" up; then
    ok "the forwarding NIC $mgmt is 10.0.2.15/24 (no default route: only QEMU's forwards answer)"
  else
    fail "the forwarding NIC is up" "no netdev with 52:54:00:5a:01:01"
    summary
  fi
  if wait_for 60 kubectl --request-timeout 5s get --raw /readyz; then
    ok "the API server answers through QEMU's forward ($LAB_API)"
  else
    fail "the API server answers through QEMU's forward" "$(kubectl --request-timeout 5s get --raw /readyz 2>&1)"
    summary
  fi
  # The `kubernetes` Service as kube-proxy would serve it: its ClusterIP on this node, forwarded to
  # QEMU's forward of the API server. The serving certificate names 10.0.0.1.
  ip link add kube-svc type dummy && ip addr add 10.0.0.1/32 dev kube-svc && ip link set kube-svc up
  bg kube-svc socat "TCP-LISTEN:443,bind=10.0.0.1,reuseaddr,fork" "TCP:$LAB_API_GUEST_IP:6443"
  if wait_for 20 sh -c "kubectl --server https://10.0.0.1:443 --request-timeout 5s get --raw /readyz"; then
    ok "the kubernetes Service (10.0.0.1:443) reaches the API server from this node"
  else
    fail "the kubernetes Service (10.0.0.1:443) reaches the API server" "$(log_tail kube-svc)"
    summary
  fi

  # cgroup v2 controllers for the kubelet's QoS hierarchy.
  local c
  for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; done
  mkdir -p /etc/containerd /var/lib/containerd /run/containerd /var/lib/kubelet /etc/kubernetes \
    /opt/cni/bin /etc/cni/net.d /var/lib/cni /var/log/pods /etc/smartnic
  # Memory-backed like the rest of the guest, but a real mount: overlayfs wants its upper layer
  # on a file system of its own kind (the initramfs root is "rootfs").
  mount -t tmpfs -o size=1600m tmpfs /var/lib/containerd
  mount -t tmpfs tmpfs /var/lib/kubelet
  # Mount propagation as on a systemd host, where every mount is shared: the agent's DaemonSet
  # mounts /run/netns with HostToContainer propagation, which the runtime refuses under a private
  # mount (the initramfs's are).
  local m
  for m in / /run /sys /var/lib/kubelet; do mount --make-rshared "$m" 2>/dev/null; done
  # No name server: nothing in this node resolves or reaches a name (no image is ever pulled).
  echo "# none" >/etc/resolv.conf
  echo "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" >/etc/machine-id

  cat >/etc/containerd/config.toml <<EOF
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "smartnic.local/pause:3.10"
[plugins.'io.containerd.cri.v1.runtime']
  enable_cdi = true
  cdi_spec_dirs = ["/etc/cdi", "/var/run/cdi"]
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "/node/bin/runc"
        SystemdCgroup = false
        # The guest's root is the initramfs, which pivot_root cannot leave.
        NoPivotRoot = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/opt/cni/bin"]
    conf_dir = "/etc/cni/net.d"
    max_conf_num = 1
EOF
  T_NODE0=$(now_ms)
  bg containerd containerd --config /etc/containerd/config.toml --log-level info
  if wait_for 60 ctr --address /run/containerd/containerd.sock version; then
    ok "containerd $(ctr --address /run/containerd/containerd.sock version 2>/dev/null | awk '/Server:/ { s = 1 } s && /Version:/ { print $2; exit }') runs (runc $(/node/bin/runc --version | awk 'NR == 1 { print $3 }'))"
  else
    fail "containerd runs" "$(log_tail containerd)"
    summary
  fi
  local imp=0 t
  for t in /node/images/pause.tar /node/images/busybox.tar /images/*.tar; do
    [ -e "$t" ] || { echo "missing $t" >>"$LOGS/images.log"; imp=1; continue; }
    # Unpacked now, not at the first container start: the agent's image is 160 MB, and its
    # unpack under emulation can outlast the kubelet's 2-minute CreateContainer deadline.
    ctr_ images import "$t" >>"$LOGS/images.log" 2>&1 || imp=1
  done
  if [ "$imp" = 0 ] && ctr_ images ls -q | grep -q '^smartnic.local/pause:3.10$'; then
    ok "images imported from tarballs: $(ctr_ images ls -q | grep -v '^sha256:' | sed 's|^docker.io/library/||' | tr '\n' ' ')"
  else
    fail "images imported from tarballs" "$(tail -n 5 "$LOGS/images.log")"
    summary
  fi

  # The CNI: Multus (thin plugin) with ptp as the default network; our plugin comes from its
  # installer DaemonSet.
  cp /node/bin/multus /lab/cni-ref/ptp /lab/cni-ref/host-local /lab/cni-ref/loopback /opt/cni/bin/
  mkdir -p /etc/cni/net.d/multus.d
  # The thin plugin gives each API request 250 ms (2.5 s in all) and makes a new TLS connection per
  # call; under emulation a handshake alone can take longer. So Multus reaches the API server
  # through `kubectl proxy` on the node's loopback, which holds one TLS connection under Multus's
  # own identity (its client certificate): the same requests, the same RBAC, no handshake per call.
  bg multus-proxy kubectl --kubeconfig /lab/cluster/multus.kubeconfig proxy --address 127.0.0.1 \
    --port 8001 --accept-hosts '^(127\.0\.0\.1|localhost)$'
  cat >/etc/cni/net.d/multus.d/multus.kubeconfig <<'EOF'
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: "http://127.0.0.1:8001"}
users:
- name: multus
contexts:
- name: lab
  context: {cluster: lab, user: multus}
current-context: lab
EOF
  wait_for 30 sh -c 'kubectl --kubeconfig /etc/cni/net.d/multus.d/multus.kubeconfig get --raw /readyz' \
    || fail "Multus' way to the API server (kubectl proxy on 127.0.0.1:8001)" "$(log_tail multus-proxy)"
  cat >/etc/cni/net.d/00-multus.conf <<'EOF'
{
  "cniVersion": "1.0.0",
  "name": "multus-cni-network",
  "type": "multus",
  "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig",
  "cniDir": "/var/lib/cni/multus",
  "binDir": "/opt/cni/bin",
  "delegates": [{
    "cniVersion": "1.0.0",
    "name": "default",
    "type": "ptp",
    "ipMasq": false,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}
EOF

  cat >/etc/kubernetes/kubelet.yaml <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 10.0.2.15
port: $LAB_KUBELET_PORT
readOnlyPort: 0
tlsCertFile: /lab/cluster/serving.crt
tlsPrivateKeyFile: /lab/cluster/serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: /lab/cluster/ca.crt}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
failSwapOn: false
# Device health reaches the Node object at this cadence (kubelet's default is 10 s).
nodeStatusUpdateFrequency: 1s
evictionHard: {memory.available: "20Mi"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: /etc/resolv.conf
registerNode: true
maxPods: 40
serializeImagePulls: false
EOF
  start_kubelet
  if wait_for 180 kubectl --request-timeout 5s get node "$NODE"; then
    ok "kubelet $(kubelet --version | awk '{ print $2 }') registered Node $NODE ($(( $(now_ms) - T_NODE0 )) ms after containerd started)"
  else
    fail "kubelet registers the Node" "$(log_tail kubelet)"
    summary
  fi
  # The kubelet leaves the addresses to a cloud provider (--cloud-provider external): this suite is
  # that provider. The API server dials 127.0.0.1:<kubelet port> on the host, QEMU's forward.
  k patch node "$NODE" --subresource status --type merge \
    -p '{"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"}]}}' >/dev/null
  k taint node "$NODE" node.cloudprovider.kubernetes.io/uninitialized- >/dev/null 2>&1
  if wait_for 180 sh -c "kubectl get node $NODE -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"; then
    ok "Node $NODE is Ready ($(( $(now_ms) - T_NODE0 )) ms after containerd started)"
  else
    fail "Node $NODE is Ready" "$(kubectl get node "$NODE" -o jsonpath='{.status.conditions}' 2>&1 | head -c 1500)"$'\n'"$(log_tail kubelet)"
    summary
  fi
  NUMVFS_BEFORE=$(pf_sriov)
  LEFT_BEFORE=$(our_leftovers)
}

# webhook_via_lab: the webhook configurations call the operator through QEMU's forward (see the
# header); the socat goes to the first Ready operator pod.
webhook_via_lab() {
  local ip kind patch ca
  ip=$(kj -n "$SNS" get pods -l app.kubernetes.io/name=smartnic-operator 2>/dev/null \
    | jq -r '[.items[] | select(.status.conditions[]? | .type == "Ready" and .status == "True") | .status.podIP][0] // empty')
  [ -n "$ip" ] || return 1
  stop_bg webhook-fwd
  bg webhook-fwd socat "TCP-LISTEN:$LAB_WEBHOOK_PORT,bind=10.0.2.15,reuseaddr,fork" "TCP:$ip:9443"
  ca=$(base64 -w0 </lab/cluster/webhook/ca.crt)
  for kind in validatingwebhookconfiguration mutatingwebhookconfiguration; do
    patch=$(kj get "$kind" smartnic-operator | jq -c --arg ca "$ca" --arg port "$LAB_WEBHOOK_PORT" \
      '[.webhooks | to_entries[] | {op: "replace", path: "/webhooks/\(.key)/clientConfig",
        value: {url: "https://127.0.0.1:\($port)\(.value.clientConfig.service.path // .value.clientConfig.url | sub("^https://[^/]*"; ""))", caBundle: $ca}}]') || return 1
    k patch "$kind" smartnic-operator --type json -p "$patch" >/dev/null || return 1
  done
}

# rolled_out: every DaemonSet of ours has its pods Ready (the device plugin's selects only nodes
# that a policy configures: none yet), the operator Deployment is Available.
rolled_out() {
  local ds
  for ds in $(k -n "$SNS" get daemonsets -o name); do
    [ "$(k -n "$SNS" get "$ds" -o jsonpath='{.status.numberReady}/{.status.desiredNumberScheduled}')" \
      = "$(k -n "$SNS" get "$ds" -o jsonpath='{.status.desiredNumberScheduled}/{.status.desiredNumberScheduled}')" ] || return 1
  done
  [ "$(k -n "$SNS" get deployment smartnic-operator -o jsonpath='{.status.readyReplicas}')" -ge 1 ] 2>/dev/null
}

# install_smartnic kustomize|helm
install_smartnic() {
  local how=$1 out t0
  t0=$(now_ms)
  # The namespace first, as deploy/README.md says for Helm (it keeps its release record there),
  # and the webhook's serving certificate from the host (no cert-manager in this lab).
  k create namespace "$SNS" >/dev/null 2>&1
  k label namespace "$SNS" pod-security.kubernetes.io/enforce=privileged --overwrite >/dev/null 2>&1
  k -n "$SNS" create secret tls smartnic-operator-webhook-tls --cert /lab/cluster/webhook/tls.crt \
    --key /lab/cluster/webhook/tls.key >/dev/null 2>&1
  case $how in
    kustomize)
      if out=$(k apply --server-side -k /repo/deploy 2>&1); then
        ok "kubectl apply --server-side -k deploy"
      else
        fail "kubectl apply --server-side -k deploy" "$out"
        summary
      fi
      ;;
    helm)
      # The certificate source `secret`: the Secret above, signed by the cluster CA.
      if out=$(helm install smartnic-operator /repo/deploy/helm/smartnic-operator --namespace "$SNS" \
        --set webhook.certificate.source=secret \
        --set "webhook.certificate.secret.caBundle=$(base64 -w0 </lab/cluster/webhook/ca.crt)" 2>&1); then
        ok "helm install smartnic-operator deploy/helm/smartnic-operator"
      else
        fail "helm install" "$out"
        summary
      fi
      ;;
  esac
  lab_breaks
  if wait_for 600 rolled_out; then
    ok "our pods run from our images: $(k -n "$SNS" get pods -o jsonpath='{range .items[*]}{.metadata.name}{" "}{end}') ($(( $(now_ms) - t0 )) ms)"
  else
    fail "our pods run from our images" "$(k -n "$SNS" get pods 2>&1)"$'\n'"$(k -n "$SNS" describe pods 2>&1 | grep -A3 -i 'warning\|error' | tail -n 12)"
    summary
  fi
  if wait_for 120 webhook_via_lab; then
    ok "the webhook configurations call an operator pod through QEMU's forward (127.0.0.1:$LAB_WEBHOOK_PORT)"
  else
    fail "the webhook is reachable from the API server" "$(log_tail webhook-fwd)"
  fi
  if wait_for 120 test -x /opt/cni/bin/smartnic; then
    ok "the installer put the smartnic CNI binary into /opt/cni/bin"
  else
    fail "the installer put the smartnic CNI binary into /opt/cni/bin" "$(klog smartnic-cni-installer)"
  fi
}

# lab_breaks: LAB_BREAK=registration points the device plugin at a directory the kubelet does not
# watch; LAB_BREAK=cni-add has the installer put the CNI binary where Multus does not look, so
# every ADD fails. Either must fail the suite at the check named for it.
lab_breaks() {
  case "${LAB_BREAK:-}" in
    registration)
      note "LAB_BREAK=registration: the device plugin looks for the kubelet elsewhere"
      k -n "$SNS" set env daemonset/smartnic-device-plugin LAB_BREAK=1 >/dev/null
      k -n "$SNS" patch daemonset smartnic-device-plugin --type json -p \
        '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--plugin-dir=/var/lib/smartnic/not-the-kubelet"}]' >/dev/null
      ;;
    cni-add)
      note "LAB_BREAK=cni-add: the CNI installer puts smartnic where Multus does not look"
      k -n "$SNS" patch daemonset smartnic-cni-installer --type json -p \
        '[{"op":"replace","path":"/spec/template/spec/volumes/0/hostPath/path","value":"/opt/not-cni/bin"}]' >/dev/null
      ;;
  esac
}

# save_pod_logs TAG: our pods' logs (every container, previous runs too) into LOGS.
save_pod_logs() {
  local p c
  for p in $(k -n "$SNS" get pods -o name 2>/dev/null); do
    for c in $(k -n "$SNS" get "$p" -o jsonpath='{.spec.initContainers[*].name} {.spec.containers[*].name}'); do
      k -n "$SNS" logs "$p" -c "$c" >"$LOGS/$1-${p#pod/}-$c.log" 2>&1
      k -n "$SNS" logs "$p" -c "$c" --previous >>"$LOGS/$1-${p#pod/}-$c.previous.log" 2>/dev/null || rm -f "$LOGS/$1-${p#pod/}-$c.previous.log"
    done
  done
}

# uninstall_smartnic kustomize|helm: the uninstall, then the node as before the install.
uninstall_smartnic() {
  local how=$1 out t0
  t0=$(now_ms)
  save_pod_logs "$how"
  stop_bg webhook-fwd
  case $how in
    kustomize) out=$(k delete -k /repo/deploy --wait=true --timeout 300s 2>&1) ;;
    helm) out=$(helm uninstall smartnic-operator --namespace "$SNS" --wait --timeout 300s 2>&1) ;;
  esac
  # shellcheck disable=SC2181
  if [ $? = 0 ]; then ok "$how: uninstalled"; else fail "$how: uninstall" "$out"; fi
  if wait_for 300 sh -c "! kubectl get pods -A --field-selector spec.nodeName=$NODE -o name | grep -q '^pod/smartnic'"; then
    ok "our pods are gone from the node ($(( $(now_ms) - t0 )) ms)"
  else
    fail "our pods are gone from the node" "$(k get pods -A 2>&1 | grep smartnic)"
  fi
  expect_eq "the PFs' VFs as before the install ($PF1 $PF2: sriov_numvfs, sriov_drivers_autoprobe)" \
    "$(pf_sriov)" "$NUMVFS_BEFORE"
  expect_eq "the CNI binary is gone from /opt/cni/bin" "$(ls /opt/cni/bin/smartnic 2>&1 >/dev/null | grep -c 'No such')" 1
  expect_eq "nothing of ours is left on the node ($OUR_HOST_PATHS, CDI specs, plugin sockets)" \
    "$(our_leftovers)" "$LEFT_BEFORE"
}

# vf_mailbox_diag PF: what the kernel shows of a PF and its VF mailbox when a VF in a pod has no
# carrier: the PF's interrupt counts, then a VF of the PF that no pod uses rebound by hand (before
# and after the PF's own down/up), each with the kernel messages it caused. Printed as diagnostics.
vf_mailbox_diag() {
  local pf=$1 dev vf
  dev=$(basename "$(readlink -f "/sys/class/net/$pf/device")")
  echo "# --- VF mailbox diagnostics for $pf ($dev)"
  echo "# autoprobe $(cat "/sys/bus/pci/devices/$dev/sriov_drivers_autoprobe") msi_irqs $(ls "/sys/bus/pci/devices/$dev/msi_irqs" 2>/dev/null | tr '\n' ' ')"
  grep -E "$pf|igbvf" /proc/interrupts | sed 's/^/# /'
  vf=""
  for l in /sys/bus/pci/devices/"$dev"/virtfn*; do
    [ -e "$l/net" ] && ls "$l/net" | grep -q '^eth' && { vf=$(basename "$(readlink -f "$l")"); }
  done
  [ -n "$vf" ] || { echo "# no VF of $pf on the host"; return 0; }
  local n
  for round in as-is pf-bounced; do
    if [ "$round" = pf-bounced ]; then ip link set "$pf" down; ip link set "$pf" up; sleep 3; fi
    n=$(dmesg | wc -l)
    echo "$vf" >"/sys/bus/pci/devices/$vf/driver/unbind" 2>/dev/null
    echo "$vf" >/sys/bus/pci/drivers/igbvf/bind 2>/dev/null
    sleep 2
    echo "# rebind $vf ($round):"
    dmesg | tail -n +"$((n + 1))" | sed 's/^/#   /'
    grep -E "$pf" /proc/interrupts | sed 's/^/#   /'
  done
}

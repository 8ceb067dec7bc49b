# shellcheck shell=bash
# 9.5 Uninstall: whether a SIGTERM is an uninstall, as the agent asks the API server with the
# deploy's RBAC. One smartnic-agent as the DaemonSet runs it (DAEMONSET_NAME smartnic-agent,
# POD_NAMESPACE smartnic-system, a smartnic-agent ServiceAccount token) on a copy of the igb
# example host (2 VFs, which its state file says it made from 0), with the host paths it empties
# under a directory of its own (--uninstall-root; the CNI binary directory holds `smartnic` and
# another plugin). No Node: the agent never gets to a pass, only its SIGTERM path runs.
#
#   restart   the DaemonSet live: SIGTERM leaves the VFs and every file
#   403       the agent's RoleBinding deleted (what `kubectl delete -k deploy` does before it
#             deletes the DaemonSets, and `helm uninstall` right after): the VFs back to 0, our
#             files and the CNI binary gone, the other plugin kept
#   404       the DaemonSet deleted (`helm uninstall`'s first delete, background propagation):
#             the same
# The deploy is applied again at the end.
# shellcheck source=lib-api.sh
. "$HW/api/lib-api.sh"

UN_DIR=$T_TMP/uninstall

# un_host: the example host and the node's files, as an agent that made the VFs leaves them
un_host() {
  local f=$UN_DIR/files
  rm -rf "$UN_DIR/host" "$f"
  mkdir -p "$UN_DIR" "$f/var/lib/smartnic" "$f/etc/smartnic" "$f/run/smartnic/cni/vf" \
    "$f/run/smartnic/cni/attachments" "$f/var/log/smartnic/cni" "$f/opt/cni/bin"
  cp -a "$REPO/examples/hosts/igb-82576" "$UN_DIR/host"
  cat >"$f/var/lib/smartnic/agent-state.json" <<'JSON'
{"applied": {"interfaces": [{"pciAddress": "0000:01:00.0", "numVfs": 2, "policy": "p"}]},
 "originals": {"0000:01:00.0": {"numVfs": 0, "driver": "igb"}}}
JSON
  echo '{"resourceList": []}' >"$f/var/lib/smartnic/device-plugin.json"
  echo '{}' >"$f/etc/smartnic/cni-allow-list.json"
  echo log >"$f/var/log/smartnic/cni/net1.log"
  echo binary >"$f/opt/cni/bin/smartnic"
  echo other >"$f/opt/cni/bin/bridge"
}

un_numvfs() { cat "$UN_DIR/host/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs" 2>/dev/null; }

# un_run NAME: starts the agent, waits until it has read its DaemonSet, runs the rest of the
# arguments (the deletes), then SIGTERM; the agent's exit status in UN_STATUS, its log
# $T_TMP/uninstall-NAME.log
un_run() {
  local name=$1 f=$UN_DIR/files log=$T_TMP/uninstall-$1.log pid
  shift
  KUBECONFIG=$T_TMP/uninstall.kubeconfig RUST_LOG='' setsid smartnic-agent --node-name uninstall-n1 \
    --host-root "$UN_DIR/host" --state-file "$f/var/lib/smartnic/agent-state.json" \
    --device-plugin-file "$f/var/lib/smartnic/device-plugin.json" \
    --cni-allow-list-file "$f/etc/smartnic/cni-allow-list.json" \
    --cni-state-dir "$f/run/smartnic/cni" --uninstall-root "$f" --cni-bin-dir "$f/opt/cni/bin" \
    --daemonset-name smartnic-agent --pod-namespace "$API_NS" \
    --metrics-addr "127.0.0.1:$(api_free_port)" --log-level info,kube_runtime=warn,kube=warn \
    >"$log" 2>&1 </dev/null &
  pid=$!
  on_exit "kill -KILL $pid 2>/dev/null; cp '$log' \"\${SUITE_OUT:-/nonexistent}/\" 2>/dev/null"
  armed() { grep -q 'own DaemonSet seen' "$1"; }
  if ! api_wait 30 armed "$log"; then
    fail "$name: the agent read its DaemonSet at start" "$(tail -n 5 "$log")"
  fi
  "$@"
  kill -TERM "$pid"
  UN_STATUS=0
  wait "$pid" || UN_STATUS=$?
}

# un_clean NAME: the node after an uninstall
un_clean() {
  local name=$1 f=$UN_DIR/files left
  left=$(cd "$f" && find . -mindepth 1 ! -type d | sort | tr '\n' ' ')
  if [ "$(un_numvfs)" = 0 ] && [ "$left" = "./opt/cni/bin/bridge " ] \
    && [ -z "$(find "$f/var/lib/smartnic" "$f/run/smartnic" "$f/var/log/smartnic" "$f/etc/smartnic" -mindepth 1)" ] \
    && grep -q 'uninstall done pfs=1 removed=6 errors=0' "$T_TMP/uninstall-$name.log"; then
    ok "$name: uninstall ($(sed -n 's/\x1b\[[0-9;]*m//g; s/.*uninstall (\(.*\)): putting.*/\1/p' "$T_TMP/uninstall-$name.log" | head -n 1)): sriov_numvfs back to 0, the CNI binary and our files gone, the other plugin kept"
  else
    fail "$name: the node uninstalled" "sriov_numvfs $(un_numvfs); left: $left"$'\n'"$(tail -n 12 "$T_TMP/uninstall-$name.log")"
  fi
}

uninstall_test() {
  local out
  if ! out=$(api_ensure_installed 2>&1); then fail "deploy/ installed" "$out"; return; fi
  api_webhook_aside
  if ! out=$(api_sa_kubeconfig "$T_TMP/uninstall.kubeconfig" smartnic-agent 2>&1); then
    fail "TokenRequest for ServiceAccount smartnic-agent" "$out"
    return
  fi

  un_host
  un_run restart true
  if [ "$UN_STATUS" = 0 ] && [ "$(un_numvfs)" = 2 ] && [ -e "$UN_DIR/files/opt/cni/bin/smartnic" ] \
    && [ -e "$UN_DIR/files/var/lib/smartnic/agent-state.json" ] \
    && grep -q 'the node is left as it is: the DaemonSet is live: a restart' "$T_TMP/uninstall-restart.log"; then
    ok "restart: SIGTERM with the DaemonSet live leaves the VFs and every file"
  else
    fail "restart: the node left as it is" "status $UN_STATUS, sriov_numvfs $(un_numvfs)"$'\n'"$(tail -n 8 "$T_TMP/uninstall-restart.log")"
  fi

  un_host
  un_run rbac-deleted kubectl -n "$API_NS" delete rolebinding smartnic-agent-uninstall --wait=true
  un_clean rbac-deleted
  kubectl apply --server-side --force-conflicts -k "$REPO/deploy" >/dev/null 2>&1

  un_host
  un_run daemonset-deleted kubectl -n "$API_NS" delete daemonset smartnic-agent --wait=true
  un_clean daemonset-deleted
  kubectl apply --server-side --force-conflicts -k "$REPO/deploy" >/dev/null 2>&1
  api_webhook_aside
}

section "9.5 uninstall: a SIGTERM tells an uninstall from a restart by the agent's DaemonSet"
uninstall_test

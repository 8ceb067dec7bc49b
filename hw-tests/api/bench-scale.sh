#!/usr/bin/env bash
# hw-tests/api/bench-scale.sh: the operator against a real API server with N simulated nodes.
#
# usage: hw-tests/api/bench-scale.sh [N...]          (default: 1000 5000)
#
# For each N, on a fresh control plane (hw-tests/cluster up, no scheduler, no controller-manager:
# nothing else writes), with the CRDs of deploy/crds installed:
#   1. `scale_load nodes`: N Node objects and their NicNodeStates, each with the inventory of the
#      igb-82576 example host in its status (what N agents report at start);
#   2. `scale_load agents` runs for the rest: it acknowledges every new spec generation with the
#      status an agent writes after applying it (one status apply per node and change);
#   3. smartnic-operator (release build unless SMARTNIC_BENCH_PROFILE says otherwise,
#      --leader-elect=false, no webhook) starts, and NicPolicy bench (numVfs 2, every node) is
#      applied: time until every NicNodeState has its spec;
#   4. the policy changes (numVfs 2 -> 4): time until every NicNodeState has the new spec.
# Reported per phase: wall time, the operator's CPU seconds (utime + stime from /proc) and its
# share of the wall time (1.0 = one core busy all along), the API server's and etcd's CPU
# seconds for comparison, the operator's peak RSS (VmHWM), and the API requests by verb
# (apiserver_request_total; the writes of the load generator included, listed by resource).
#
# Nothing is asserted: it prints figures (operator/README.md keeps them).
#
# Environment: SMARTNIC_BENCH_PROFILE (cargo profile, default release), SMARTNIC_BENCH_NO_BUILD=1
# (use the binaries already in target/).
set -euo pipefail

HW=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO=$(dirname "$HW")
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 5000)
PROFILE=${SMARTNIC_BENCH_PROFILE:-release}

cd "$REPO"
[ -n "${SMARTNIC_BENCH_NO_BUILD:-}" ] \
  || cargo build --profile "$PROFILE" -p operator --bin smartnic-operator --example scale_load >&2
OUT=$REPO/target/${PROFILE/dev/debug}
OP=$OUT/smartnic-operator
LOAD=$OUT/examples/scale_load
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-scale.XXXXXX")
CLUSTER=$WORK/cluster
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  "$HW/cluster" down "$CLUSTER" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
# cpu PID: utime + stime in seconds
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
hwm() { awk '/^VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$1/status"; }
pid_of() { cat "$CLUSTER/pids/$1"; }
# requests: "VERB COUNT" lines of apiserver_request_total, and the writes by resource
requests() {
  kubectl get --raw /metrics | awk '
    function lab(name) {
      if (match($0, "[{,]" name "=\"[^\"]*\"")) return substr($0, RSTART + length(name) + 3, RLENGTH - length(name) - 4)
      return ""
    }
    /^apiserver_request_total\{/ {
      v = lab("verb"); s = lab("subresource")
      c["verb " v] += $NF
      if (v != "GET" && v != "LIST" && v != "WATCH") c["write " v " " lab("resource") (s == "" ? "" : "/" s)] += $NF
    }
    END { for (k in c) print k, c[k] }' | sort
}
# delta BEFORE AFTER: what grew, "KEY... COUNT"
delta() {
  join -a 2 -e 0 -o 0,1.2,2.2 <(sed 's/ \([0-9.]*\)$/|\1/; s/ /_/g; s/|/ /' <<<"$1" | sort) \
    <(sed 's/ \([0-9.]*\)$/|\1/; s/ /_/g; s/|/ /' <<<"$2" | sort) \
    | awk '{ d = $3 - $2; if (d > 0) { gsub(/_/, " ", $1); print $1, d } }'
}
policy() {
  cat <<EOF
apiVersion: smartnic.io/v1alpha1
kind: NicPolicy
metadata:
  name: bench
spec:
  nodeSelector:
    matchLabels: {bench: scale}
  nicSelector: {vendor: "8086"}
  numVfs: $1
  resourceName: benchvf
EOF
}

# phase NAME N NUMVFS: apply the policy, wait for every spec, print the figures
phase() {
  local name=$1 n=$2 vfs=$3 r0 r1 c0 c1 a0 a1 e0 e1 t0 ms
  r0=$(requests)
  c0=$(cpu "$OPPID") a0=$(cpu "$(pid_of apiserver)") e0=$(cpu "$(pid_of etcd)")
  t0=$(now_ms)
  "$LOAD" wait --count "$n" --contains "\"numVfs\":$vfs" >"$WORK/wait.out" &
  local waiter=$!
  policy "$vfs" | kubectl apply --server-side --field-manager bench -f - >/dev/null
  wait "$waiter" || { echo "scale_load wait failed ($?)" >&2; exit 1; }
  ms=$(($(now_ms) - t0))
  c1=$(cpu "$OPPID") a1=$(cpu "$(pid_of apiserver)") e1=$(cpu "$(pid_of etcd)")
  r1=$(requests)
  awk -v name="$name" -v ms="$ms" -v c0="$c0" -v c1="$c1" -v a0="$a0" -v a1="$a1" -v e0="$e0" \
    -v e1="$e1" -v rss="$(hwm "$OPPID")" 'BEGIN {
      c = c1 - c0; a = a1 - a0; e = e1 - e0
      printf "  %s: every NicNodeState has its spec after %.1f s\n", name, ms / 1000
      printf "    operator CPU %.2f s (share of wall time %.2f), kube-apiserver CPU %.2f s, etcd CPU %.2f s, operator peak RSS %s\n", c, c / (ms / 1000), a, e, rss
    }'
  echo "    API requests by verb: $(delta "$r0" "$r1" | awk '$1 == "verb" { printf "%s %d  ", $2, $3 }')"
  echo "    writes by resource:   $(delta "$r0" "$r1" | awk '$1 == "write" { printf "%s %s %d  ", $2, $3, $4 }')"
}

for n in "${SIZES[@]}"; do
  echo "== N = $n nodes"
  "$HW/cluster" up "$CLUSTER" --no-scheduler --no-controller-manager | grep '^cluster:' >&2
  eval "$("$HW/cluster" env "$CLUSTER")"
  export PATH="$K8S_BIN:$PATH"
  kubectl apply --server-side -k deploy/crds >/dev/null
  kubectl create namespace smartnic-system >/dev/null
  # shellcheck source=lib-api.sh
  API_NS=smartnic-system T_TMP=$WORK . "$HW/api/lib-api.sh"
  api_nad_crd | kubectl apply --server-side -f - >/dev/null
  kubectl wait --for condition=Established --timeout 60s crd --all >/dev/null
  "$OUT/smartnicctl" discover --root examples/hosts/igb-82576 -o json >"$WORK/inventory.json" 2>/dev/null \
    || target/debug/smartnicctl discover --root examples/hosts/igb-82576 -o json >"$WORK/inventory.json"
  setup=$("$LOAD" --concurrency 64 nodes --count "$n" --inventory "$WORK/inventory.json") || exit 1
  echo "  setup: $setup"
  "$LOAD" agents >"$WORK/agents.log" 2>&1 &
  PIDS+=($!)
  port=$(api_free_port)
  "$OP" --no-webhook --leader-elect=false --namespace smartnic-system --identity bench \
    --metrics-addr "127.0.0.1:$port" --log-level warn >"$WORK/operator.log" 2>&1 &
  OPPID=$!
  PIDS+=("$OPPID")
  t0=$(now_ms)
  until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    kill -0 "$OPPID" 2>/dev/null || { tail -n 20 "$WORK/operator.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "  operator ready (every watch cache filled) after $(($(now_ms) - t0)) ms, CPU $(cpu "$OPPID") s"
  phase "first policy (numVfs 2)" "$n" 2
  phase "policy change (numVfs 2 -> 4)" "$n" 4
  kill -KILL "${PIDS[@]}" 2>/dev/null || true
  # reaped here, so that bash reports no "Killed" line for them
  wait "${PIDS[@]}" 2>/dev/null || true
  PIDS=()
  "$HW/cluster" down "$CLUSTER" >/dev/null
done

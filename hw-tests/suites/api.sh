#!/bin/bash
# suite: api - a real Kubernetes API server: the install, CRD schemas, the operator under its own identity, leader election, the webhook, the agents, the admission policy, steady state, the DRA driver's ResourceSlices
# needs: smartnic-operator smartnic-agent smartnicctl smartnic-dra dra-kubelet-stub
# where: host
#
# Starts a control plane with `hw-tests/cluster up` (the pinned Kubernetes release, built by
# hw-tests/k8s/build.sh) on this machine's loopback and runs the checks in hw-tests/api/*.sh in
# the order of their names, each sourced into this shell (they share the cluster and lib.sh's
# ok/fail). Each numbered point of the suite is one file; a file's checks print under its
# section. When anything failed, the component logs are kept in the results (api-logs/).
#
# Environment:
#   SMARTNIC_API_ONLY=PATTERN   run only the check files whose name matches (e.g. 40-leader)
#   SMARTNIC_API_KEEP=DIR       start the cluster in DIR and leave it running (for debugging)
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HW=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO=$(dirname "$HW")
for t in openssl curl python3; do
  command -v "$t" >/dev/null || { fail "$t is installed" "the cluster needs it (.ci/run installs it)"; summary; }
done
if ! have_jq; then fail "jq is installed"; summary; fi

API_DIR=${SMARTNIC_API_KEEP:-$T_TMP/cluster}
section "control plane"
if ! up_out=$("$HW/cluster" up "$API_DIR" 2>&1); then
  fail "hw-tests/cluster up" "$up_out"
  summary
fi
echo "$up_out" | grep '^cluster:' | sed 's/^/# /'
eval "$("$HW/cluster" env "$API_DIR")"
export PATH="$K8S_BIN:$PATH"
ok "control plane up ($(kube-apiserver --version))"
if [ -z "${SMARTNIC_API_KEEP:-}" ]; then
  # The component logs go to the results when anything failed.
  on_exit "if [ \$T_FAIL -gt 0 ] && [ -n \"\${SUITE_OUT:-}\" ]; then s=\$SUITE_OUT/api-logs; else s=; fi; \"$HW/cluster\" down \"$API_DIR\" \${s:+--save-logs \"\$s\"}"
fi

for f in "$HW"/api/[0-9]*.sh; do
  [ -e "$f" ] || continue
  n=$(basename "$f" .sh)
  [ -n "${SMARTNIC_API_ONLY:-}" ] && [[ ! "$n" =~ ${SMARTNIC_API_ONLY} ]] && continue
  section "$n"
  # shellcheck disable=SC1090
  . "$f"
done
summary

#!/usr/bin/env bash
# hw-tests/helm/install-check.sh: the chart's life cycle against a real Kubernetes API server, as
# deploy/README.md describes it for a cluster without cert-manager: install, upgrade, uninstall.
#
# usage: hw-tests/helm/install-check.sh
#
# Starts a control plane on loopback (hw-tests/cluster up; no scheduler, no controller manager:
# nothing runs, only the objects are checked), then with the pinned helm (hw-tests/helm/build.sh):
#   1. `helm install` with webhook.certificate.source=selfSigned into a namespace made as the README
#      says: every object of the release exists (Helm 4's server-side apply with strict field
#      validation accepted each), the Secret's CA is the caBundle of every webhook of both
#      configurations;
#   2. `helm upgrade` with logLevel=debug: the operator's RUST_LOG follows, the certificate pair
#      is the one installed (lookup);
#   3. `helm uninstall`: nothing of the release is left but the CRDs;
#   4. `helm install` with resourcePrefix=nics.example.com: NicOperatorConfig default is created by
#      the pre-install hook before the validating webhook exists (whose failurePolicy Fail would
#      refuse it, with no operator behind it); an upgrade back to the default prefix updates that
#      object in place (the webhook configuration removed first: no operator answers it here);
#      `helm uninstall` leaves it, as documented.
# Prints one `ok N - ...` or `not ok N - ...` line per check; exits 1 when one failed, 3 when
# helm or the control plane is not there.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CHART=$REPO/deploy/helm/smartnic-operator
NS=smartnic-system

die() { echo "hw-tests/helm/install-check.sh: $*" >&2; exit 3; }
HELM=${SMARTNIC_HELM:-$("$HERE/build.sh" --print-dir)/helm}
[ -x "$HELM" ] || die "no helm at $HELM (run hw-tests/helm/build.sh)"

N=0 FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $1"; }
fail() { N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $1"; [ -z "${2:-}" ] || sed 's/^/#   /' <<<"$2"; }
check() { # check DESCRIPTION CMD...: ok when CMD succeeds, else not ok with its output
  local what=$1 out; shift
  if out=$("$@" 2>&1); then ok "$what"; else fail "$what" "$out"; fi
}

DIR=$(mktemp -d /tmp/smartnic-helm-check.XXXXXX)
trap '"$REPO/hw-tests/cluster" down "$DIR/c" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
"$REPO/hw-tests/cluster" up "$DIR/c" --no-scheduler --no-controller-manager >"$DIR/up.log" 2>&1 \
  || { cat "$DIR/up.log" >&2; die "hw-tests/cluster up failed"; }
eval "$("$REPO/hw-tests/cluster" env "$DIR/c")"
export KUBECONFIG PATH="$K8S_BIN:$PATH"
export HELM_CACHE_HOME=$DIR/helm/cache HELM_CONFIG_HOME=$DIR/helm/config HELM_DATA_HOME=$DIR/helm/data

helm() { "$HELM" "$@"; }
ca_of_secret() { kubectl -n "$NS" get secret smartnic-operator-webhook-tls -o jsonpath='{.data.ca\.crt}'; }
# Every caBundle of both webhook configurations equals the Secret's ca.crt.
bundles_are_the_secrets_ca() {
  local ca k b
  ca=$(ca_of_secret)
  [ -n "$ca" ] || { echo "the Secret has no ca.crt"; return 1; }
  for k in validatingwebhookconfiguration mutatingwebhookconfiguration; do
    for b in $(kubectl get "$k" smartnic-operator -o jsonpath='{range .webhooks[*]}{.clientConfig.caBundle}{" "}{end}'); do
      [ "$b" = "$ca" ] || { echo "$k: a caBundle is not the Secret's CA"; return 1; }
    done
  done
}
# Every object of the release's manifest exists (none when $1 is "none").
release_objects() {
  local out
  out=$(kubectl get -f "$DIR/manifest.yaml" -o name 2>&1) || true
  if [ "$1" = none ]; then
    ! grep -v '^Error from server (NotFound)' <<<"$out" | grep -q . || { echo "left: $out"; return 1; }
  else
    ! grep -q 'NotFound\|error' <<<"$out" || { echo "$out"; return 1; }
    [ "$(grep -c . <<<"$out")" -ge 25 ] || { echo "only: $out"; return 1; }
  fi
}

kubectl create namespace "$NS" >/dev/null
kubectl label namespace "$NS" pod-security.kubernetes.io/enforce=privileged >/dev/null

# 1. install without cert-manager
check "helm install with webhook.certificate.source=selfSigned" \
  helm install smartnic-operator "$CHART" --namespace "$NS" --set webhook.certificate.source=selfSigned
helm get manifest smartnic-operator --namespace "$NS" >"$DIR/manifest.yaml"
check "every object of the release exists (server-side apply, strict field validation)" release_objects all
check "the generated CA is the caBundle of every webhook of both configurations" bundles_are_the_secrets_ca
ca1=$(ca_of_secret)

# 2. upgrade keeps the certificate
check "helm upgrade with logLevel=debug" \
  helm upgrade smartnic-operator "$CHART" --namespace "$NS" --set webhook.certificate.source=selfSigned --set logLevel=debug
check "the operator's RUST_LOG follows logLevel" \
  test "$(kubectl -n "$NS" get deployment smartnic-operator -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="RUST_LOG")].value}')" = "debug,kube_runtime=warn"
check "the upgrade keeps the certificate pair (the chart looked the Secret up)" test "$(ca_of_secret)" = "$ca1"
check "... and the webhooks still trust it" bundles_are_the_secrets_ca

# 3. uninstall
check "helm uninstall" helm uninstall smartnic-operator --namespace "$NS"
check "nothing of the release is left" release_objects none
check "the CRDs stay (Helm never deletes crds/)" kubectl get crd nicoperatorconfigs.smartnic.io

# 4. the operator's config on a first install
check "helm install with resourcePrefix=nics.example.com (the config's hook runs before the webhook exists)" \
  helm install smartnic-operator "$CHART" --namespace "$NS" --set webhook.certificate.source=selfSigned --set resourcePrefix=nics.example.com
check "NicOperatorConfig default has the prefix" \
  test "$(kubectl get nicoperatorconfig default -o jsonpath='{.spec.resourcePrefix}')" = nics.example.com
uid=$(kubectl get nicoperatorconfig default -o jsonpath='{.metadata.uid}')
# No operator answers the webhook here: its configuration goes, as in the lab, so that the
# pre-upgrade hook reaches the API server. Back to the default prefix: the chart finds the config
# it wrote and updates it.
kubectl delete validatingwebhookconfiguration smartnic-operator >/dev/null
check "helm upgrade with the default resourcePrefix" \
  helm upgrade smartnic-operator "$CHART" --namespace "$NS" --set webhook.certificate.source=selfSigned
check "NicOperatorConfig default is back to smartnic.io, updated in place (same uid, never deleted)" \
  test "$(kubectl get nicoperatorconfig default -o jsonpath='{.spec.resourcePrefix} {.metadata.uid}')" = "smartnic.io $uid"
check "helm uninstall" helm uninstall smartnic-operator --namespace "$NS"
check "NicOperatorConfig default stays after uninstall (a hook's object, like the CRDs)" \
  kubectl get nicoperatorconfig default

echo "$((N - FAILED)) of $N checks passed"
[ "$FAILED" = 0 ]

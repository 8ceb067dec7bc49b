# shellcheck shell=bash
# 1. Install: what the README tells users (`kubectl apply --server-side -k deploy`) against the
# real API server: the apply succeeds without a warning, every CRD is Established, `kubectl
# explain` answers for every field of every CRD, and the examples apply.
. "$HW/api/common.sh"

if out=$(api_prereqs 2>&1); then
  ok "prerequisites: cert-manager $CERT_MANAGER_VERSION CRDs (Go module), Multus NAD CRD"
else
  fail "prerequisites: cert-manager $CERT_MANAGER_VERSION CRDs (Go module), Multus NAD CRD" "$out"
fi

if out=$(kubectl apply --server-side -k "$REPO/deploy" 2>&1); then
  if grep -qi '^warning' <<<"$out"; then
    fail "kubectl apply --server-side -k deploy: no warning" "$(grep -i '^warning' <<<"$out")"
  else
    ok "kubectl apply --server-side -k deploy ($(wc -l <<<"$out") objects)"
  fi
else
  fail "kubectl apply --server-side -k deploy" "$out"
fi

# every object of the render is in the cluster (what the apply said it did is not enough)
missing=$(kubectl kustomize "$REPO/deploy" | kubectl get -f - -o name 2>&1 >/dev/null)
if [ -z "$missing" ]; then ok "every object of the render exists"; else fail "every object of the render exists" "$missing"; fi

for crd in $(api_crds); do
  check "CRD $crd is Established" kubectl wait --for condition=Established --timeout 60s "crd/$crd"
done

# kubectl explain --recursive must list every field of the CRD's schema (read from the server, so
# the list cannot drift from the CRD).
for crd in $(api_crds); do
  plural=${crd%%.*}
  want=$(kubectl get crd "$crd" -o json | jq -r '
    def fields($p): (.properties // {}) | to_entries[] | ($p + "." + .key) as $q
      | $q, (.value | fields($q)), (.value.items // {} | fields($q));
    .spec.versions[] | select(.storage) | .schema.openAPIV3Schema
    | (.properties.spec | fields("spec")), (.properties.status // {} | fields("status"))' | sort -u)
  got=$(for top in spec status; do
      kubectl explain "$plural.$top" --recursive 2>/dev/null | awk -v top="$top" '
        /^FIELDS:/ { on = 1; next }
        on && NF && $1 !~ /^</ {
          match($0, /^ */); depth = (RLENGTH - 2) / 2
          path[depth] = $1; s = top
          for (i = 0; i <= depth; i++) s = s "." path[i]
          print s
        }'
    done | sort -u)
  gone=$(comm -23 <(echo "$want") <(echo "$got"))
  if [ -n "$want" ] && [ -z "$gone" ]; then
    ok "kubectl explain $plural: all $(wc -l <<<"$want") fields"
  else
    fail "kubectl explain $plural: all fields" "not explained:"$'\n'"$gone"
  fi
  # and one field on its own, with its description
  leaf=$(tail -n 1 <<<"$want")
  if out=$(kubectl explain "$plural.$leaf" 2>&1) && grep -q "^FIELD: *${leaf##*.}" <<<"$out"; then
    ok "kubectl explain $plural.$leaf"
  else
    fail "kubectl explain $plural.$leaf" "$out"
  fi
done

# The deploy's webhook has no pods behind its Service here (failurePolicy Fail would refuse every
# write): out of the way until 50-webhook serves it from a local operator.
check "the deploy's webhook configuration removed (no operator pods here)" api_webhook_off

if out=$(kubectl apply --server-side -k "$REPO/deploy/examples" 2>&1); then
  ok "kubectl apply --server-side -k deploy/examples"
else
  fail "kubectl apply --server-side -k deploy/examples" "$out"
fi
check "the examples are in the cluster" sh -c "kubectl kustomize '$REPO/deploy/examples' | kubectl get -f -"
kubectl kustomize "$REPO/deploy/examples" | kubectl delete -f - --wait=false >/dev/null 2>&1

# shellcheck shell=bash
# 2. Schemas: the API server itself (no webhook in the way) refuses an invalid object for every
# bound, enum, pattern and CEL rule of every CRD, naming the field; the valid examples pass.
# The table is derived from the CRDs as installed (schema_cases.py); the constraints themselves
# are compared with the reviewed list schema-constraints.txt, so a bound that is dropped or
# loosened in the generated CRDs fails here until the list is updated on purpose.
. "$HW/api/common.sh"
api_ensure_installed
api_webhook_off

sc_dir=$T_TMP/schemas
mkdir -p "$sc_dir"
# shellcheck disable=SC2046
kubectl get $(api_crds | sed 's|^|crd/|') -o json >"$sc_dir/crds.json"

# the constraints in the CRDs are the reviewed ones
python3 "$HW/api/schema_cases.py" constraints "$sc_dir/crds.json" >"$sc_dir/constraints.txt"
if d=$(diff -u "$HW/api/schema-constraints.txt" "$sc_dir/constraints.txt"); then
  ok "the CRDs hold the $(wc -l <"$sc_dir/constraints.txt") reviewed constraints (schema-constraints.txt)"
else
  fail "the CRDs hold the reviewed constraints (schema-constraints.txt)" \
    "$(grep '^[-+][^-+]' <<<"$d")"$'\n'"(intended? python3 hw-tests/api/schema_cases.py constraints CRDS.json > hw-tests/api/schema-constraints.txt)"
fi

# the valid objects every case starts from: the examples, plus the two kinds they lack
sc_ns=smartnic-schemas-$$
kubectl create namespace "$sc_ns" >/dev/null 2>&1
{
  kubectl kustomize "$REPO/deploy/examples"
  printf -- '---\napiVersion: smartnic.io/v1alpha1\nkind: NicOperatorConfig\nmetadata: {name: default}\nspec: {}\n'
  printf -- '---\napiVersion: smartnic.io/v1alpha1\nkind: NicNodeState\nmetadata: {name: schema-node}\nspec: {}\n'
} | kubectl create --dry-run=client -o json -f - |
  jq -s '{items: [.[] | (.items // [.])[] | select(.apiVersion | startswith("smartnic.io/"))]}' >"$sc_dir/bases.json"

if python3 "$HW/api/schema_cases.py" run "$sc_dir/crds.json" "$sc_dir/bases.json" "$sc_ns" \
  >"$sc_dir/results" 2>"$sc_dir/errors"; then
  while IFS=$'\t' read -r verdict what why; do
    if [ "$verdict" = ok ]; then ok "$what"; else fail "$what" "$(jq -r . <<<"$why")"; fi
  done <"$sc_dir/results"
else
  fail "schema_cases.py run" "$(tail -n 20 "$sc_dir/errors")"
fi
kubectl delete namespace "$sc_ns" --wait=false >/dev/null 2>&1

//! Checks documents against the generated CRD schemas the way the API server does, without one:
//! defaults from the schema are applied, then the OpenAPI keywords (`type`, `enum`, `minimum`,
//! `maximum`, `pattern`, `maxLength`, `required`, ...) are checked with a JSON-schema validator, and
//! the CEL rules (`x-kubernetes-validations`) are evaluated with the Kubernetes CEL libraries.
//! Unknown fields are errors, as with `kubectl apply` (field validation `Strict`).
//!
//! For tests (feature `schema-check`): the schema tests of this crate, the test that holds the
//! webhook's rules against the schema, and the `smartnicctl convert` tests.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::{
    AnalysisWarning, ScopeContext, Validator, WarningKind, analyze_rule, apply_defaults,
    compile_schema,
};
use serde_json::{Map, Value};

/// One reason a document does not pass a schema: the field path (`spec.vlan`, empty for the
/// object itself) and the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaError {
    /// Dotted path of the field, as the API server reports it (`spec.ovs.trunk[0].minId`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// The `openAPIV3Schema` of a CRD (first version) as JSON.
pub fn open_api_schema(crd: &CustomResourceDefinition) -> Value {
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
        .unwrap_or(Value::Null)
}

/// The generated CRD of `kind` (`NicPolicy`, ...), if this crate defines it.
pub fn crd_of_kind(kind: &str) -> Option<CustomResourceDefinition> {
    crate::generate::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
}

/// Checks a whole object (with `apiVersion`, `kind`, `metadata`) against the generated schema of
/// its kind. An unknown kind is an error.
pub fn check_object(object: &Value) -> Result<(), Vec<SchemaError>> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let Some(crd) = crd_of_kind(kind) else {
        return Err(vec![SchemaError {
            field: "kind".into(),
            message: format!("\"{kind}\" is not a kind of {}", crate::GROUP),
        }]);
    };
    check_against(&open_api_schema(&crd), object)
}

/// Checks `object` against an `openAPIV3Schema`, as the API server would on create: defaults
/// applied, then the OpenAPI keywords, unknown fields (strict field validation) and the CEL rules.
pub fn check_against(schema: &Value, object: &Value) -> Result<(), Vec<SchemaError>> {
    let defaulted = apply_defaults(schema, object);
    let mut errors = Vec::new();
    let json_schema = to_json_schema(schema, true);
    match jsonschema::draft4::new(&json_schema) {
        Ok(v) => {
            for e in v.iter_errors(&defaulted) {
                errors.push(SchemaError {
                    field: dotted(&e.instance_path().to_string()),
                    message: e.to_string(),
                });
            }
        }
        Err(e) => errors.push(SchemaError {
            field: String::new(),
            message: format!("the schema itself does not compile: {e}"),
        }),
    }
    // CEL rules only run on structurally valid objects, as in the API server.
    if errors.is_empty()
        && let Err(cel) = Validator::new().validate(schema, &defaulted, None)
    {
        for e in cel.into_vec() {
            errors.push(SchemaError {
                field: e.field_path.clone(),
                message: e.message.clone(),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// What the static analysis of the Kubernetes CEL libraries says about every rule of a schema:
/// rules that use variables a CRD rule cannot see, or whose estimated cost may exceed the API
/// server's budget (the API server refuses such a CRD).
///
/// The scope check of the analysis does not know comprehension variables (`k` in
/// `self.all(k, ...)`); such warnings are dropped.
pub fn rule_warnings(schema: &Value) -> Vec<AnalysisWarning> {
    let mut out = Vec::new();
    walk_rules(schema, &mut out);
    out.retain(|w| !(w.kind == WarningKind::WrongScope && names_comprehension_variable(w)));
    out
}

/// Whether the warning's variable is bound by a comprehension macro of its rule.
fn names_comprehension_variable(w: &AnalysisWarning) -> bool {
    let Some(var) = w
        .message
        .strip_prefix("variable '")
        .and_then(|m| m.split('\'').next())
    else {
        return false;
    };
    ["all", "exists", "exists_one", "map", "filter"]
        .iter()
        .any(|m| w.rule.contains(&format!(".{m}({var},")))
}

fn walk_rules(schema: &Value, out: &mut Vec<AnalysisWarning>) {
    let Some(o) = schema.as_object() else { return };
    if let Some(rules) = o.get("x-kubernetes-validations").and_then(Value::as_array) {
        let compiled = compile_schema(schema);
        for r in rules {
            if let Some(rule) = r.get("rule").and_then(Value::as_str) {
                out.extend(analyze_rule(rule, &compiled, ScopeContext::CrdValidation));
            }
        }
    }
    for key in ["properties"] {
        if let Some(props) = o.get(key).and_then(Value::as_object) {
            for p in props.values() {
                walk_rules(p, out);
            }
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(s) = o.get(key) {
            walk_rules(s, out);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for s in o.get(key).and_then(Value::as_array).into_iter().flatten() {
            walk_rules(s, out);
        }
    }
}

/// `/spec/ovs/trunk/0/minId` → `spec.ovs.trunk[0].minId`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').filter(|p| !p.is_empty()) {
        if part.bytes().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

/// Rewrites a structural OpenAPI v3 schema into an equivalent JSON schema (draft 4): `nullable`
/// becomes a `null` type, objects with listed properties refuse other keys unless they preserve
/// unknown fields, formats are dropped (the API server checks only a few, none of which we
/// use for bounds), the Kubernetes extensions are left for the CEL pass. At the root,
/// `apiVersion`, `kind` and `metadata` are allowed.
fn to_json_schema(schema: &Value, root: bool) -> Value {
    let Some(o) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in o {
        match k.as_str() {
            "properties" => {
                let props = v
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(name, s)| (name.clone(), to_json_schema(s, false)))
                            .collect::<Map<String, Value>>()
                    })
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" if v.is_object() => {
                out.insert(k.clone(), to_json_schema(v, false));
            }
            "allOf" | "anyOf" | "oneOf" => {
                let list = v
                    .as_array()
                    .map(|l| l.iter().map(|s| to_json_schema(s, false)).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Array(list));
            }
            "format" | "nullable" | "default" | "description" => {}
            k if k.starts_with("x-kubernetes-") => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if o.get("nullable").and_then(Value::as_bool) == Some(true)
        && let Some(Value::String(t)) = out.get("type").cloned()
    {
        out.insert(
            "type".into(),
            Value::Array(vec![Value::String(t), Value::String("null".into())]),
        );
    }
    if root {
        let props = out
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(p) = props.as_object_mut() {
            for k in ["apiVersion", "kind"] {
                p.entry(k)
                    .or_insert_with(|| serde_json::json!({"type": "string"}));
            }
            p.entry("metadata")
                .or_insert_with(|| serde_json::json!({"type": "object"}));
        }
    }
    let preserves = o
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    if o.contains_key("properties") && !o.contains_key("additionalProperties") && !preserves {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pointers_become_api_server_paths() {
        assert_eq!(dotted("/spec/ovs/trunk/0/minId"), "spec.ovs.trunk[0].minId");
        assert_eq!(dotted(""), "");
    }

    #[test]
    fn nullable_and_unknown_fields() {
        let schema = json!({
            "type": "object",
            "properties": {
                "a": {"type": "integer", "nullable": true, "maximum": 3},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        });
        assert_eq!(
            check_against(&schema, &json!({"a": null, "free": {"x": 1}})),
            Ok(())
        );
        let errs = check_against(&schema, &json!({"a": 4, "b": 1})).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
    }
}

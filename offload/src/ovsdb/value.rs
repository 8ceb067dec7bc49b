//! The OVSDB wire notation of values (RFC 7047 §5.1): atoms, `["set", [...]]`,
//! `["map", [[k, v], ...]]`, `["uuid", "..."]` and `["named-uuid", "..."]`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// `["uuid", u]`
pub fn uuid(u: &str) -> Value {
    json!(["uuid", u])
}

/// `["named-uuid", name]`: a row inserted earlier in the same transaction.
pub fn named_uuid(name: &str) -> Value {
    json!(["named-uuid", name])
}

/// A set of atoms.
pub fn set(items: impl IntoIterator<Item = Value>) -> Value {
    json!(["set", items.into_iter().collect::<Vec<_>>()])
}

/// A string-to-string map (`options`, `external_ids`, `other_config`).
pub fn map<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let pairs: Vec<Value> = items.into_iter().map(|(k, v)| json!([k, v])).collect();
    json!(["map", pairs])
}

/// Reads a string map column.
pub fn as_map(v: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(("map", Value::Array(pairs))) = tagged(v) {
        for p in pairs {
            if let (Some(k), Some(v)) = (p[0].as_str(), p[1].as_str()) {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    out
}

/// Reads a set column (a single atom is a set of one; `["set", []]` is empty).
pub fn as_set(v: &Value) -> Vec<Value> {
    match tagged(v) {
        Some(("set", Value::Array(items))) => items.clone(),
        _ => vec![v.clone()],
    }
}

/// Reads an optional integer column (`["set", []]` when unset).
pub fn as_opt_i64(v: &Value) -> Option<i64> {
    as_set(v).first().and_then(Value::as_i64)
}

/// Reads an optional string column.
pub fn as_opt_str(v: &Value) -> Option<String> {
    as_set(v)
        .first()
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The UUID string of a `["uuid", u]` value.
pub fn as_uuid(v: &Value) -> Option<&str> {
    match tagged(v) {
        Some(("uuid", Value::String(u))) => Some(u),
        _ => None,
    }
}

/// `[tag, inner]` with a string tag.
fn tagged(v: &Value) -> Option<(&str, &Value)> {
    match v.as_array().map(Vec::as_slice) {
        Some([Value::String(tag), inner]) => Some((tag.as_str(), inner)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_read_back_in_every_notation() {
        let m = map([("key", "flow"), ("remote_ip", "10.0.0.2")]);
        assert_eq!(as_map(&m)["remote_ip"], "10.0.0.2");
        assert_eq!(as_opt_i64(&json!(["set", []])), None);
        assert_eq!(as_opt_i64(&json!(7)), Some(7));
        assert_eq!(as_opt_str(&json!("netdev")).as_deref(), Some("netdev"));
        assert_eq!(as_uuid(&uuid("abc")), Some("abc"));
        assert_eq!(as_set(&set([uuid("a"), uuid("b")])).len(), 2);
        assert_eq!(named_uuid("p"), json!(["named-uuid", "p"]));
    }
}

//! Object-by-object comparison of two renders of the same install (the kustomization and the
//! Helm chart): the objects only one of them has, and every field where a shared object differs,
//! each named so that a failing test says exactly what to change.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// What identifies an object in a render: `apiVersion`, `kind`, namespace (empty for a
/// cluster-scoped object) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace`, empty when unset.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl Key {
    /// The key of `obj` (missing fields are empty).
    pub fn of(obj: &Value) -> Self {
        let s = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        Self {
            api_version: s("/apiVersion"),
            kind: s("/kind"),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ", self.api_version, self.kind)?;
        if !self.namespace.is_empty() {
            write!(f, "{}/", self.namespace)?;
        }
        f.write_str(&self.name)
    }
}

/// Every place where `a` and `b` differ, as `pointer: a vs b` (JSON pointers below `at`; a
/// field one side lacks shows as `null`). Numbers are compared as numbers (`0` equals `0.0`).
pub fn differences(a: &Value, b: &Value, at: &str) -> Vec<String> {
    let mut out = Vec::new();
    walk(a, b, at, &mut out);
    out
}

fn walk(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (vx, vy) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                // `~` and `/` escaped as RFC 6901 says, so the pointer can be followed
                let k = k.replace('~', "~0").replace('/', "~1");
                walk(vx, vy, &format!("{at}/{k}"), out);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                out.push(format!("{at}: {} items vs {}", x.len(), y.len()));
            }
            for (i, (vx, vy)) in x.iter().zip(y).enumerate() {
                walk(vx, vy, &format!("{at}/{i}"), out);
            }
        }
        _ if a == b => {}
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ => out.push(format!("{at}: {a} vs {b}")),
    }
}

/// What differs between two renders, `left` and `right` named by `left_name` and `right_name`:
/// one line per object that only one side has (or has twice), and one per differing field of a
/// shared object (`key: pointer: left vs right`). Empty when they hold the same objects, field
/// for field; the order of the objects does not count.
pub fn renders(left_name: &str, left: &[Value], right_name: &str, right: &[Value]) -> Vec<String> {
    let mut report = Vec::new();
    let mut index = |name: &str, objects: &[Value]| {
        let mut by_key: BTreeMap<Key, Value> = BTreeMap::new();
        for obj in objects {
            let key = Key::of(obj);
            if by_key.insert(key.clone(), obj.clone()).is_some() {
                report.push(format!("{key}: twice in {name}"));
            }
        }
        by_key
    };
    let l = index(left_name, left);
    let r = index(right_name, right);
    for key in l.keys().filter(|k| !r.contains_key(*k)) {
        report.push(format!("{key}: only in {left_name}"));
    }
    for key in r.keys().filter(|k| !l.contains_key(*k)) {
        report.push(format!("{key}: only in {right_name}"));
    }
    for (key, a) in &l {
        if let Some(b) = r.get(key) {
            for d in differences(a, b, "") {
                report.push(format!("{key}: {d} ({left_name} vs {right_name})"));
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_differing_field_is_named_with_its_pointer() {
        let a = json!({"spec": {"n": 1, "l": ["x", "y"], "m": {"a/b": 1}, "f": 0}});
        let b = json!({"spec": {"n": 2, "l": ["x"], "m": {"a/b": 1, "c": true}, "f": 0.0}});
        assert_eq!(
            differences(&a, &b, ""),
            [
                "/spec/l: 2 items vs 1",
                "/spec/m/c: null vs true",
                "/spec/n: 1 vs 2",
            ]
        );
        assert!(differences(&a, &a, "").is_empty());
    }

    #[test]
    fn renders_report_missing_duplicate_and_differing_objects() {
        let obj = |kind: &str, ns: &str, name: &str, v: i32| {
            json!({"apiVersion": "v1", "kind": kind,
                "metadata": {"name": name, "namespace": ns}, "data": {"v": v}})
        };
        let left = [
            obj("A", "ns", "a", 1),
            obj("B", "", "b", 1),
            obj("C", "ns", "c", 1),
        ];
        let right = [
            obj("C", "ns", "c", 1),
            obj("A", "ns", "a", 2),
            obj("D", "ns", "d", 1),
        ];
        assert_eq!(
            renders("kustomize", &left, "chart", &right),
            [
                "v1 B b: only in kustomize",
                "v1 D ns/d: only in chart",
                "v1 A ns/a: /data/v: 1 vs 2 (kustomize vs chart)",
            ]
        );
        let twice = [obj("C", "ns", "c", 1), obj("C", "ns", "c", 1)];
        assert_eq!(
            renders("kustomize", &twice[..1], "chart", &twice),
            ["v1 C ns/c: twice in chart"]
        );
        // the same objects in another order
        assert!(
            renders(
                "kustomize",
                &left,
                "chart",
                &[left[2].clone(), left[0].clone(), left[1].clone()]
            )
            .is_empty()
        );
    }
}

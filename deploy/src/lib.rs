//! Checks of the kustomize manifests in `deploy/`: render them with `kubectl kustomize`, split the
//! output into objects, and answer the RBAC questions the render test asks (which rules a
//! service account is bound to, whether they allow an API call, whether any rule holds a
//! wildcard).
//!
//! The manifests are the product; this crate only exists so that `cargo test` checks them
//! (`deploy/tests/render.rs`).

use std::{
    io,
    path::{Path, PathBuf},
    process::Command,
};

pub mod compare;
pub mod helm;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde_json::Value;

/// The oldest kubectl whose built-in kustomize renders these manifests (kustomize v4.5.4:
/// `labels`, directories as `resources`). Debian bookworm's `kubernetes-client` is 1.20 with
/// kustomize v2.0.3, which does not.
pub const MIN_KUBECTL_MINOR: u32 = 24;

/// Why the manifests could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No [`kubectl`] to run.
    #[error("kubectl not found: not built by hw-tests/k8s/build.sh, not on PATH ({0})")]
    NoKubectl(#[source] io::Error),
    /// `kubectl` is too old for these manifests.
    #[error(
        "kubectl 1.{minor} is older than 1.{MIN_KUBECTL_MINOR}: its built-in kustomize cannot render deploy/ (Debian bookworm's kubernetes-client is 1.20)"
    )]
    TooOld {
        /// The client's minor version.
        minor: u32,
    },
    /// `kubectl kustomize` failed.
    #[error("kubectl kustomize {}: {stderr}", dir.display())]
    Kustomize {
        /// The kustomization directory.
        dir: PathBuf,
        /// What kubectl said.
        stderr: String,
    },
    /// The output is not YAML.
    #[error("kubectl kustomize {}: output is not YAML: {source}", dir.display())]
    Yaml {
        /// The kustomization directory.
        dir: PathBuf,
        /// The parser's error.
        #[source]
        source: Box<serde_saphyr::Error>,
    },
}

impl RenderError {
    /// Whether the test should skip (the tool is missing or too old) rather than fail.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::NoKubectl(_) | Self::TooOld { .. })
    }
}

/// The kubectl the checks run: `$SMARTNIC_KUBECTL` when set (CI sets the pinned build's), else
/// the one `hw-tests/k8s/build.sh` built for the pinned Kubernetes release when its cache holds
/// it, else `kubectl` on `PATH`.
pub fn kubectl() -> PathBuf {
    pinned_tool("SMARTNIC_KUBECTL", "hw-tests/k8s/build.sh", "kubectl")
}

/// A tool the checks run: `$env_var` when set, else `binary` in the directory that the pinned
/// build `script` (relative to the repository) prints with `--print-dir`, when it is there, else
/// `binary` on `PATH`.
pub(crate) fn pinned_tool(env_var: &str, script: &str, binary: &str) -> PathBuf {
    if let Some(k) = std::env::var_os(env_var) {
        return PathBuf::from(k);
    }
    let build = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(script);
    if let Ok(out) = Command::new(&build).arg("--print-dir").output()
        && out.status.success()
    {
        let pinned = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join(binary);
        if pinned.is_file() {
            return pinned;
        }
    }
    PathBuf::from(binary)
}

/// The minor version of the [`kubectl`] client (`None` when its answer is unreadable).
pub fn kubectl_minor() -> Result<Option<u32>, RenderError> {
    let out = Command::new(kubectl())
        .args(["version", "--client", "-o", "json"])
        .output()
        .map_err(RenderError::NoKubectl)?;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Ok(v.pointer("/clientVersion/minor")
        .and_then(Value::as_str)
        .map(|m| m.trim_end_matches(|c: char| !c.is_ascii_digit()))
        .and_then(|m| m.parse().ok()))
}

/// Renders the kustomization in `dir` with `kubectl kustomize` and returns its objects, in order.
/// Anything kubectl prints on stderr (a deprecation warning, say) counts as a failure: the
/// render must be clean.
pub fn render(dir: &Path) -> Result<Vec<Value>, RenderError> {
    if let Some(minor) = kubectl_minor()?
        && minor < MIN_KUBECTL_MINOR
    {
        return Err(RenderError::TooOld { minor });
    }
    let out = Command::new(kubectl())
        .arg("kustomize")
        .arg(dir)
        .output()
        .map_err(RenderError::NoKubectl)?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if !out.status.success() || !stderr.is_empty() {
        return Err(RenderError::Kustomize {
            dir: dir.to_owned(),
            stderr,
        });
    }
    documents(&String::from_utf8_lossy(&out.stdout)).map_err(|source| RenderError::Yaml {
        dir: dir.to_owned(),
        source: Box::new(source),
    })
}

/// The objects of a multi-document YAML stream (empty documents dropped).
pub fn documents(yaml: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml)?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// `kind/namespace/name` of an object, for messages.
pub fn describe(obj: &Value) -> String {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("");
    match s("/metadata/namespace") {
        "" => format!("{}/{}", s("/kind"), s("/metadata/name")),
        ns => format!("{}/{ns}/{}", s("/kind"), s("/metadata/name")),
    }
}

/// One API call a component makes: `verb` on `resource` (with `/subresource`) of `group`, in
/// `namespace` (`None`: every namespace, or a cluster-scoped resource), on the object `name` when
/// the call names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// Resource, with `/subresource` when there is one (`pods/eviction`).
    pub resource: &'static str,
    /// Verb as RBAC names it (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`).
    pub verb: &'static str,
    /// Namespace of the call; `None` for all namespaces or a cluster-scoped resource.
    pub namespace: Option<&'static str>,
    /// Object name, for calls on one named object.
    pub name: Option<&'static str>,
}

/// A rule and where it applies: in every namespace (a ClusterRoleBinding) or in one (a
/// RoleBinding).
#[derive(Clone, Debug, PartialEq)]
pub struct Grant {
    /// `None`: cluster-wide.
    pub namespace: Option<String>,
    /// The rule.
    pub rule: PolicyRule,
}

impl Grant {
    /// Whether this grant allows `call`.
    pub fn allows(&self, call: &Call) -> bool {
        let scope_ok = match (&self.namespace, call.namespace) {
            (None, _) => true,
            (Some(g), Some(c)) => g == c,
            (Some(_), None) => false,
        };
        let r = &self.rule;
        let names_ok = match &r.resource_names {
            None => true,
            Some(n) if n.is_empty() => true,
            Some(n) => call.name.is_some_and(|c| n.iter().any(|x| x == c)),
        };
        scope_ok
            && names_ok
            && r.api_groups
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|g| g == call.group)
            && r.resources
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|x| x == call.resource)
            && r.verbs.iter().any(|v| v == call.verb)
    }
}

/// Every `*` in a rule, as `field: *` (empty when there is none). Also reports
/// `nonResourceURLs`, which no component needs.
pub fn wildcards(rule: &PolicyRule) -> Vec<String> {
    let mut found = Vec::new();
    let mut check = |field: &str, values: Option<&[String]>| {
        for v in values.unwrap_or_default() {
            if v.contains('*') {
                found.push(format!("{field}: {v}"));
            }
        }
    };
    check("verbs", Some(&rule.verbs));
    check("apiGroups", rule.api_groups.as_deref());
    check("resources", rule.resources.as_deref());
    check("resourceNames", rule.resource_names.as_deref());
    if rule
        .non_resource_urls
        .as_ref()
        .is_some_and(|u| !u.is_empty())
    {
        found.push("nonResourceURLs".to_owned());
    }
    found
}

/// Errors reading RBAC objects out of a render.
#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    /// An RBAC object does not parse as its type.
    #[error("{object}: {source}")]
    Parse {
        /// The object.
        object: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// A binding refers to a role the render does not hold.
    #[error("{binding} refers to {kind} {name}, which the manifests do not define")]
    MissingRole {
        /// The binding.
        binding: String,
        /// `ClusterRole` or `Role`.
        kind: String,
        /// The role's name.
        name: String,
    },
}

fn parse<T: serde::de::DeserializeOwned>(obj: &Value) -> Result<T, RbacError> {
    serde_json::from_value(obj.clone()).map_err(|source| RbacError::Parse {
        object: describe(obj),
        source,
    })
}

fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    objects
        .iter()
        .filter(move |o| o.get("kind").and_then(Value::as_str) == Some(kind))
}

/// The rules the service account `namespace/name` is bound to in `objects`, with their scope.
/// A binding to a role the render does not define is an error: that is how a binding to
/// `cluster-admin` (or any other built-in role) shows up.
pub fn grants_of(objects: &[Value], namespace: &str, name: &str) -> Result<Vec<Grant>, RbacError> {
    let cluster_roles: Vec<ClusterRole> = of_kind(objects, "ClusterRole")
        .map(parse)
        .collect::<Result<_, _>>()?;
    let roles: Vec<Role> = of_kind(objects, "Role")
        .map(parse)
        .collect::<Result<_, _>>()?;
    let is_subject = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>,
                      binding_ns: Option<&str>| {
        subjects.as_deref().unwrap_or_default().iter().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == name
                && s.namespace.as_deref().or(binding_ns) == Some(namespace)
        })
    };
    let cluster_rules = |binding: &str, role: &str| -> Result<Vec<PolicyRule>, RbacError> {
        cluster_roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(role))
            .map(|r| r.rules.clone().unwrap_or_default())
            .ok_or_else(|| RbacError::MissingRole {
                binding: binding.to_owned(),
                kind: "ClusterRole".into(),
                name: role.to_owned(),
            })
    };
    let mut grants = Vec::new();
    for obj in of_kind(objects, "ClusterRoleBinding") {
        let b: ClusterRoleBinding = parse(obj)?;
        if !is_subject(&b.subjects, None) {
            continue;
        }
        for rule in cluster_rules(&describe(obj), &b.role_ref.name)? {
            grants.push(Grant {
                namespace: None,
                rule,
            });
        }
    }
    for obj in of_kind(objects, "RoleBinding") {
        let b: RoleBinding = parse(obj)?;
        let ns = b.metadata.namespace.clone().unwrap_or_default();
        if !is_subject(&b.subjects, Some(&ns)) {
            continue;
        }
        let rules = if b.role_ref.kind == "ClusterRole" {
            cluster_rules(&describe(obj), &b.role_ref.name)?
        } else {
            roles
                .iter()
                .find(|r| {
                    r.metadata.name.as_deref() == Some(b.role_ref.name.as_str())
                        && r.metadata.namespace.as_deref() == Some(ns.as_str())
                })
                .map(|r| r.rules.clone().unwrap_or_default())
                .ok_or_else(|| RbacError::MissingRole {
                    binding: describe(obj),
                    kind: "Role".into(),
                    name: b.role_ref.name.clone(),
                })?
        };
        for rule in rules {
            grants.push(Grant {
                namespace: Some(ns.clone()),
                rule,
            });
        }
    }
    Ok(grants)
}

/// Every `(namespace, group, resource, verb)` a set of grants allows that no call in `calls`
/// uses, as `group/resource verb (scope)`: the grants that are more than the code needs.
pub fn unused(grants: &[Grant], calls: &[Call]) -> Vec<String> {
    let mut extra = Vec::new();
    for g in grants {
        let r = &g.rule;
        for group in r.api_groups.as_deref().unwrap_or_default() {
            for resource in r.resources.as_deref().unwrap_or_default() {
                for verb in &r.verbs {
                    let used = calls.iter().any(|c| {
                        c.group == group && c.resource == resource && c.verb == verb && g.allows(c)
                    });
                    if !used {
                        extra.push(format!(
                            "{group}/{resource} {verb} ({})",
                            g.namespace.as_deref().unwrap_or("cluster-wide")
                        ));
                    }
                }
            }
        }
    }
    extra
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        PolicyRule {
            api_groups: Some(s(groups)),
            resources: Some(s(resources)),
            verbs: s(verbs),
            ..Default::default()
        }
    }

    const LIST_PODS: Call = Call {
        group: "",
        resource: "pods",
        verb: "list",
        namespace: None,
        name: None,
    };

    #[test]
    fn a_grant_allows_only_its_groups_resources_verbs_scope_and_names() {
        let cluster = Grant {
            namespace: None,
            rule: rule(&[""], &["pods"], &["list"]),
        };
        assert!(cluster.allows(&LIST_PODS));
        assert!(!cluster.allows(&Call {
            verb: "delete",
            ..LIST_PODS
        }));
        assert!(!cluster.allows(&Call {
            resource: "pods/eviction",
            ..LIST_PODS
        }));
        let in_ns = Grant {
            namespace: Some("a".into()),
            rule: rule(&[""], &["pods"], &["list"]),
        };
        assert!(
            !in_ns.allows(&LIST_PODS),
            "all namespaces need a cluster grant"
        );
        assert!(in_ns.allows(&Call {
            namespace: Some("a"),
            ..LIST_PODS
        }));
        let mut named = rule(&["coordination.k8s.io"], &["leases"], &["get"]);
        named.resource_names = Some(vec!["lead".into()]);
        let named = Grant {
            namespace: Some("a".into()),
            rule: named,
        };
        let get = Call {
            group: "coordination.k8s.io",
            resource: "leases",
            verb: "get",
            namespace: Some("a"),
            name: Some("lead"),
        };
        assert!(named.allows(&get));
        assert!(!named.allows(&Call {
            name: Some("other"),
            ..get
        }));
        assert!(!named.allows(&Call { name: None, ..get }));
    }

    #[test]
    fn wildcards_are_found_in_every_field() {
        assert!(wildcards(&rule(&[""], &["pods"], &["get"])).is_empty());
        assert_eq!(
            wildcards(&rule(&["*"], &["pods"], &["get"])),
            ["apiGroups: *"]
        );
        assert_eq!(
            wildcards(&rule(&[""], &["*/status"], &["get"])),
            ["resources: */status"]
        );
        assert_eq!(wildcards(&rule(&[""], &["pods"], &["*"])), ["verbs: *"]);
        let mut urls = rule(&[], &[], &["get"]);
        urls.non_resource_urls = Some(vec!["/metrics".into()]);
        assert_eq!(wildcards(&urls), ["nonResourceURLs"]);
    }

    #[test]
    fn grants_follow_bindings_and_a_binding_to_an_unknown_role_is_an_error() {
        let objects = documents(
            r#"
kind: ClusterRole
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: r}
rules: [{apiGroups: [""], resources: [nodes], verbs: [get]}]
---
kind: ClusterRoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: r}
subjects: [{kind: ServiceAccount, name: sa, namespace: ns}]
---
kind: Role
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: e, namespace: default}
rules: [{apiGroups: [events.k8s.io], resources: [events], verbs: [create]}]
---
kind: RoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: e, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: e}
subjects: [{kind: ServiceAccount, name: sa, namespace: ns}]
"#,
        )
        .unwrap();
        let grants = grants_of(&objects, "ns", "sa").unwrap();
        assert_eq!(grants.len(), 2);
        assert_eq!(grants[0].namespace, None);
        assert_eq!(grants[1].namespace.as_deref(), Some("default"));
        assert!(grants_of(&objects, "other", "sa").unwrap().is_empty());
        let get_nodes = Call {
            group: "",
            resource: "nodes",
            verb: "get",
            namespace: None,
            name: Some("n1"),
        };
        assert_eq!(
            unused(&grants, &[get_nodes]),
            ["events.k8s.io/events create (default)"]
        );

        let admin = vec![json!({
            "kind": "ClusterRoleBinding",
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "oops"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}],
        })];
        let err = grants_of(&admin, "ns", "sa").unwrap_err().to_string();
        assert!(err.contains("cluster-admin"), "{err}");
    }
}

//! Who may use a device-plugin resource through a `NicNetwork`.
//!
//! A `NicNetwork` chooses VLAN, trust, spoof checking and rates of the VFs it draws from a
//! resource. Since `NicPolicy` is cluster-scoped (an administrator's object) and `NicNetwork` is
//! namespaced (a tenant's), the policy side says which namespaces' networks may use its resource:
//! `NicPolicy.spec.networkNamespaces`. Unset means every namespace; a list means only those (an
//! empty list: none). Every policy that offers the resource must admit the namespace, so
//! policies that disagree (possible only without the webhook, which refuses that) restrict to
//! what all of them allow. A resource no policy offers is unrestricted: there is nothing to use
//! yet, and the network is re-checked when a policy appears.
//!
//! Enforced twice: the webhook refuses such a network, and the operator's network controller
//! gives it `Ready=False` (reason [`REASON_NAMESPACE_NOT_ALLOWED`]) and no (or no longer a)
//! NetworkAttachmentDefinition.

use crds::NicPolicy;

use crate::priority::policy_name;

/// Condition reason of a `NicNetwork` whose namespace may not use its resource.
pub const REASON_NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";

/// A namespace that may not use a resource, with the policy that says so.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "namespace {namespace} may not use resource {resource}: NicPolicy {policy} allows its networks only in {allowed}"
)]
pub struct AccessDenied {
    /// The network's namespace.
    pub namespace: String,
    /// The resource name (without prefix).
    pub resource: String,
    /// The first policy (by name) that does not admit the namespace.
    pub policy: String,
    /// That policy's list, for the message (`[a, b]`, or `no namespace`).
    pub allowed: String,
}

/// Whether a `NicNetwork` in `namespace` may use `resource`, given every `NicPolicy`.
pub fn network_may_use<'a>(
    namespace: &str,
    resource: &str,
    policies: impl IntoIterator<Item = &'a NicPolicy>,
) -> Result<(), AccessDenied> {
    let mut offering: Vec<&NicPolicy> = policies
        .into_iter()
        .filter(|p| p.spec.resource_name == resource)
        .collect();
    offering.sort_by(|a, b| policy_name(a).cmp(policy_name(b)));
    for p in offering {
        if let Some(list) = &p.spec.network_namespaces
            && !list.iter().any(|n| n == namespace)
        {
            return Err(AccessDenied {
                namespace: namespace.to_owned(),
                resource: resource.to_owned(),
                policy: policy_name(p).to_owned(),
                allowed: if list.is_empty() {
                    "no namespace".to_owned()
                } else {
                    format!("[{}]", list.join(", "))
                },
            });
        }
    }
    Ok(())
}

/// Condition reason of a `NicNetwork` that names a host path or interface the administrator's
/// allow-list (`NicOperatorConfig.spec.tenantAllowList`) does not grant its namespace.
pub const REASON_NOT_IN_ALLOW_LIST: &str = "NotInAllowList";

/// A network naming a host interface or path its namespace was not granted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct HostAccessDenied {
    /// The field (`spec.master`, `spec.ovs.bridge`, `spec.ipam.dataDir`, ...).
    pub field: String,
    /// Why.
    pub message: String,
}

/// Checks what a `NicNetwork` in `namespace` names on the host against the administrator's
/// allow-list: `master`, `ovs.bridge`, IPAM `dataDir` (besides the reference layout's) and
/// `resolvConf`. The CNI plugin checks the same list again on the node, for networks that
/// reach it by another way (a tenant's own NetworkAttachmentDefinition).
pub fn network_host_access(
    namespace: &str,
    spec: &crds::NicNetworkSpec,
    allow: &crds::cni::TenantAllowList,
) -> Result<(), HostAccessDenied> {
    let deny = |field: &str, message: String| {
        Err(HostAccessDenied {
            field: field.to_owned(),
            message,
        })
    };
    if let Some(m) = &spec.master
        && let Some(why) =
            crds::cni::interface_refusal(&allow.masters, "master", m, Some(namespace))
    {
        return deny("spec.master", why);
    }
    if let Some(b) = spec.ovs.as_ref().and_then(|o| o.bridge.as_ref())
        && let Some(why) =
            crds::cni::interface_refusal(&allow.bridges, "bridge", b, Some(namespace))
    {
        return deny("spec.ovs.bridge", why);
    }
    let ipam = spec.ipam.as_ref().and_then(|v| v.as_object());
    match ipam.and_then(|o| o.get("dataDir")) {
        None => {}
        Some(serde_json::Value::String(d)) if allow.admits_data_dir(d) => {}
        Some(d) => {
            return deny(
                "spec.ipam.dataDir",
                format!(
                    "{d} is neither {} nor in the administrator's allow-list (NicOperatorConfig spec.tenantAllowList.ipamDataDirs)",
                    crds::cni::DEFAULT_IPAM_DATA_DIR
                ),
            );
        }
    }
    match ipam.and_then(|o| o.get("resolvConf")) {
        None => {}
        Some(serde_json::Value::String(f)) if allow.admits_resolv_conf(f) => {}
        Some(f) => {
            return deny(
                "spec.ipam.resolvConf",
                format!(
                    "{f} is not in the administrator's allow-list (NicOperatorConfig spec.tenantAllowList.resolvConfs)"
                ),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::policy;

    fn with_ns(name: &str, resource: &str, ns: Option<&[&str]>) -> NicPolicy {
        let mut p = policy(name, 10, &["ens1f0"]);
        p.spec.resource_name = resource.into();
        p.spec.network_namespaces = ns.map(|l| l.iter().map(|s| (*s).to_owned()).collect());
        p
    }

    #[test]
    fn unset_allows_every_namespace_and_a_list_only_its_own() {
        let open = [with_ns("a", "vf", None)];
        assert_eq!(network_may_use("anyone", "vf", &open), Ok(()));
        let closed = [with_ns("a", "vf", Some(&["team-a", "team-b"]))];
        assert_eq!(network_may_use("team-b", "vf", &closed), Ok(()));
        let denied = network_may_use("team-c", "vf", &closed).unwrap_err();
        assert_eq!(denied.policy, "a");
        assert_eq!(
            denied.to_string(),
            "namespace team-c may not use resource vf: NicPolicy a allows its networks only in [team-a, team-b]"
        );
        // other resources are not concerned
        assert_eq!(network_may_use("team-c", "other", &closed), Ok(()));
    }

    #[test]
    fn empty_list_admits_no_namespace() {
        let none = [with_ns("a", "vf", Some(&[]))];
        let e = network_may_use("team-a", "vf", &none).unwrap_err();
        assert!(e.to_string().ends_with("only in no namespace"), "{e}");
    }

    #[test]
    fn disagreeing_policies_restrict_to_what_all_allow() {
        let ps = [
            with_ns("a", "vf", Some(&["team-a", "team-b"])),
            with_ns("b", "vf", Some(&["team-b"])),
            with_ns("c", "vf", None),
        ];
        assert_eq!(network_may_use("team-b", "vf", &ps), Ok(()));
        assert_eq!(
            network_may_use("team-a", "vf", &ps).unwrap_err().policy,
            "b"
        );
    }

    #[test]
    fn host_paths_and_interfaces_only_as_the_allow_list_grants() {
        use crds::cni::{HostInterfaceGrant, TenantAllowList};
        let allow = TenantAllowList {
            ipam_data_dirs: vec!["/var/lib/smartnic/ipam".into()],
            resolv_confs: vec!["/etc/smartnic/resolv.conf".into()],
            masters: vec![HostInterfaceGrant {
                name: "eth1".into(),
                namespaces: Some(vec!["team-a".into()]),
            }],
            bridges: vec![HostInterfaceGrant {
                name: "br-tenant".into(),
                namespaces: None,
            }],
        };
        let mut spec = crds::NicNetworkSpec {
            mode: crds::network::NetworkMode::Macvlan,
            master: Some("eth1".into()),
            ..Default::default()
        };
        network_host_access("team-a", &spec, &allow).unwrap();
        let e = network_host_access("team-b", &spec, &allow).unwrap_err();
        assert_eq!(e.field, "spec.master");
        assert!(
            e.message.contains("not allowed for namespace team-b"),
            "{e}"
        );
        spec.master = Some("mgmt0".into());
        assert!(network_host_access("team-a", &spec, &allow).is_err());
        spec.master = Some("eth1".into());
        for (key, value, field) in [
            ("dataDir", "/etc", "spec.ipam.dataDir"),
            (
                "dataDir",
                "/var/lib/cni/networks/../../../etc",
                "spec.ipam.dataDir",
            ),
            ("resolvConf", "/etc/shadow", "spec.ipam.resolvConf"),
        ] {
            spec.ipam = Some(serde_json::json!({"type": "host-local", key: value}));
            let e = network_host_access("team-a", &spec, &allow).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        spec.ipam = Some(serde_json::json!({"type": "host-local",
            "dataDir": "/var/lib/smartnic/ipam", "resolvConf": "/etc/smartnic/resolv.conf"}));
        network_host_access("team-a", &spec, &allow).unwrap();
        let ovs = crds::NicNetworkSpec {
            mode: crds::network::NetworkMode::Ovs,
            ovs: Some(crds::network::OvsOptions {
                bridge: Some("br-int".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            network_host_access("team-a", &ovs, &allow)
                .unwrap_err()
                .field,
            "spec.ovs.bridge"
        );
    }
}

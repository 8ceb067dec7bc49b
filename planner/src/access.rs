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
}

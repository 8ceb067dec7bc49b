//! Which pods use a PF through a `macvlan` or `ipvlan` network: such a pod requests no
//! `smartnic.io/*` resource (its interface is a child of the PF, not a VF), yet changing the PF
//! (its VFs, its eswitch mode, a driver rebind) takes its link away. A drain that evicts the
//! pods using a node's VFs must evict these too.
//!
//! A pod names its networks in the Multus annotation `k8s.v1.cni.cncf.io/networks`, either as
//! a comma-separated list (`net-a, other-ns/net-b@eth1`) or as a JSON list of
//! `{"name", "namespace", "interface"}` objects. A `NicNetwork` renders a NAD of the same name
//! in its own namespace, so a reference `namespace/name` (namespace defaulting to the pod's)
//! names the `NicNetwork` directly.

use std::collections::BTreeSet;

use crds::{NicNetwork, link::NetworkMode};
use kube::ResourceExt;
use serde::Deserialize;

/// The pod annotation listing its additional networks.
pub const ANNOTATION_NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";

/// One entry of the networks annotation.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct NetworkRef {
    /// NAD name.
    pub name: String,
    /// NAD namespace; the pod's when absent.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// The networks a pod's annotation names, `(namespace, name)`, the namespace defaulting to
/// `pod_namespace`. An annotation that parses neither as JSON nor as a list gives what parsed
/// (Multus rejects such a pod anyway).
pub fn pod_network_refs(annotation: &str, pod_namespace: &str) -> Vec<(String, String)> {
    let trimmed = annotation.trim();
    let refs: Vec<NetworkRef> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).unwrap_or_default()
    } else {
        trimmed
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                // `ns/name@ifname`
                let s = s.split('@').next().unwrap_or(s);
                match s.split_once('/') {
                    Some((ns, name)) => NetworkRef {
                        name: name.to_owned(),
                        namespace: Some(ns.to_owned()),
                    },
                    None => NetworkRef {
                        name: s.to_owned(),
                        namespace: None,
                    },
                }
            })
            .collect()
    };
    refs.into_iter()
        .map(|r| {
            (
                r.namespace.unwrap_or_else(|| pod_namespace.to_owned()),
                r.name,
            )
        })
        .collect()
}

/// Whether a pod with this networks annotation has an interface on one of `pfs` (PF netdev
/// names) through a `macvlan` or `ipvlan` `NicNetwork` whose `master` is that PF. Networks with
/// an allocated VF as master (`resourceName`) are not counted here: such a pod requests the
/// resource, which the resource check already finds.
pub fn uses_pf_through_networks(
    annotation: Option<&str>,
    pod_namespace: &str,
    networks: &[NicNetwork],
    pfs: &BTreeSet<String>,
) -> bool {
    let Some(annotation) = annotation else {
        return false;
    };
    if pfs.is_empty() {
        return false;
    }
    pod_network_refs(annotation, pod_namespace)
        .iter()
        .any(|(ns, name)| {
            networks.iter().any(|n| {
                n.name_any() == *name
                    && n.namespace().as_deref() == Some(ns.as_str())
                    && matches!(n.spec.mode, NetworkMode::Macvlan | NetworkMode::Ipvlan)
                    && n.spec.master.as_ref().is_some_and(|m| pfs.contains(m))
            })
        })
}

#[cfg(test)]
mod tests {
    use crds::NicNetworkSpec;

    use super::*;

    fn net(ns: &str, name: &str, mode: NetworkMode, master: Option<&str>) -> NicNetwork {
        let mut n = NicNetwork::new(
            name,
            NicNetworkSpec {
                mode,
                master: master.map(str::to_owned),
                ..Default::default()
            },
        );
        n.metadata.namespace = Some(ns.into());
        n
    }

    fn pfs(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn both_annotation_forms_parse_with_the_pod_namespace_as_default() {
        assert_eq!(
            pod_network_refs(" mv , other/ipv@net2,", "app"),
            [("app".into(), "mv".into()), ("other".into(), "ipv".into())]
        );
        assert_eq!(
            pod_network_refs(
                r#"[{"name": "mv", "interface": "net1"}, {"name": "ipv", "namespace": "other"}]"#,
                "app"
            ),
            [("app".into(), "mv".into()), ("other".into(), "ipv".into())]
        );
        assert!(pod_network_refs("[not json", "app").is_empty());
    }

    #[test]
    fn macvlan_and_ipvlan_on_an_affected_pf_count_others_do_not() {
        let networks = [
            net("app", "mv", NetworkMode::Macvlan, Some("ens1f0")),
            net("other", "ipv", NetworkMode::Ipvlan, Some("ens1f1")),
            net("app", "elsewhere", NetworkMode::Macvlan, Some("eno1")),
            net("app", "vf", NetworkMode::Sriov, None),
            net("app", "mv-on-vf", NetworkMode::Macvlan, None),
        ];
        let affected = pfs(&["ens1f0", "ens1f1"]);
        let uses = |a: &str, ns: &str| uses_pf_through_networks(Some(a), ns, &networks, &affected);
        assert!(uses("mv", "app"));
        assert!(uses(r#"[{"name": "ipv", "namespace": "other"}]"#, "app"));
        assert!(uses("elsewhere, other/ipv@net2", "app"));
        assert!(!uses("elsewhere", "app"), "master not affected");
        assert!(
            !uses("mv", "team"),
            "another namespace's network of that name"
        );
        assert!(
            !uses("vf, mv-on-vf", "app"),
            "VF users are found by their resources"
        );
        assert!(!uses_pf_through_networks(None, "app", &networks, &affected));
        assert!(!uses_pf_through_networks(
            Some("mv"),
            "app",
            &networks,
            &pfs(&[])
        ));
    }
}

//! Users of a PF netdev besides its VFs: macvlan, macvtap, ipvlan and ipvtap links whose lower
//! device is the PF. A pod attached through the `macvlan`/`ipvlan` CNI plugins (or our CNI's
//! `mode: macvlan|ipvlan`) holds such a link in its network namespace; a step that resets the
//! PF netdev (`sriov_numvfs`, an eswitch mode change, a firmware change) takes its network away,
//! so the plan counts it as a user of the PF ([`planner::apply::PfFacts::upper_users`]) and the
//! change needs the pods evicted.
//!
//! Pure: the agent lists the links of the host namespace and of each pod namespace
//! (`/var/run/netns/*`, where the container runtimes keep them) and hands them here. A link in
//! a pod namespace names its lower by the lower's index in the host namespace
//! (`IFLA_LINK`, with `IFLA_LINK_NETNSID` pointing back at the host), so the index is compared
//! with the PF's index in the host namespace.

use std::collections::BTreeMap;

/// A link as listed in one network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenLink {
    /// The namespace it is in: `None` for the host's, else its name (`cni-1234...`).
    pub netns: Option<String>,
    /// Interface name in that namespace.
    pub name: String,
    /// `IFLA_INFO_KIND` (`macvlan`, `ipvlan`, ...).
    pub kind: Option<String>,
    /// `IFLA_LINK`: index of the lower device.
    pub lower: Option<u32>,
}

/// A PF netdev in the host namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PfNetdev {
    /// PCI address.
    pub pci_address: String,
    /// Its index in the host namespace.
    pub ifindex: u32,
}

/// Link kinds that sit on a lower device and share its link.
const UPPER_KINDS: [&str; 4] = ["macvlan", "macvtap", "ipvlan", "ipvtap"];

/// The users of each PF (by PCI address) among `links`: `NETNS/IFNAME` for a link in a pod
/// namespace, `host/IFNAME` for one in the host namespace. PFs without users are left out.
pub fn upper_users(pfs: &[PfNetdev], links: &[SeenLink]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for link in links {
        if !link
            .kind
            .as_deref()
            .is_some_and(|k| UPPER_KINDS.contains(&k))
        {
            continue;
        }
        let Some(pf) = pfs.iter().find(|p| Some(p.ifindex) == link.lower) else {
            continue;
        };
        let user = format!("{}/{}", link.netns.as_deref().unwrap_or("host"), link.name);
        let users = out.entry(pf.pci_address.clone()).or_default();
        if !users.contains(&user) {
            users.push(user);
        }
    }
    for users in out.values_mut() {
        users.sort();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(netns: Option<&str>, name: &str, kind: Option<&str>, lower: Option<u32>) -> SeenLink {
        SeenLink {
            netns: netns.map(str::to_owned),
            name: name.into(),
            kind: kind.map(str::to_owned),
            lower,
        }
    }

    #[test]
    fn macvlan_and_ipvlan_children_of_a_pf_are_its_users() {
        let pfs = [
            PfNetdev {
                pci_address: "0000:01:00.0".into(),
                ifindex: 4,
            },
            PfNetdev {
                pci_address: "0000:01:00.1".into(),
                ifindex: 5,
            },
        ];
        let links = [
            // the PF itself and an unrelated hardware netdev
            link(None, "enp1s0f0", None, None),
            link(None, "eno1", None, None),
            // a pod's macvlan and another pod's ipvlan on PF 0
            link(Some("cni-b"), "net1", Some("macvlan"), Some(4)),
            link(Some("cni-a"), "net1", Some("ipvlan"), Some(4)),
            // a host macvlan shim on PF 1
            link(None, "shim0", Some("macvtap"), Some(5)),
            // a VLAN and a veth are not users of the PF's link in this sense
            link(None, "enp1s0f0.10", Some("vlan"), Some(4)),
            link(Some("cni-c"), "eth0", Some("veth"), Some(4)),
            // a macvlan on something else
            link(Some("cni-d"), "net1", Some("macvlan"), Some(9)),
        ];
        let users = upper_users(&pfs, &links);
        assert_eq!(
            users,
            BTreeMap::from([
                (
                    "0000:01:00.0".to_owned(),
                    vec!["cni-a/net1".to_owned(), "cni-b/net1".to_owned()]
                ),
                ("0000:01:00.1".to_owned(), vec!["host/shim0".to_owned()]),
            ])
        );
        assert!(upper_users(&pfs, &[]).is_empty());
    }

    #[test]
    fn the_users_make_a_pf_reset_need_an_eviction() {
        use crds::{
            inventory::{Nic, NicInventory},
            node_state::{InterfaceSpec, NicNodeStateSpec},
        };
        use planner::{ChangeClass, apply::PfFacts, apply::plan_host};
        let nic = Nic {
            pci_address: "0000:01:00.0".into(),
            name: Some("enp1s0f0".into()),
            vendor_id: "8086".into(),
            device_id: "10c9".into(),
            driver: Some("igb".into()),
            total_vfs: 7,
            ..Default::default()
        };
        let spec = NicNodeStateSpec {
            interfaces: vec![InterfaceSpec {
                pci_address: nic.pci_address.clone(),
                num_vfs: 2,
                policy: "p".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let host = NicInventory { nics: vec![nic] };
        let users = upper_users(
            &[PfNetdev {
                pci_address: "0000:01:00.0".into(),
                ifindex: 4,
            }],
            &[link(Some("cni-a"), "net1", Some("macvlan"), Some(4))],
        );
        let facts: BTreeMap<String, PfFacts> = users
            .into_iter()
            .map(|(pci, upper_users)| {
                (
                    pci,
                    PfFacts {
                        upper_users,
                        ..Default::default()
                    },
                )
            })
            .collect();
        let without = plan_host(&NicNodeStateSpec::default(), &spec, &host, &BTreeMap::new());
        let with = plan_host(&NicNodeStateSpec::default(), &spec, &host, &facts);
        assert_eq!(without.class, ChangeClass::NonDisruptive);
        assert_eq!(with.class, ChangeClass::EvictVfPods);
        assert!(
            with.pfs[0].reasons.iter().any(|r| r.contains("cni-a/net1")),
            "{:?}",
            with.pfs[0].reasons
        );
    }
}
